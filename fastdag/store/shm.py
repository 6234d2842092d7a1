"""The shared-memory store: one file in /dev/shm per large value, mapped copy-on-write.

Layout of a segment: the out-of-band buffers of ``serialize.dumps``, each at a
64-byte aligned offset (Arrow's alignment), then the pickled header if it is
large. A small header and the offsets travel in the ``StoredRef``, so a
reader needs no extra read to find its way; a large one (a big dict, a Plan)
stays out of the control messages, whose size decides how fast they pass a
socket to a process that is not running yet.

Writing is one ``pwrite`` per buffer into a new file: a single copy from the
producer's heap, with no page faults on a writer mapping. Reading maps the
file with ``MAP_PRIVATE``: no copy, and a reader that writes into its input
gets private pages, so neither siblings nor the caller see the change and
arrays come back writeable.

Files are opened with ``os.open`` rather than ``SharedMemory`` because, before
Python 3.13, every attaching process registers the segment with its resource
tracker, which unlinks it when that process exits (bpo-38119). The scheduler
that receives a ref owns the segment from then on and unlinks it when the
last consumer is done; ``sweep`` removes whatever a crashed writer left.

Values smaller than ``inline_threshold`` bytes (header and buffers) never
touch /dev/shm: they ride inside the ref.

/dev/shm can be small: Docker gives containers 64 MB unless run with
``--shm-size``. A value that does not fit is written to a file-backed
segment under ``spill_dir`` instead (same layout, same names, mapped the same
way; slower only if the page cache is short of memory), with one warning
that says how to enlarge /dev/shm. Writing to a full tmpfs fails with ENOSPC
on ``pwrite``, never with the SIGBUS a full mapping would raise.

Other users share /dev/shm and the temp folder (``files.py`` says how we
keep them out): a segment is a new file under a name with 64 random bits,
the spill folder is private to us, and ``get`` maps (and unpickles a header
from) only a file our uid wrote.
"""

from __future__ import annotations

import errno
import glob
import mmap
import os
import warnings
from collections.abc import Collection
from typing import Any

from ..core.serialize import Payload, dumps, loads
from . import files
from .base import ObjectStore, StoredRef
from .files import SHM_DIR
from .pages import write_all

ALIGN = 64
INLINE_THRESHOLD = 64 * 1024
HEADER_IN_REF_MAX = 16 * 1024  # larger pickled headers go into the segment
_warned = False


class SharedMemoryStore(ObjectStore):
    """Values in /dev/shm files named ``<prefix>-<16 random hex>``; small ones inline.

    ``spill_dir``: where values go when /dev/shm is full; None means this
    user's private spill folder (``files.spill_dir``), made on first use.
    ``header_in_ref_max``: larger pickled headers go into the segment (a
    caller whose refs are signed passes ``sys.maxsize``, so that everything
    unpickled is covered by the signature).
    """

    def __init__(self, prefix: str, inline_threshold: int = INLINE_THRESHOLD,
                 directory: str = SHM_DIR, spill_dir: str | None = None,
                 header_in_ref_max: int = HEADER_IN_REF_MAX, shm_budget: int | None = None):
        if not prefix.startswith("fastdag-"):
            raise ValueError("segment names start with 'fastdag-' so leaks are easy to spot")
        self.prefix = prefix
        self.inline_threshold = inline_threshold
        self.directory = directory
        self._spill_dir = spill_dir
        self._spill_checked = False
        self.header_in_ref_max = header_in_ref_max
        # Bytes the ``<prefix>-*`` segments may take in ``directory`` (None: as
        # much as it has): beyond it values spill, as on a full /dev/shm.
        self.shm_budget = shm_budget

    @property
    def spill_dir(self) -> str:
        """The spill folder, made (or checked to be) private on first use."""
        if not self._spill_checked:
            self._spill_dir = files.spill_dir() if self._spill_dir is None \
                else files.private_dir(self._spill_dir)
            self._spill_checked = True
        return self._spill_dir

    # -- writing ------------------------------------------------------------
    def put(self, key: str, value: Any) -> StoredRef:
        return self.put_payload(key, dumps(value))

    def put_payload(self, key: str, payload: Payload, consume: bool = False) -> StoredRef:
        """Store a serialized value.

        ``consume=True`` says the caller drops the value once it is stored:
        the source pages are then released as they are copied, so a value of
        several GB is never held twice (heap and segment) at the peak.
        """
        header = payload.header
        size = sum(b.nbytes for b in payload.buffers)
        if size + len(header) < self.inline_threshold:
            return StoredRef(key=key, header=header, kind=payload.kind,
                             inline=[bytes(b) for b in payload.buffers])
        if len(payload.buffers) == 1 and len(header) <= self.header_in_ref_max:
            adopted = self._adopt(payload)
            if adopted is not None:
                return adopted
        layout = []
        offset = 0
        for buf in payload.buffers:
            layout.append((offset, buf.nbytes))
            offset += -(-buf.nbytes // ALIGN) * ALIGN
        # (offset, buffer, release its pages while copying) for each region
        parts = [(start, buf, consume) for (start, _), buf in zip(layout, payload.buffers)]
        header_span = None
        if len(header) > self.header_in_ref_max:
            header_span = (offset, len(header))
            parts.append((offset, memoryview(header), False))
            offset += len(header)
            header = b""
        size = max(offset, 1)
        try:
            if self._over_budget(size):
                raise OSError(errno.ENOSPC, f"over the {self.shm_budget}-byte shm budget")
            key = _write_segment(self.directory, self.prefix, size, parts)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.ENOMEM):
                raise
            _warn_small_shm(self.directory, size)
            spill = self.spill_dir  # absolute: get() and delete() follow it
            key = os.path.join(spill, _write_segment(spill, self.prefix, size, parts))
        return StoredRef(key=key, header=header, kind=payload.kind, size=size,
                         layout=layout, header_span=header_span)

    def _over_budget(self, size: int) -> bool:
        """Would ``size`` more bytes exceed ``shm_budget``? (One stat per segment.)"""
        if self.shm_budget is None:
            return False
        used = 0
        for path in glob.glob(os.path.join(self.directory, glob.escape(self.prefix) + "-*")):
            try:
                used += os.stat(path).st_size
            except FileNotFoundError:
                pass
        return used + size > self.shm_budget

    def _adopt(self, payload: Payload) -> StoredRef | None:
        """Store a value born in this process's arena (``fd.result_array``) by renaming its file."""
        from . import arena
        current = arena.current()
        if current is None or current.directory != self.directory:
            return None
        found = current.find(payload.buffers[0])
        if found is None:
            return None
        region, offset = found
        name = current.adopt(region, self.prefix)
        return StoredRef(key=name, header=payload.header, kind=payload.kind, size=region.size,
                         layout=[(offset, payload.buffers[0].nbytes)])

    # -- reading ------------------------------------------------------------
    def get(self, ref: StoredRef) -> Any:
        if ref.inline is not None:
            # bytearray, so numpy arrays rebuilt from it are writeable.
            return loads(ref.header, [bytearray(b) for b in ref.inline], ref.kind)
        path = os.path.join(self.directory, ref.key)
        try:
            fd = files.open_owned(path)  # what another user planted is never unpickled
        except FileNotFoundError:
            raise KeyError(f"shared-memory segment {ref.key} is gone") from None
        try:
            mapped = mmap.mmap(fd, ref.size, flags=mmap.MAP_PRIVATE,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        view = memoryview(mapped)
        header = ref.header
        if ref.header_span is not None:
            start, length = ref.header_span
            header = view[start:start + length]
        return loads(header, [view[o:o + n] for o, n in ref.layout], ref.kind)

    # -- lifetime -----------------------------------------------------------
    def delete(self, ref: StoredRef) -> None:
        if ref.inline is None:
            files.unlink(os.path.join(self.directory, ref.key))

    def contains(self, ref: StoredRef) -> bool:
        return ref.inline is not None or os.path.exists(os.path.join(self.directory, ref.key))

    def sweep(self, prefix: str | None = None, keep: Collection[str] = ()) -> int:
        """Unlink every segment (in /dev/shm or spilled) named ``<prefix>-*``; count them.

        ``keep`` lists ref keys (names, or paths for spilled segments) to spare.
        Files of other users are left alone: only our own are ours to remove.
        """
        pattern = glob.escape(prefix or self.prefix) + "-*"
        count = 0
        for directory in (self.directory, self.spill_dir):
            for path in glob.glob(os.path.join(directory, pattern)):
                if os.path.basename(path) not in keep and path not in keep \
                        and files.owned(path) and files.unlink(path):
                    count += 1
        return count


def _write_segment(directory: str, prefix: str, size: int,
                   parts: list[tuple[int, memoryview, bool]]) -> str:
    """Write ``parts`` ((offset, buffer, consume) each) into a new file of ``size`` bytes.

    The file gets a fresh unique name ``<prefix>-<hex>`` in ``directory``; return it.
    """
    name, fd = files.create_exclusive(directory, prefix)
    path = os.path.join(directory, name)
    try:
        # Size the file, then write: on a full tmpfs pwrite fails with ENOSPC
        # (no SIGBUS: nothing writes through a mapping). posix_fallocate would
        # claim the space up front but zero-fills every page first, doubling
        # the cost of writing.
        os.ftruncate(fd, size)
        for start, buf, consume in parts:
            write_all(fd, buf, start, consume)
    except BaseException:
        os.close(fd)
        files.unlink(path)
        raise
    os.close(fd)
    return name


def _warn_small_shm(directory: str, size: int) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"{directory} has no room for a {size / 2**20:.0f} MiB result "
            f"({shm_free_bytes(directory) / 2**20:.0f} MiB free); fastdag spills such "
            "results to files instead, which is slower. In Docker, run the container with "
            "a larger --shm-size (e.g. --shm-size=4g).", RuntimeWarning, stacklevel=3)


def shm_free_bytes(directory: str = SHM_DIR) -> int:
    """Bytes free in the shared-memory filesystem (small in Docker by default)."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize

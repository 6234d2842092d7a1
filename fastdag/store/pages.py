"""Large buffers into files: written in chunks, their pages given back as they go.

    buffer (a result, a constant) ──write_all──> file in /dev/shm (os.pwrite, CHUNK at a time)
         └── consume=True: madvise(DONTNEED) on each written chunk of the source

The write path that the shared-memory store (``shm``), its arena and the
constant cache share, below all three of them.
"""

from __future__ import annotations

import functools
import mmap
import os

CHUNK = 64 * 2**20


def write_all(fd: int, buf: memoryview, offset: int, consume: bool = False) -> None:
    """Write all of ``buf`` at ``offset`` of ``fd``, in ``CHUNK`` pieces.

    ``consume``: the caller drops ``buf`` once it is written, so its pages
    are given back to the kernel as they are copied (for buffers of at least
    two chunks): a value of several GB is never held twice at the peak.
    """
    view = buf.cast("B") if buf.format != "B" or buf.ndim != 1 else buf
    done = 0
    total = view.nbytes
    address = buffer_address(view) if consume and total >= 2 * CHUNK else None
    while done < total:
        written = os.pwrite(fd, view[done:done + CHUNK], offset + done)
        if address is not None:
            _release(address + done, written)
        done += written


def buffer_address(view: memoryview) -> int | None:
    """Where ``view``'s bytes start in this process's memory (None if numpy cannot say)."""
    try:
        import numpy as np
        return int(np.frombuffer(view, dtype=np.uint8).ctypes.data)
    except (ImportError, ValueError, TypeError):
        return None


_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = 4


def _release(address: int, length: int) -> None:
    """Give the whole pages of [address, address + length) back to the kernel."""
    start = -(-address // _PAGE) * _PAGE
    end = (address + length) // _PAGE * _PAGE
    if end > start:
        _libc().madvise(start, end - start, _MADV_DONTNEED)


@functools.lru_cache(maxsize=1)
def _libc():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc

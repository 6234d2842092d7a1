"""Files and folders that another local user cannot plant, swap or read.

/dev/shm and the temp folder are writable by every user on the machine, so
whatever fastdag creates there is created the way nobody else can pre-empt:

* a file is a *new* name: ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600, its
  name carrying 64 random bits (``unique_name``); a name that is taken
  (a collision, or a file someone planted) is never reused: another random
  name is drawn (``create_exclusive``);
* a folder that already exists under a fixed name (the spill folder) is used
  only if it is ours, mode 0700 and not a symlink; otherwise a fresh private
  one (``mkdtemp``) replaces it (``private_dir``);
* nothing is read back, let alone unpickled, from a file that this user did
  not write: a reader opens with ``O_NOFOLLOW`` and checks the open file
  (``fstat``: a regular file, owned by our uid, no access for group or
  others) before mapping it (``open_owned``). Only our uid (or root) can
  make a file owned by our uid, and in a sticky folder such as /dev/shm
  nobody else can rename or unlink it, so a file that passes was written by
  this process, its workers, or another process of the same user, which is
  trusted as much as we are. That is the whole trust rule: no secret to
  share with workers, no per-file record to keep.

Names of ``LocalExecutor`` files start with ``fastdag-<pid>.<16 hex>-`` (its
*token*), the pid being the client's: ``sweep_orphans`` removes, at the next
executor's start, the files of a client that died without cleaning up
(SIGKILL, out of memory), and only files owned by our uid. The pid alone
could mislead where /dev/shm is shared across pid namespaces (containers of
one Kubernetes pod): a running client also holds a lock (``flock``) on its
``-status`` file, and a token whose lock can be taken is dead.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import re
import secrets
import stat
import tempfile

SHM_DIR = "/dev/shm"
NAME_BITS = 64
ATTEMPTS = 16            # names drawn before giving up (64 random bits: never, in practice)
STATUS_SUFFIX = "-status"  # a client's status file: it holds the lock that says it runs
_OWNER_NAME = re.compile(r"fastdag-((\d+)\.[0-9a-f]{16})-")


class UntrustedFile(PermissionError):
    """A file that this user did not write (or that others may have changed): never read."""


def unique_name(prefix: str, suffix: str = "") -> str:
    """``<prefix>-<64 random bits in hex><suffix>``: a name nobody can guess in advance."""
    return f"{prefix}-{secrets.token_hex(NAME_BITS // 8)}{suffix}"


def owner_token() -> str:
    """``<pid>.<16 hex>``: names this process's files so that a later start can sweep them."""
    return f"{os.getpid()}.{secrets.token_hex(8)}"


def create_exclusive(directory: str, prefix: str, suffix: str = "") -> tuple[str, int]:
    """A new file (mode 0600) under a fresh unique name in ``directory``: (name, fd).

    A name that exists (planted by someone, or a collision) is left alone
    and another is drawn.
    """
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(ATTEMPTS):
        name = unique_name(prefix, suffix)
        try:
            return name, os.open(os.path.join(directory, name), flags, 0o600)
        except FileExistsError:
            continue
    raise FileExistsError(f"{ATTEMPTS} fresh names under {directory}/{prefix}-* were all taken: "
                          "someone is planting files there")


def link_exclusive(path: str, directory: str, prefix: str) -> str:
    """Give the file at ``path`` a fresh unique name in ``directory`` (a rename that never
    replaces an existing file); return the new name."""
    for _ in range(ATTEMPTS):
        name = unique_name(prefix)
        try:
            os.link(path, os.path.join(directory, name))
        except FileExistsError:
            continue
        os.unlink(path)
        return name
    raise FileExistsError(f"{ATTEMPTS} fresh names under {directory}/{prefix}-* were all taken")


def open_owned(path: str, flags: int = os.O_RDONLY) -> int:
    """Open a file this user wrote; UntrustedFile (a PermissionError) for any other.

    FileNotFoundError when there is nothing, or a symlink, at ``path``.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink where our file should be
            raise UntrustedFile(f"{path} is a symlink, not a file fastdag wrote") from None
        raise
    st = os.fstat(fd)
    problem = _untrusted(st, stat.S_ISREG, 0o077)
    if problem:
        os.close(fd)
        raise UntrustedFile(f"{path} {problem}: not reading it")
    return fd


def owned(path: str) -> bool:
    """Whether ``path`` itself (not what a symlink points to) belongs to our uid."""
    try:
        return os.lstat(path).st_uid == os.geteuid()
    except FileNotFoundError:
        return False


def _untrusted(st: os.stat_result, is_kind, forbidden_mode: int) -> str:
    """Why a file or folder with this stat is not ours alone ("" if it is)."""
    if not is_kind(st.st_mode):
        return "is not a regular file" if is_kind is stat.S_ISREG else "is not a folder"
    if st.st_uid != os.geteuid():
        return f"belongs to uid {st.st_uid}, not to us (uid {os.geteuid()})"
    if stat.S_IMODE(st.st_mode) & forbidden_mode:
        return f"has mode {stat.S_IMODE(st.st_mode):o}, open to other users"
    return ""


def private_dir(path: str) -> str:
    """``path`` if it is (or can be made) our folder, mode 0700, not a symlink; else a fresh one.

    A folder someone else made, a symlink, or one others may write into is
    never used (it is left as it is): a new ``mkdtemp`` folder next to it
    takes its place.
    """
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return _fresh_dir(path)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or _untrusted(st, stat.S_ISDIR, 0o077) \
            or stat.S_IMODE(st.st_mode) != 0o700:
        return _fresh_dir(path)
    return path


def _fresh_dir(path: str) -> str:
    return tempfile.mkdtemp(prefix=os.path.basename(path) + "-", dir=os.path.dirname(path))


@functools.lru_cache(maxsize=None)
def _spill_dir(tmp: str, uid: int) -> str:
    return private_dir(os.path.join(tmp, f"fastdag-spill-{uid}"))


def spill_dir() -> str:
    """This user's folder for results that do not fit in /dev/shm (made on first use).

    ``$TMPDIR/fastdag-spill-<uid>`` when that is a private folder of ours,
    otherwise a fresh private folder; the same answer for the whole process.
    """
    return _spill_dir(tempfile.gettempdir(), os.geteuid())


def hold(fd: int) -> None:
    """Lock the open status file ``fd`` for as long as it (or a mapping of it) stays open:
    ``sweep_orphans`` then knows its owner runs, whatever pid namespace it is in."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def sweep_orphans(directories: list[str]) -> int:
    """Unlink our files whose owning client is gone; count them.

    Only names ``fastdag-<pid>.<16 hex>-*`` owned by our uid are touched,
    and only when their pid no longer runs and nobody holds the lock on
    their status file. A reused pid only delays the sweep.
    """
    by_token: dict[str, list[str]] = {}
    for directory in directories:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            match = _OWNER_NAME.match(entry.name)
            if match is not None:
                by_token.setdefault(match.group(1), []).append(entry.path)
    removed = 0
    for token, paths in by_token.items():
        if _running(int(token.split(".")[0])) or _locked(paths):
            continue
        for path in paths:
            if owned(path):
                try:
                    os.unlink(path)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def _locked(paths: list[str]) -> bool:
    """Whether the status file among ``paths`` is locked by a running client."""
    for path in paths:
        if not path.endswith(STATUS_SUFFIX) or not owned(path):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
    return False


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts as gone: it runs no code)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def unlink(path: str) -> bool:
    """Remove ``path``; False if it was already gone."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False

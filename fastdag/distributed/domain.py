"""Which /dev/shm this process sees: the unit within which workers share results as files.

Two processes can hand each other a result through a file in /dev/shm only
if they see the same tmpfs mount. A host name does not say that: containers
on one host have private /dev/shm mounts (unless run with ``--ipc=host``),
and a container with ``--network=host`` even shares the host's name. The
kernel's boot id (one per running kernel) and the device number of the
/dev/shm mount (one per tmpfs instance) together do: equal ids mean the same
kernel and the same mount.

``FASTDAG_SHM_DOMAIN`` overrides the id. Tests use it to give workers on one
machine different ids, as if they ran on different hosts.
"""

from __future__ import annotations

import functools
import hashlib
import os

from ..store.shm import SHM_DIR

DOMAIN_ENV = "FASTDAG_SHM_DOMAIN"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


@functools.lru_cache(maxsize=None)
def shm_domain(directory: str = SHM_DIR) -> str:
    """A short id equal for exactly the processes that see the same ``directory`` mount."""
    forced = os.environ.get(DOMAIN_ENV)
    if forced:
        return forced
    try:
        with open(BOOT_ID) as f:
            boot = f.read().strip()
    except OSError:             # not Linux: no shared /dev/shm hand-off worth trusting
        import socket
        boot = f"{socket.gethostname()}-{os.getpid()}"
    try:
        st = os.stat(directory)
        mount = f"{st.st_dev}:{st.st_ino}"
    except OSError:
        mount = f"none-{os.getpid()}"   # no /dev/shm: a domain of one process
    return hashlib.sha256(f"{boot}|{mount}".encode()).hexdigest()[:16]

"""sysctl read/write through /proc/sys (no pyroute2 needed).

Files under /proc/sys/net belong to the network namespace of the thread
that opens them: for another netns use ``Netns.sysctl_get/sysctl_set``,
which open the file while switched into that namespace.
"""

from __future__ import annotations

import os
from errno import EINVAL

from .errors import NetlinkError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["sysctl_get", "sysctl_path", "sysctl_set"]

PROC_SYS = "/proc/sys/"


def sysctl_path(name: str) -> str:
    """'net.ipv4.ip_forward', 'net/ipv4/conf/eth0.100/forwarding' or
    '/proc/sys/net/...' → the /proc/sys file.  Use the slash form when a
    component (an interface name) contains dots."""
    if name.startswith("/"):
        path = os.path.normpath(name)
        if not path.startswith(PROC_SYS):
            raise NetlinkError(EINVAL, f"sysctl path {name!r} is not under {PROC_SYS}")
        return path
    if "/" not in name:
        name = name.replace(".", "/")
    path = os.path.normpath(PROC_SYS + name)
    if not path.startswith(PROC_SYS):
        raise NetlinkError(EINVAL, f"invalid sysctl name {name!r}")
    return path


def _open(path: str, flags: int, dir_of: Callable[[str], int] | None) -> int:
    """Open a /proc/sys file, through its directory's fd when ``dir_of``
    gives one (see Netns._sysctl_dir)."""
    if dir_of is None:
        return os.open(path, flags | os.O_CLOEXEC)
    parent, _, base = path.rpartition("/")
    return os.open(base, flags | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_of(parent))


def sysctl_get(name: str, dir_of: Callable[[str], int] | None = None) -> str:
    """The value of sysctl ``name`` in the current netns, stripped."""
    path = sysctl_path(name)
    try:
        fd = _open(path, os.O_RDONLY, dir_of)
        try:
            return os.read(fd, 65536).decode().strip()
        finally:
            os.close(fd)
    except OSError as e:
        raise NetlinkError(e.errno, f"read sysctl {name}: {e.strerror}") from None


def sysctl_set(name: str, value: str | int, dir_of: Callable[[str], int] | None = None) -> None:
    """Write ``value`` to sysctl ``name`` in the current netns."""
    path = sysctl_path(name)
    try:
        fd = _open(path, os.O_WRONLY, dir_of)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise NetlinkError(e.errno, f"write sysctl {name}={value}: {e.strerror}") from None

"""Editing a container's hosts file in place.

The runtime bind-mounts the file into the container, so it must keep its
inode: it is rewritten through the same open file, never replaced.  It is
never opened through a symlink (O_NOFOLLOW), and only the lines dockline
wrote (ending in the marker ``# dockline-link <tag>``) are ever removed or
changed; lines of the runtime or the user stay as they are.
"""
from __future__ import annotations

import fcntl
import os

from ..cni.errors import INVALID_CONFIG, IO_FAILURE, CniError

MARKER = "# dockline-link "
DEFAULT_CONTENT = ("127.0.0.1\tlocalhost\n"
                   "::1\tlocalhost ip6-localhost ip6-loopback\n"
                   "fe00::0\tip6-localnet\n"
                   "ff00::0\tip6-mcastprefix\n"
                   "ff02::1\tip6-allnodes\n"
                   "ff02::2\tip6-allrouters\n")


def netns_hosts_path(netns: str) -> str | None:
    """/etc/netns/<name>/hosts for a named namespace: what ``ip netns exec``
    shows the processes as /etc/hosts."""
    for base in ("/run/netns/", "/var/run/netns/"):
        if netns.startswith(base):
            name = netns[len(base):]
            if name and "/" not in name and name not in (".", ".."):
                return f"/etc/netns/{name}/hosts"
    return None


def ensure_exists(path: str) -> bool:
    """Create a netns hosts file with the usual localhost lines; True if it
    was created (so an undo can remove it)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(DEFAULT_CONTENT)
    return True


def link_line(ip: str, alias: str, name: str, tag: str) -> str:
    names = alias if alias == name else f"{alias} {name}"
    return f"{ip}\t{names}\t{MARKER}{tag}"


def rewrite(path: str, tag: str, lines: list[str]) -> None:
    """Replace the lines marked with ``tag`` by ``lines`` (none: remove),
    in place.  A missing file is fine when there is nothing to write."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if lines:
            raise CniError(INVALID_CONFIG, "hosts file not found", path) from None
        return
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: a symlink
            raise CniError(INVALID_CONFIG, "refusing to edit a hosts file that is a symlink",
                           path) from None
        raise CniError(IO_FAILURE, "cannot open hosts file", f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "r+", encoding="utf-8", errors="surrogateescape") as f:
        if not _regular(fd):
            raise CniError(INVALID_CONFIG, "hosts file is not a regular file", path)
        fcntl.flock(fd, fcntl.LOCK_EX)
        old = f.read()
        marker = f"{MARKER}{tag}"
        kept = [line for line in old.splitlines() if not line.rstrip().endswith(marker)]
        new = "\n".join(kept + lines)
        if new:
            new += "\n"
        if new != old:
            f.seek(0)
            f.write(new)
            f.truncate()
            f.flush()


def _regular(fd: int) -> bool:
    import stat
    return stat.S_ISREG(os.fstat(fd).st_mode)


def marked_lines(path: str, tag: str) -> list[str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as f:
        marker = f"{MARKER}{tag}"
        return [line for line in f.read().splitlines() if line.rstrip().endswith(marker)]

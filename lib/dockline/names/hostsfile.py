"""Editing a container's hosts file in place, and what a hosts file may be.

The plugin runs as root and the path comes from the runtime's capability
args, so a hosts file is held to a rule (``path_problem`` and
``disk_problem``; README, "links"):

- an absolute, normalised path of printable characters, whose last
  component is ``hosts`` or ends in ``-hosts`` or ``.hosts`` (what
  runtimes use: ``.../userdata/hosts``, kubelet's ``etc-hosts``);
- not in a system tree (/etc, /proc, /sys, /dev, /boot, /usr, /root, the
  library and binary dirs) nor in CNI's own state (/var/lib/cni, the
  network's dataDir), except ``/etc/netns/<name>/hosts``, which is what
  ``ip netns exec`` shows a named namespace as /etc/hosts;
- no symlink anywhere on the path, a regular file with one link (a hard
  link could make a permitted path name a forbidden file).

It is opened by walking the path one directory at a time from ``/`` with
O_NOFOLLOW (openat), so a component swapped for a symlink after the checks
is refused rather than followed, and with O_NONBLOCK, so a FIFO cannot
hang us; the type and link count are checked again on the open file.

The file is bind-mounted into the container, so it keeps its inode: it is
rewritten through the same fd from the first byte that changes.  Lines are
split on ``\\n`` only (as glibc's reader does) and handled as bytes, so the
lines of the runtime or the user stay byte for byte; only lines ending in
the marker ``# dockline-link <tag>`` are removed or replaced.

No flock is taken on the hosts file itself: the container can reach it
and could hold such a lock for ever.  Dockline's own editors are
serialised by a lock in a root-only directory instead; nobody else
(runtimes, resolvers, editors) flocks hosts files, so a flock on the file
never protected anything but dockline against itself.
"""

from __future__ import annotations

import os

from ..cni.errors import INVALID_CONFIG, IO_FAILURE, CniError
from ..filelock import FileLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import stat_result

MARKER = "# dockline-link "
DEFAULT_CONTENT = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
# Serialises dockline's edits of any hosts file (two networks may write
# into one file).  Root-only, beside the portmap lock; a container cannot
# reach it.  The wait is bounded all the same.
EDIT_LOCK = "/var/lib/cni/dockline/hosts.lock"
EDIT_LOCK_WAIT = 5.0
MAX_SIZE = 1 << 20  # a hosts file larger than this is not one we edit
PATH_MAX = 4095
# Trees a hosts file may not be in: the host's configuration and system
# files, kernel interfaces, and CNI's own state.
FORBIDDEN_TREES = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/root",
    "/var/lib/cni",
)
# What a resolver, an editor or a Unicode-aware tool could take as the end
# of a line; nothing dockline writes may contain one.
LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")

_S_IFMT, _S_IFREG, _S_IFDIR, _S_IFLNK = 0o170000, 0o100000, 0o040000, 0o120000
ENOENT, ENOTDIR, ELOOP = 2, 20, 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def netns_hosts_path(netns: str) -> str | None:
    """/etc/netns/<name>/hosts for a named namespace: what ``ip netns exec``
    shows the processes as /etc/hosts."""
    for base in ("/run/netns/", "/var/run/netns/"):
        if netns.startswith(base):
            name = netns[len(base) :]
            if name and "/" not in name and name not in (".", "..") and name.isprintable():
                return f"/etc/netns/{name}/hosts"
    return None


def _is_netns_hosts(parts: list[str]) -> bool:
    return len(parts) == 4 and parts[0] == "etc" and parts[1] == "netns" and parts[3] == "hosts"


def path_problem(path: object, data_dir: str = "") -> str | None:
    """Why ``path`` may not be a hosts file, from the string alone."""
    if not isinstance(path, str) or not path:
        return "is empty or not a string"
    if len(path.encode("utf-8", "surrogateescape")) > PATH_MAX:
        return f"is longer than {PATH_MAX} bytes"
    if not path.isprintable():
        return "contains a control or line-separator character"
    if not path.startswith("/"):
        return "is not an absolute path"
    parts = path[1:].split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "is not a normalised path (empty, '.' or '..' component, or a trailing '/')"
    base = parts[-1]
    if not (base == "hosts" or base.endswith("-hosts") or base.endswith(".hosts")):
        return "must be named 'hosts' or end in '-hosts' or '.hosts'"
    if _is_netns_hosts(parts):
        return None
    trees = FORBIDDEN_TREES + ((os.path.normpath(data_dir),) if data_dir else ())
    for tree in trees:
        if path == tree or path.startswith(tree.rstrip("/") + "/"):
            return f"is inside {tree}, where dockline edits no file"
    return None


def _lstat(path: str) -> stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def disk_problem(path: str, must_exist: bool) -> str | None:
    """Read-only checks of what ``path`` is now (lstat of every component):
    a symlink or a non-directory on the way, or a final component that is
    not a regular file with one link.  A missing file is a problem only
    when ``must_exist``."""
    parts = path[1:].split("/")
    prefix = ""
    for i, part in enumerate(parts):
        prefix += "/" + part
        st = _lstat(prefix)
        if st is None:
            return "does not exist" if must_exist else None
        kind = st.st_mode & _S_IFMT
        if kind == _S_IFLNK:
            return f"has a symlink in its path ({prefix})" if i < len(parts) - 1 else "is a symlink"
        if i < len(parts) - 1:
            if kind != _S_IFDIR:
                return f"has a non-directory in its path ({prefix})"
        elif kind != _S_IFREG:
            return "is not a regular file"
        elif st.st_nlink != 1:
            return "has other hard links"
    return None


def check(path: object, data_dir: str = "", must_exist: bool = True) -> str:
    """``path`` if it may be used as a hosts file, else CniError code 7."""
    problem = path_problem(path, data_dir)
    if problem is None and isinstance(path, str):  # (path_problem refuses any other type)
        problem = disk_problem(path, must_exist)
        if problem is None:
            return path
    raise _refuse(path, problem or "is not a string")


def _refuse(path: object, problem: str) -> CniError:
    return CniError(INVALID_CONFIG, f"unsafe hosts file: it {problem}", repr(path))


def _open_dir(path: str, create: bool) -> int:
    """An fd of ``path``'s directory, reached one component at a time from
    ``/`` without following symlinks (creating missing ones if asked)."""
    parts = path[1:].split("/")[:-1]
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in parts:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (ENOTDIR, ELOOP):
                    raise _refuse(
                        path, f"has a symlink or a non-directory in its path ({part})"
                    ) from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open(path: str, write: bool, create_default: bool = False) -> tuple[int, bool]:
    """(fd, created) of the hosts file; FileNotFoundError when missing (and
    not to be created)."""
    dirfd = _open_dir(path, create_default)
    name = path.rsplit("/", 1)[1]
    flags = (
        (os.O_RDWR if write else os.O_RDONLY)
        | os.O_NOFOLLOW
        | os.O_NONBLOCK
        | os.O_NOCTTY
        | os.O_CLOEXEC
    )
    created = False
    try:
        try:
            if create_default:
                try:
                    fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dirfd)
                    created = True
                except FileExistsError:
                    fd = os.open(name, flags, dir_fd=dirfd)
            else:
                fd = os.open(name, flags, dir_fd=dirfd)
        except OSError as exc:
            if exc.errno == ELOOP:
                raise _refuse(path, "is a symlink") from None
            if exc.errno == ENOENT:
                raise
            raise CniError(
                IO_FAILURE, "cannot open hosts file", f"{path}: {exc.strerror}"
            ) from None
    finally:
        os.close(dirfd)
    st = os.fstat(fd)
    problem = (
        "is not a regular file"
        if st.st_mode & _S_IFMT != _S_IFREG
        else "has other hard links"
        if st.st_nlink != 1
        else "is too large"
        if st.st_size > MAX_SIZE
        else None
    )
    if problem:
        os.close(fd)
        raise _refuse(path, problem)
    if created:
        _write_at(fd, DEFAULT_CONTENT.encode(), 0)
    return fd, created


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.pread(fd, 65536, size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_SIZE:
            raise CniError(INVALID_CONFIG, "unsafe hosts file: it is too large")


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def link_line(ip: str, alias: str, name: str, tag: str) -> str:
    names = alias if alias == name else f"{alias} {name}"
    line = f"{ip}\t{names}\t{MARKER}{tag}"
    # Names are checked by name_problem and addresses by ipaddress; this is
    # the last word on what reaches the file.
    if not line.isascii() or any(
        ch in LINE_BREAKS or not (ch == "\t" or ch.isprintable()) for ch in line
    ):
        raise CniError(
            INVALID_CONFIG, "refusing to write a hosts line with a control character", repr(line)
        )
    return line


def _ours(line: bytes, marker: bytes) -> bool:
    return line.rstrip(b" \t\r").endswith(marker)


def edited(old: bytes, tag: str, lines: list[str]) -> bytes:
    """``old`` without its lines marked with ``tag`` and with ``lines``
    appended; every other byte kept.  Lines end at ``\\n`` only."""
    marker = f"{MARKER}{tag}".encode()
    parts = old.split(b"\n") if old else []
    ended = old.endswith(b"\n")
    if ended:
        parts.pop()
    kept = [p for p in parts if not _ours(p, marker)]
    if len(kept) == len(parts) and not lines:
        return old
    out = b"\n".join(kept + [line.encode() for line in lines])
    if out and (ended or lines):
        out += b"\n"
    return out


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common start of ``a`` and ``b``: what need not be
    written again (user lines before ours are never rewritten)."""
    n, limit = 0, min(len(a), len(b))
    while n + 4096 <= limit and a[n : n + 4096] == b[n : n + 4096]:
        n += 4096
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def rewrite(
    path: str, tag: str, lines: list[str], create_default: bool = False, data_dir: str = ""
) -> bool:
    """Replace the lines marked with ``tag`` by ``lines`` (none: remove),
    in place.  A missing file is fine when there is nothing to write.
    With ``create_default`` a missing file (and its directories) is made
    with the usual localhost lines; returns whether it was created."""
    problem = path_problem(path, data_dir)
    if problem:
        raise _refuse(path, problem)
    with FileLock(EDIT_LOCK, timeout=EDIT_LOCK_WAIT):
        try:
            fd, created = _open(path, write=True, create_default=create_default and bool(lines))
        except FileNotFoundError:
            if lines:
                raise CniError(INVALID_CONFIG, "hosts file not found", path) from None
            return False
        try:
            old = _read_all(fd)
            new = edited(old, tag, lines)
            if new != old:
                same = _common_prefix(old, new)
                _write_at(fd, new[same:], same)
                if len(new) < len(old):
                    os.ftruncate(fd, len(new))
        finally:
            os.close(fd)
    return created


def remove(path: str) -> None:
    """Unlink a hosts file dockline created (an ADD's undo)."""
    try:
        dirfd = _open_dir(path, create=False)
    except FileNotFoundError:
        return
    try:
        os.unlink(path.rsplit("/", 1)[1], dir_fd=dirfd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dirfd)


def marked_lines(path: str, tag: str) -> list[str]:
    if path_problem(path):
        return []
    try:
        fd, _ = _open(path, write=False)
    except (OSError, CniError):
        return []
    try:
        data = _read_all(fd)
    finally:
        os.close(fd)
    marker = f"{MARKER}{tag}".encode()
    return [
        line.decode("utf-8", "surrogateescape") for line in data.split(b"\n") if _ours(line, marker)
    ]

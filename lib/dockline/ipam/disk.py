"""The on-disk store, in the reference host-local's format byte for byte.

``<dataDir>/<network>/<ip>`` holds ``containerID\\r\\nifname``;
``last_reserved_ip.<N>`` holds the last address handed out from range set
N; ``lock`` is taken with flock around every allocation and release.  So
the reference host-local and dockline can take turns on one directory.

Unlike the reference, a reservation file is written whole before it gets
its name (write to a temporary file, then ``link`` it into place, which
fails if the name exists), so a crash never leaves an empty file that
holds an address forever.

The store runs as root in a directory others may have touched, so it
never lets a name lead it elsewhere:
- the network directory is opened once, walking the path from ``/`` one
  component at a time; it is used through its descriptor (``dir_fd``)
  from then on.  Directories are created with ``mkdirat`` and opened with
  O_NOFOLLOW.  A symlink among dataDir's components is followed only if
  root (or we) own it and its directory is writable by nobody else (the
  system's own ``/var/run -> /run``); the network directory itself is
  never a symlink.  Otherwise the store is refused (``UnsafeStore``).
- the lock, reservations and ``last_reserved_ip`` files are opened with
  O_NOFOLLOW|O_NONBLOCK and used only if fstat says regular file: a FIFO
  cannot hang us under the lock, a symlink is never read or written
  through.  A foreign object under an address's name blocks that address
  (it is never taken, released or removed).
- the temporary file is created O_EXCL|O_NOFOLLOW under one fixed name
  (writers hold the lock), replacing what a killed writer left.

The reference finds an attachment's addresses by reading every
reservation file, on ADD and on DEL: O(N) in the containers of the
network.  dockline keeps a side index instead, outside the store (so the
store stays the reference's, byte for byte, and the reference never reads
it): ``/run/dockline/ipam/<digest of dataDir and network>/`` (0700, ours
alone, walked with O_NOFOLLOW), changed only under the store's lock:
- ``a-<attachment digest>``: the attachment's addresses (JSON, written
  whole and renamed into place);
- ``i-<ip>``: "this reservation file is known": a name dockline reserved,
  or read once and found to be someone else's;
- ``s-sync``: what the store looked like when dockline last let go of its
  lock knowing every reservation in it (the network directory's inode,
  mtime, ctime and size, and the bytes of its ``last_reserved_ip`` files).
Every hint is checked before it is acted on: an address is released or
reported only if its reservation file holds the attachment's record.  DEL
reads the attachment's ``a-`` file and the files it names (O(1)); when it
is missing or wrong (the reference reserved, a crash, an older dockline,
a repeated DEL) DEL reads every reservation, as before.  ADD and CHECK
must also see a reservation someone else made for the attachment: when the
store still matches ``s-sync`` nobody else has written since, and they
read nothing more; otherwise they list the two directories (names only),
read just the reservations no ``i-`` entry knows, and the store is in sync
again.  Every writer of host-local's format creates a file in the
directory (its mtime changes) and rewrites ``last_reserved_ip`` (its bytes
change, even within one tick of a coarse clock), so a foreign reservation
is never taken for "nothing changed".  The index lives in /run: it is
gone after a reboot, and the first calls then read the store.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from .. import interrupt
from ..cni.attachment import Attachment
from ..cni.errors import IO_FAILURE, CniError
from ..cni.jsonio import dumps, loads
from .store import Reservation, Store

try:  # as cni.attachment (already loaded there): hashlib costs ~5 ms to import
    from _blake2 import blake2b
except ImportError:  # pragma: no cover
    from hashlib import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LAST_RESERVED_PREFIX = "last_reserved_ip."
LOCK_NAME = "lock"
_TMP_NAME = ".dockline-tmp"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_SYMLINKS = 40  # as the kernel's own limit on a path
# The side index (module docstring): its root, whose last two components
# are ours alone (made 0700 if missing, refused if anyone else may write).
INDEX_ROOT = "/run/dockline/ipam"
_INDEX_PRIVATE = 2
_ATTACH_PREFIX = "a-"
_KNOWN_PREFIX = "i-"
_SYNC_NAME = "s-sync"
_INDEX_TMP = ".tmp"
_MAX_INDEX = 1 << 16  # an a- file holds a few addresses
# Opening these means "not a file we can use": a symlink (ELOOP under
# O_NOFOLLOW), a socket (ENXIO), gone, or a component that is not a dir.
_NOT_A_FILE = frozenset((errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.ENOTDIR, errno.EISDIR))


def is_reservation_name(name: str) -> bool:
    return not (name == LOCK_NAME or name.startswith(LAST_RESERVED_PREFIX) or name.startswith("."))


class UnsafeStore(CniError):
    """The store's path leads through a symlink or object we will not use."""

    def __init__(self, details: str) -> None:
        super().__init__(IO_FAILURE, "host-local: refusing the address store", details)


def _trusted_link(st: os.stat_result, dir_fd: int) -> bool:
    """A symlink only root (or we) could have made: owned by root or us, in
    a directory owned by root or us that nobody else may write."""
    owners = (0, os.geteuid())
    parent = os.fstat(dir_fd)
    return (
        st.st_uid in owners
        and parent.st_uid in owners
        and not parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def open_dir(path: str, create: bool) -> int | None:
    """A descriptor of the absolute directory ``path``, walked from ``/``;
    missing components are created (0755) when ``create``, else None is
    returned.  Symlinks: see the module docstring."""
    fd = os.open("/", _DIR_FLAGS)
    todo = [p for p in path.split("/") if p not in ("", ".")]
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            try:
                nfd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass  # a concurrent creator; open it (without following) below
                nfd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise UnsafeStore(f"{path}: {name!r} is not a directory") from None
                links += 1
                if not _trusted_link(st, fd) or links > _MAX_SYMLINKS:
                    raise UnsafeStore(
                        f"{path}: will not follow the symlink {name!r} "
                        "(not made by root, or in a directory others can write)"
                    ) from None
                target = os.readlink(name, dir_fd=fd)
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                todo[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


class _Lock:
    """The store's flock, held on ``<network dir>/lock``; while held, the
    store works through the directory descriptor opened for it."""

    def __init__(self, store: DiskStore, create: bool) -> None:
        self.store = store
        self.create = create
        self.lock_fd = -1

    def __enter__(self) -> _Lock:
        store = self.store
        dir_fd = store.open(self.create)
        if dir_fd is None:
            return self  # nothing stored: nothing to lock
        try:
            try:
                fd = os.open(
                    LOCK_NAME,
                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                    0o600,
                    dir_fd=dir_fd,
                )
            except OSError as exc:
                if exc.errno in _NOT_A_FILE:
                    raise CniError(
                        IO_FAILURE,
                        "host-local: cannot take the store lock",
                        f"{store.dir}/{LOCK_NAME} is not a regular file",
                    ) from None
                raise
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise CniError(
                        IO_FAILURE,
                        "host-local: cannot take the store lock",
                        f"{store.dir}/{LOCK_NAME} is not a regular file",
                    )
                with interrupt.waiting():
                    fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            os.close(dir_fd)
            raise
        self.lock_fd = fd
        store.dir_fd = dir_fd
        try:  # a writer killed under this lock may have left its temp file
            os.unlink(_TMP_NAME, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        store = self.store
        store.leave_in_sync()
        if store.index_fd is not None:
            if store.index_fd >= 0:
                os.close(store.index_fd)
            store.index_fd = None
        if store.dir_fd is not None:
            os.close(store.dir_fd)
            store.dir_fd = None
        if self.lock_fd >= 0:
            os.close(self.lock_fd)  # closing drops the flock
            self.lock_fd = -1


def _open_private(parent: int, name: str) -> int:
    """``name`` in ``parent``, made 0700 if missing; an fd of it if it is
    a real directory of ours that nobody else may write, else OSError.
    Closes ``parent``."""
    try:
        try:
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
        except FileNotFoundError:
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                pass
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    finally:
        os.close(parent)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise PermissionError(errno.EPERM, "not ours alone", name)
    return fd


class DiskStore(Store):
    def __init__(self, network: str, data_dir: str = "", index_root: str | None = None) -> None:
        # data_dir comes checked from the config (absolute, no '..');
        # network is a validated identifier.  index_root: where the side
        # index lives (the plugin passes INDEX_ROOT); None: no index,
        # every lookup reads the store.
        self.data_dir = data_dir or DEFAULT_DATA_DIR
        self.network = network
        self.dir = os.path.join(self.data_dir, network)
        self.dir_fd: int | None = None
        self.index_root = index_root
        self.index_fd: int | None = None  # -1: tried, unusable
        # Under the lock: whether the index knows every reservation (None:
        # not asked yet), and the last_reserved_ip names the token covers.
        self.in_sync: bool | None = None
        self.last_names: set[str] = set()

    def open(self, create: bool) -> int | None:
        """A descriptor of the network directory (None if it does not exist
        and ``create`` is false)."""
        parent = open_dir(self.data_dir, create)
        if parent is None:
            return None
        try:
            if create:
                try:
                    os.mkdir(self.network, 0o755, dir_fd=parent)
                except FileExistsError:
                    pass
            try:
                return os.open(self.network, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
            except FileNotFoundError:
                if create:
                    raise
                return None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeStore(f"{self.dir} is a symlink or not a directory") from None
                raise
        finally:
            os.close(parent)

    def lock(self, create: bool = True) -> _Lock:
        return _Lock(self, create)

    # --- helpers working in the held directory ------------------------------

    def _fd(self) -> int:
        if self.dir_fd is None:
            raise RuntimeError("the store is used outside its lock")
        return self.dir_fd

    def _read(self, name: str, limit: int, dir_fd: int | None = None) -> bytes | None:
        """Up to ``limit`` bytes of ``name`` if it is a regular file; None
        for anything else (missing, symlink, FIFO, socket, directory)."""
        dfd = self._fd() if dir_fd is None else dir_fd
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in _NOT_A_FILE:
                return None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            chunks = []
            while limit > 0:
                chunk = os.read(fd, limit)
                if not chunk:
                    break
                chunks.append(chunk)
                limit -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _write_tmp(self, data: bytes, mode: int) -> str:
        """A fresh private file holding ``data``, to be given its name.
        Writers hold the store's lock, so one fixed name serves: what a
        killed writer left there is replaced, never piled up."""
        dfd = self._fd()
        tmp = _TMP_NAME
        try:
            fd = os.open(tmp, _TMP_FLAGS, mode, dir_fd=dfd)
        except FileExistsError:
            os.unlink(tmp, dir_fd=dfd)  # unlink never follows a planted symlink
            fd = os.open(tmp, _TMP_FLAGS, mode, dir_fd=dfd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=dfd)
            raise
        os.close(fd)
        return tmp

    def _write_new(self, name: str, data: bytes) -> bool:
        """Create ``name`` holding ``data`` only if it does not exist yet."""
        dfd = self._fd()
        tmp = self._write_tmp(data, 0o600)
        try:
            os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp, dir_fd=dfd)

    def _replace(self, name: str, data: bytes) -> None:
        # rename replaces the name itself, never what a symlink there points to
        dfd = self._fd()
        tmp = self._write_tmp(data, 0o644)
        try:
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            os.unlink(tmp, dir_fd=dfd)
            raise

    # --- the Store interface -------------------------------------------------

    def reserve(self, container_id: str, ifname: str, ip: str, range_id: str) -> bool:
        try:  # taken: refused without writing a temporary file
            st = os.stat(ip, dir_fd=self._fd(), follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size:
                return False
        except FileNotFoundError:
            pass
        record = f"{container_id}\r\n{ifname}".encode()
        if not self._write_new(ip, record):
            if not self._reclaim_empty(ip):
                return False
            if not self._write_new(ip, record):
                return False
        self._replace(LAST_RESERVED_PREFIX + range_id, ip.encode())
        self.last_names.add(LAST_RESERVED_PREFIX + range_id)
        return True

    def _reclaim_empty(self, ip: str) -> bool:
        """An empty reservation file can only be left by a writer that
        crashed between create and write (the reference writes in two
        steps): we hold the lock, so nobody is writing it now.  Anything
        but an empty regular file is left alone."""
        dfd = self._fd()
        try:
            st = os.stat(ip, dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size != 0:
                return False
            os.unlink(ip, dir_fd=dfd)
            return True
        except FileNotFoundError:
            return True

    def last_reserved(self, range_id: str) -> str | None:
        data = self._read(LAST_RESERVED_PREFIX + range_id, 256)
        if data is None:
            return None
        return data.decode(errors="replace").strip() or None

    def set_last_reserved(self, range_id: str, ip: str | None) -> None:
        self.last_names.add(LAST_RESERVED_PREFIX + range_id)
        if ip is None:
            try:
                os.unlink(LAST_RESERVED_PREFIX + range_id, dir_fd=self._fd())
            except FileNotFoundError:
                pass
        else:
            self._replace(LAST_RESERVED_PREFIX + range_id, ip.encode())

    def release(self, ip: str) -> None:
        # Only regular files are reservations; anything else under an
        # address's name is not ours to remove.
        dfd = self._fd()
        try:
            if stat.S_ISREG(os.stat(ip, dir_fd=dfd, follow_symlinks=False).st_mode):
                os.unlink(ip, dir_fd=dfd)
        except FileNotFoundError:
            pass

    def reservations(self) -> Iterator[Reservation]:
        if self.dir_fd is not None:
            yield from self._reservations(self.dir_fd)
            return
        dfd = self.open(create=False)  # a read outside the lock (tests, tools)
        if dfd is None:
            return
        try:
            yield from self._reservations(dfd)
        finally:
            os.close(dfd)

    def _reservations(self, dfd: int) -> Iterator[Reservation]:
        for name in os.listdir(dfd):
            if not is_reservation_name(name):
                continue
            data = self._read(name, 4096, dfd)
            if data is None:
                continue
            yield _parse(name, data)

    # --- the side index (module docstring) --------------------------------------

    def _index(self) -> int | None:
        """The index directory's fd (opened once per lock), or None when
        there is no index or it cannot be used: then lookups read the
        store, as without one."""
        if self.index_root is None or self.dir_fd is None:
            return None
        if self.index_fd is None:
            self.index_fd = -1
            parts = [p for p in self.index_root.split("/") if p]
            key = blake2b(f"{self.data_dir}\0{self.network}".encode(), digest_size=8).hexdigest()
            try:
                fd = open_dir("/" + "/".join(parts[:-_INDEX_PRIVATE]), create=False)
                if fd is not None:
                    for name in parts[-_INDEX_PRIVATE:] + [key]:
                        fd = _open_private(fd, name)
                    self.index_fd = fd
            except (OSError, CniError):
                pass
        return self.index_fd if self.index_fd >= 0 else None

    def _attach_name(self, container_id: str, ifname: str) -> str:
        return _ATTACH_PREFIX + Attachment(self.network, container_id, ifname).hosts_tag

    def _indexed(self, ix: int, container_id: str, ifname: str) -> list[str] | None:
        """The addresses the attachment's ``a-`` file lists; None if there
        is none (or it is not the attachment's, or unreadable)."""
        data = self._read(self._attach_name(container_id, ifname), _MAX_INDEX, ix)
        if data is None:
            return None
        try:
            doc = loads(data)
        except ValueError:
            return None
        if not (
            isinstance(doc, dict)
            and doc.get("id") == container_id
            and doc.get("ifname") == ifname
            and isinstance(doc.get("ips"), list)
            and all(isinstance(ip, str) and _plain_name(ip) for ip in doc["ips"])
        ):
            return None
        return list(doc["ips"])

    def _holds(self, ip: str, container_id: str, ifname: str) -> bool:
        """Whether ip's reservation file holds the attachment's record."""
        data = self._read(ip, 4096)
        if data is None:
            return False
        return _parse(ip, data).belongs_to(container_id, ifname)

    def _index_write(self, ix: int, name: str, data: bytes) -> None:
        """``name`` in the index, written whole and renamed into place."""
        try:
            fd = os.open(_INDEX_TMP, _TMP_FLAGS, 0o600, dir_fd=ix)
        except FileExistsError:
            os.unlink(_INDEX_TMP, dir_fd=ix)
            fd = os.open(_INDEX_TMP, _TMP_FLAGS, 0o600, dir_fd=ix)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(_INDEX_TMP, name, src_dir_fd=ix, dst_dir_fd=ix)

    @staticmethod
    def _index_unlink(ix: int, name: str) -> None:
        try:
            os.unlink(name, dir_fd=ix)
        except FileNotFoundError:
            pass

    def owned(self, container_id: str, ifname: str) -> list[str]:
        ix = self._index()
        if ix is None:
            return super().owned(container_id, ifname)
        mine: list[str] = []
        stale: list[str] = []  # listed, but the file says otherwise: not known any more
        for ip in self._indexed(ix, container_id, ifname) or []:
            (mine if self._holds(ip, container_id, ifname) else stale).append(ip)
        if self._synced(ix):  # nobody else wrote: the a- file says it all
            try:
                for ip in stale:
                    self._index_unlink(ix, _KNOWN_PREFIX + ip)
            except OSError:
                self.in_sync = False
            return mine
        listing = os.listdir(self._fd())
        names = {n for n in listing if is_reservation_name(n)}
        self.last_names.update(n for n in listing if n.startswith(LAST_RESERVED_PREFIX))
        known = {n[len(_KNOWN_PREFIX) :] for n in os.listdir(ix) if n.startswith(_KNOWN_PREFIX)}
        known -= set(stale)
        try:
            for ip in stale:
                self._index_unlink(ix, _KNOWN_PREFIX + ip)
            for ip in known - names:  # released by someone else: forget it
                self._index_unlink(ix, _KNOWN_PREFIX + ip)
            complete = True  # every reservation is known once this loop is done
            for name in names - known:  # made by someone else: read it, once
                data = self._read(name, 4096)
                if data is None:
                    continue
                res = _parse(name, data)
                if res.belongs_to(container_id, ifname) and name not in mine:
                    mine.append(name)
                # Adopted: its owner's a- file lists it from now on, so no
                # ADD reads it again and its DEL needs no scan.  An empty
                # record (may be reclaimed) or one without ifname is read
                # every time instead: the store is never "in sync" with it.
                if res.container_id and res.ifname:
                    self._record(ix, res.container_id, res.ifname, [name])
                else:
                    complete = False
            self.in_sync = complete
        except OSError:
            pass  # the index only saves reads: a write that fails costs them again
        return mine

    # --- the sync token (module docstring) ----------------------------------

    def _token(self) -> bytes:
        """The store as the token sees it now (under the lock)."""
        st = os.fstat(self._fd())
        parts = [f"{st.st_ino} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_size}".encode()]
        for name in sorted(self.last_names):
            data = self._read(name, 256)
            parts.append(name.encode() + b" " + (b"-" if data is None else data.hex().encode()))
        return b"\n".join(parts)

    def _synced(self, ix: int) -> bool:
        """Whether the store is as dockline left it in sync (asked once per
        lock, before this call changes anything)."""
        if self.in_sync is None:
            self.in_sync = False
            saved = self._read(_SYNC_NAME, 4096, ix)
            if saved:
                self.last_names = {
                    line.split(b" ", 1)[0].decode(errors="replace")
                    for line in saved.split(b"\n")[1:]
                }
                if not all(_is_last_name(n) for n in self.last_names):
                    self.last_names = set()
                else:
                    self.in_sync = self._token() == saved
        return self.in_sync

    def leave_in_sync(self) -> None:
        """At the lock's release: when the index knew every reservation at
        the start and only we wrote since, say so for the next call; else
        make sure the next call reads the store."""
        ix = self.index_fd if self.index_fd is not None and self.index_fd >= 0 else None
        in_sync, self.in_sync = self.in_sync, None
        last_names, self.last_names = self.last_names, set()
        if ix is None or self.dir_fd is None or in_sync is None:
            return
        try:
            if in_sync:
                self.last_names = last_names
                self._index_write(ix, _SYNC_NAME, self._token())
            else:
                self._index_unlink(ix, _SYNC_NAME)
        except OSError:
            try:
                self._index_unlink(ix, _SYNC_NAME)
            except OSError:
                pass
        finally:
            self.last_names = set()

    def recorded(self, container_id: str, ifname: str, ips: list[str]) -> None:
        ix = self._index()
        if ix is None:
            return
        try:
            self._record(ix, container_id, ifname, ips)
        except OSError:
            self.in_sync = False  # DEL and the next ADD read the store, as without an index

    def _record(self, ix: int, container_id: str, ifname: str, ips: list[str]) -> None:
        """Add ``ips`` to the attachment's a- file (keeping what it lists
        that still checks out) and mark them known."""
        listed = [
            ip
            for ip in self._indexed(ix, container_id, ifname) or []
            if ip not in ips and self._holds(ip, container_id, ifname)
        ]
        for ip in ips:
            self._index_write(ix, _KNOWN_PREFIX + ip, b"")
        doc = {"id": container_id, "ifname": ifname, "ips": listed + ips}
        self._index_write(ix, self._attach_name(container_id, ifname), dumps(doc).encode())

    def release_by_id(self, container_id: str, ifname: str) -> list[str]:
        ix = self._index()
        if ix is None:
            return super().release_by_id(container_id, ifname)
        self._synced(ix)  # before anything changes: may the token be renewed?
        listed = self._indexed(ix, container_id, ifname) or []
        held = [ip for ip in listed if self._holds(ip, container_id, ifname)]
        if listed and held == listed:
            released = listed
            for ip in released:
                self.release(ip)
        else:  # not indexed, or the index is out of date: read them all
            released = super().release_by_id(container_id, ifname)
        # The reservations are gone first: a crash from here leaves hints
        # that no longer check out, never a reservation without them.  A
        # listed address now someone else's (the reference released and
        # reused it) is no longer "known": the next ADD reads it.
        try:
            for ip in set(released) | set(listed):
                self._index_unlink(ix, _KNOWN_PREFIX + ip)
            self._index_unlink(ix, self._attach_name(container_id, ifname))
        except OSError:
            self.in_sync = False
        return released

    def prune_index(self) -> None:
        """Drop every hint that no longer checks out (GC: reads them all)."""
        ix = self._index()
        if ix is None:
            return
        names = {n for n in os.listdir(self._fd()) if is_reservation_name(n)}
        try:
            for entry in os.listdir(ix):
                if entry.startswith(_KNOWN_PREFIX):
                    if entry[len(_KNOWN_PREFIX) :] not in names:
                        self._index_unlink(ix, entry)
                    continue
                if entry.startswith(_ATTACH_PREFIX):
                    data = self._read(entry, _MAX_INDEX, ix)
                    doc = _loads_or_none(data)
                    ok = (
                        isinstance(doc, dict)
                        and isinstance(doc.get("id"), str)
                        and isinstance(doc.get("ifname"), str)
                        and entry == self._attach_name(doc["id"], doc["ifname"])
                        and self._indexed(ix, doc["id"], doc["ifname"]) is not None
                        and all(self._holds(ip, doc["id"], doc["ifname"]) for ip in doc["ips"])
                    )
                    if ok:
                        continue
                self._index_unlink(ix, entry)
        except OSError:
            pass

    def check_writable(self) -> None:
        with self.lock():
            ix = self._index()
            if ix is not None:
                self._synced(ix)  # STATUS's probe is ours: it keeps the store in sync
            os.unlink(self._write_tmp(b"", 0o600), dir_fd=self._fd())


def _is_last_name(name: str) -> bool:
    return name.startswith(LAST_RESERVED_PREFIX) and "/" not in name and "\0" not in name


def _plain_name(name: str) -> bool:
    """A reservation's name that stays in its directory."""
    return bool(name) and "/" not in name and "\0" not in name and is_reservation_name(name)


def _parse(name: str, data: bytes) -> Reservation:
    """A reservation file's record: ``containerID\\r\\nifname``, or the ID
    alone as older writers left it."""
    text = data.decode(errors="replace").strip()
    cid, sep, ifname = text.partition("\r\n")
    return Reservation(name, cid.strip(), ifname.strip() if sep else None)


def _loads_or_none(data: bytes | None) -> object:
    if data is None:
        return None
    try:
        return loads(data)
    except ValueError:
        return None

"""The on-disk store, in the reference host-local's format byte for byte.

``<dataDir>/<network>/<ip>`` holds ``containerID\\r\\nifname``;
``last_reserved_ip.<N>`` holds the last address handed out from range set
N; ``lock`` is taken with flock around every allocation and release.  So
the reference host-local and dockline can take turns on one directory.

Unlike the reference, a reservation file is written whole before it gets
its name (write to a temporary file, then ``link`` it into place, which
fails if the name exists), so a crash never leaves an empty file that
holds an address forever.
"""
from __future__ import annotations

import os

from ..filelock import FileLock
from .store import Reservation, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator, Optional

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LAST_RESERVED_PREFIX = "last_reserved_ip."
LOCK_NAME = "lock"
_TMP_PREFIX = ".dockline-tmp-"


def is_reservation_name(name: str) -> bool:
    return not (name == LOCK_NAME or name.startswith(LAST_RESERVED_PREFIX)
                or name.startswith("."))


class DiskStore(Store):
    def __init__(self, network: str, data_dir: str = "") -> None:
        self.dir = os.path.join(data_dir or DEFAULT_DATA_DIR, network)

    def lock(self) -> FileLock:
        return FileLock(os.path.join(self.dir, LOCK_NAME))

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _write_tmp(self, data: bytes, mode: int) -> str:
        """A private temporary file holding ``data``, to be given its name."""
        tmp = self._path(f"{_TMP_PREFIX}{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return tmp

    def _write_new(self, name: str, data: bytes) -> bool:
        """Create ``name`` holding ``data`` only if it does not exist yet."""
        tmp = self._write_tmp(data, 0o600)
        try:
            os.link(tmp, self._path(name))
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def _replace(self, name: str, data: bytes) -> None:
        os.rename(self._write_tmp(data, 0o644), self._path(name))

    def reserve(self, container_id: str, ifname: str, ip: str, range_id: str) -> bool:
        record = f"{container_id}\r\n{ifname}".encode()
        if not self._write_new(ip, record):
            if not self._reclaim_empty(ip):
                return False
            if not self._write_new(ip, record):
                return False
        self._replace(LAST_RESERVED_PREFIX + range_id, ip.encode())
        return True

    def _reclaim_empty(self, ip: str) -> bool:
        """An empty reservation file can only be left by a writer that
        crashed between create and write (the reference writes in two
        steps): we hold the lock, so nobody is writing it now."""
        try:
            if os.stat(self._path(ip)).st_size != 0:
                return False
            os.unlink(self._path(ip))
            return True
        except FileNotFoundError:
            return True

    def last_reserved(self, range_id: str) -> Optional[str]:
        try:
            with open(self._path(LAST_RESERVED_PREFIX + range_id), "rb") as f:
                return f.read().decode(errors="replace").strip() or None
        except FileNotFoundError:
            return None

    def set_last_reserved(self, range_id: str, ip: Optional[str]) -> None:
        if ip is None:
            try:
                os.unlink(self._path(LAST_RESERVED_PREFIX + range_id))
            except FileNotFoundError:
                pass
        else:
            self._replace(LAST_RESERVED_PREFIX + range_id, ip.encode())

    def release(self, ip: str) -> None:
        try:
            os.unlink(self._path(ip))
        except FileNotFoundError:
            pass

    def reservations(self) -> Iterator[Reservation]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            if not is_reservation_name(name):
                continue
            try:
                with open(self._path(name), "rb") as f:
                    data = f.read(4096)
            except (IsADirectoryError, FileNotFoundError):
                continue
            text = data.decode(errors="replace").strip()
            cid, sep, ifname = text.partition("\r\n")
            yield Reservation(name, cid.strip(), ifname.strip() if sep else None)

    def check_writable(self) -> None:
        with self.lock():
            probe = self._path(f"{_TMP_PREFIX}status-{os.getpid()}")
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            os.close(fd)
            os.unlink(probe)

"""Whether a directory was listed: inotify reports IN_ACCESS on a watched
directory when someone reads its entries (getdents), and not when files
in it are created, opened or removed, or when it is stat'ed.  Plain
ctypes on libc: no package needed."""

from __future__ import annotations

import ctypes
import os
import struct

IN_ACCESS = 0x1
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len

_libc = ctypes.CDLL(None, use_errno=True)


class DirWatch:
    """``with DirWatch(path) as w: ...; w.listed()``"""

    def __init__(self, *paths: str) -> None:
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.paths: dict[int, str] = {}
        for path in paths:
            wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), IN_ACCESS)
            if wd < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch", path)
            self.paths[wd] = path

    def listed(self) -> list[str]:
        """The watched directories read (listed) since the last call."""
        seen: set[str] = set()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                # length 0: no name, the event is the directory's own
                if mask & IN_ACCESS and wd in self.paths and length == 0:
                    seen.add(self.paths[wd])
        return sorted(seen)

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

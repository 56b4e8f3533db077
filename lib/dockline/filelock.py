"""An exclusive flock on a file, held for a with-block: the locking
discipline of the address store (the reference's), the name registry and
the iptables port check.

The lock file is opened without following a symlink and without blocking
(a FIFO planted in its place cannot hang us), and must be a regular file.
By default the flock waits as long as it takes (these files live in
root-only state directories); with ``timeout`` it waits at most that many
seconds and then fails with code 11, so a holder that never lets go costs
the caller an error, not its life.
"""

from __future__ import annotations

import fcntl
import os

from . import interrupt
from .cni.errors import IO_FAILURE, TRY_AGAIN_LATER, CniError

_S_IFMT, _S_IFREG = 0o170000, 0o100000
ELOOP = 40


def open_regular(path: str, flags: int, mode: int = 0o600) -> int:
    """``os.open`` refusing symlinks and anything but a regular file; the
    open itself never blocks (O_NONBLOCK), the returned fd is blocking."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, mode)
    except OSError as exc:
        if exc.errno == ELOOP:
            raise CniError(IO_FAILURE, "refusing to open a symlink", path) from None
        raise
    try:
        if os.fstat(fd).st_mode & _S_IFMT != _S_IFREG:
            raise CniError(IO_FAILURE, "not a regular file", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class FileLock:
    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> FileLock:
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        self.fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if self.timeout is None:
                with interrupt.waiting():
                    fcntl.flock(self.fd, fcntl.LOCK_EX)
            else:
                self._wait(self.timeout)
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise
        return self

    def _wait(self, timeout: float) -> None:
        """Poll LOCK_NB: a blocking flock cannot be given a deadline without
        signals, which a zygote child must not rely on."""
        import time

        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                raise CniError(
                    TRY_AGAIN_LATER,
                    "a lock is held by another process",
                    f"{self.path} still locked after {timeout:g} s",
                )
            with interrupt.waiting():
                time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1

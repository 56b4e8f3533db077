"""The one exception type of dockline.netlink (cheap to import: no pyroute2)."""

from __future__ import annotations

import os


class NetlinkError(OSError):
    """A failed netlink / netns / sysctl operation.

    ``errno`` is the kernel's (positive) error number, so callers can test
    ``err.errno == errno.EEXIST``; ``message`` says what was being done, and
    includes the kernel's extended-ack text when it sent one.
    """

    # errno may be None only when copied from an OSError that had none
    # (never for the syscalls wrapped here): OSError's own type says so.
    def __init__(self, errno: int | None, message: str) -> None:
        super().__init__(errno, message)

    @property
    def message(self) -> str:
        return self.strerror or ""

    def __str__(self) -> str:
        return self.strerror or ""

    @classmethod
    def from_errno(cls, errno: int, what: str, detail: str | None = None) -> NetlinkError:
        text = f"{what}: {os.strerror(errno)}"
        if detail:
            text += f" ({detail})"
        return cls(errno, text)


class NetnsError(NetlinkError):
    """The network namespace path is missing, not a netns, or not usable."""

"""What an attachment's ADD put in the firewall, so its DEL removes exactly
that without listing any table.

One small JSON file per attachment and rule set,
``/var/lib/cni/dockline/firewall/<kind>/<tag>``, written before the rules
(so no rule of ours exists without its record) and removed after them.
A DEL reads one file whatever the number of containers; GC lists the
directory (GC is the one call allowed to be O(N)).  The kernel's objects
carry the tag too (element comments, chain names), so GC still finds
what a lost record would have named.

Records are root's own state, but what they hold goes back into the
firewall: readers check every value as they would a request's.
"""

from __future__ import annotations

import os

from ..cni import jsonio
from . import tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_DIR = "/var/lib/cni/dockline/firewall"
KINDS = ("masq", "portmap")


def _dir(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(kind)
    return f"{STATE_DIR}/{kind}"


def path(kind: str, tag: str) -> str:
    return f"{_dir(kind)}/{tokens.hex_tag(tag)}"


def write(kind: str, tag: str, doc: dict[str, Any]) -> None:
    """Replace the record atomically (a reader sees the old or the new)."""
    final = path(kind, tag)
    os.makedirs(_dir(kind), 0o700, exist_ok=True)
    tmp = f"{final}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, jsonio.dumps(doc).encode())
    finally:
        os.close(fd)
    os.replace(tmp, final)


def read(kind: str, tag: str) -> dict[str, Any] | None:
    """The record, or None when there is none (or it is not readable
    JSON: a torn file is treated as absent, GC reclaims the rest)."""
    try:
        fd = os.open(path(kind, tag), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: a symlink planted in our place
            return None
        raise
    try:
        data = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    try:
        doc = jsonio.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def remove(kind: str, tag: str) -> None:
    try:
        os.unlink(path(kind, tag))
    except FileNotFoundError:
        pass


def tags(kind: str, prefix: str = "") -> list[str]:
    """Tags with a record of ``kind`` starting with ``prefix`` (GC)."""
    try:
        names = os.listdir(_dir(kind))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix) and tokens.HEX_CHARS.issuperset(n) and n)

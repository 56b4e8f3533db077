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

from .. import atomic
from ..cni import jsonio
from . import tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_DIR = "/var/lib/cni/dockline/firewall"
KINDS = ("masq", "portmap")
CLAIMS = f"{STATE_DIR}/claims"
_CLAIM_CHARS = tokens.HEX_CHARS | frozenset("0123456789.:-_abcdefghijklmnopqrstuvwxyz")


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
    # One name per record: a runtime never runs two calls for one
    # attachment at once, and a killed writer's file is found by remove()
    # (DEL) and tags() (GC) without listing.
    atomic.replace(f"{final}.tmp", final, jsonio.dumps(doc).encode())


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
    """The record, and what a writer killed mid-write left beside it."""
    final = path(kind, tag)
    for name in (final, f"{final}.tmp"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def tags(kind: str, prefix: str = "") -> list[str]:
    """Tags with a record of ``kind`` (or a killed writer's temporary
    file) starting with ``prefix`` (GC)."""
    try:
        names = os.listdir(_dir(kind))
    except FileNotFoundError:
        return []
    found = {n[:-4] if n.endswith(".tmp") else n for n in names}
    return sorted(n for n in found if n.startswith(prefix) and tokens.HEX_CHARS.issuperset(n) and n)


# --- claims: unique keys where the firewall has none (iptables) ---------------------


def _claim_path(key: str) -> str:
    if not key or len(key) > 80 or not _CLAIM_CHARS.issuperset(key) or key[0] == ".":
        raise ValueError(f"bad claim key {key!r}")
    return f"{CLAIMS}/{key}"


def claim(key: str, tag: str) -> str | None:
    """Take ``key`` for attachment ``tag`` (the caller holds a lock over
    every claim).  Returns the other attachment holding it, or None when
    it is ours now.  A claim whose owner has no record any more (its DEL
    ran, or the state was lost) is taken over."""
    path = _claim_path(key)
    os.makedirs(CLAIMS, 0o700, exist_ok=True)
    owner = _owner(path)
    if owner and owner != tag and read("portmap", owner) is not None:
        return owner
    tmp = f"{path}.tmp"  # one name: claims are made under one lock
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, tokens.hex_tag(tag).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return None


def _owner(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 100).decode(errors="replace")
    finally:
        os.close(fd)
    return text if text and tokens.HEX_CHARS.issuperset(text) else None


def unclaim(key: str, tag: str) -> None:
    """Give ``key`` back if ``tag`` holds it."""
    try:
        path = _claim_path(key)
    except ValueError:
        return
    if _owner(path) == tag:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    if _owner(f"{path}.tmp") == tag:  # a claimer killed mid-write
        try:
            os.unlink(f"{path}.tmp")
        except FileNotFoundError:
            pass


def claims(prefix: str) -> list[tuple[str, str]]:
    """(key, owner) of every claim whose owner starts with ``prefix`` (GC)."""
    try:
        names = os.listdir(CLAIMS)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name.endswith(".tmp"):
            continue
        owner = _owner(f"{CLAIMS}/{name}")
        if owner and owner.startswith(prefix):
            out.append((name, owner))
    return out

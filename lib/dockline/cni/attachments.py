"""The GC command's list of attachments that are still valid."""

from __future__ import annotations

from .errors import INVALID_CONFIG, CniError

VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")


def valid_attachments(config: dict) -> set[tuple[str, str]]:
    """(containerID, ifname) pairs the runtime still uses.  An absent list
    means none is valid, as libcni sends for ``cnitool gc``."""
    items = None
    for key in VALID_ATTACHMENTS_KEYS:
        if key in config:
            items = config[key]
            break
    if items is None:  # absent or null: none is valid
        items = []
    # Anything else that is not a list ({}, false, "") is garbage, not
    # "nothing is valid": read so, it would tear down every live container.
    if not isinstance(items, list):
        raise CniError(INVALID_CONFIG, "invalid valid-attachments", "not a list")
    out = set()
    for item in items:
        cid = item.get("containerID") if isinstance(item, dict) else None
        ifname = item.get("ifname") if isinstance(item, dict) else None
        # A malformed entry must stop GC: read as "not valid", it would
        # release a live container's resources.
        if not (isinstance(cid, str) and cid and isinstance(ifname, str) and ifname):
            raise CniError(
                INVALID_CONFIG,
                "invalid valid-attachments entry",
                f"{item!r}: needs string containerID and ifname",
            )
        out.add((cid, ifname))
    return out

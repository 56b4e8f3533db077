"""CNI spec versions and their ordering."""

from __future__ import annotations

from .errors import INCOMPATIBLE_VERSION, CniError

SUPPORTED = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"
# A config without cniVersion is read as 0.1.0, as libcni does.
DEFAULT = "0.1.0"


def key(version: str) -> tuple[int, ...]:
    """Sortable form of a version string; raises ValueError if malformed."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"malformed version {version!r}")
    return tuple(int(p) for p in parts)


def at_least(version: str, minimum: str) -> bool:
    return key(version) >= key(minimum)


def require_supported(version: str) -> None:
    if version not in SUPPORTED:
        raise CniError(
            INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            f"config is {version!r}, plugin supports {list(SUPPORTED)}",
        )

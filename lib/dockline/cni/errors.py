"""CNI error codes and the one exception type plugins raise.

Every failure a plugin can foresee is a ``CniError`` carrying a spec code;
``skel`` turns it into the error JSON on stdout.  Anything else is a bug and
is reported as code 999 with one line of context, never a traceback on
stdout.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .jsonio import JSONObject

# Codes from the CNI spec (SPEC.md, "Error").
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
NOT_AVAILABLE_DEGRADED = 51
# Plugin-specific codes (the spec reserves 100 and up for plugins).
ADDRESS_IN_USE = 100  # requested or already-held address
STATE_MISSING = 101  # CHECK found something ADD made missing
ALREADY_EXISTS = 102  # the container interface (or attachment) already exists
KERNEL_REFUSED = 103  # the kernel refused a network change (netlink error)
INTERNAL = 999


class CniError(Exception):
    """A failure with a CNI error code, a short message and details."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg if not details else f"{msg}: {details}")
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str) -> JSONObject:
        return {
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        }

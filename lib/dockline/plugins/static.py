"""static: fixed addresses from the config, nothing to allocate or free."""

from __future__ import annotations

from dockline.cni.errors import INVALID_CONFIG, STATE_MISSING, CniError
from dockline.cni.skel import CmdArgs
from dockline.ipam import static

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockline.cni.jsonio import JSONObject


def cmd_add(req: CmdArgs) -> JSONObject:
    return static.load(req)


def validate_add(req: CmdArgs) -> None:
    """What ADD would refuse, without side effects (static has none)."""
    static.load(req)


def cmd_del(req: CmdArgs) -> None:
    """Nothing was allocated, so there is nothing to free: DEL succeeds
    whatever state the container or the config is in."""


def cmd_check(req: CmdArgs) -> None:
    """Every configured address must be in the result the runtime cached,
    with the configured gateway (the main plugin checks the interface).
    Both sides are canonical text here (parsed and re-rendered)."""
    prev = req.prev_result
    if prev is None:
        raise CniError(INVALID_CONFIG, "static CHECK: required prevResult missing")
    have = {}
    for ip in prev.get("ips") or []:
        have[ip["address"].partition("/")[0]] = ip.get("gateway")
    for ip in static.load(req)["ips"]:
        addr = ip["address"].partition("/")[0]
        if addr not in have:
            raise CniError(STATE_MISSING, f"static CHECK: address {addr} is not in the result")
        want = ip.get("gateway")
        if want and have[addr] != want:
            raise CniError(
                STATE_MISSING,
                f"static CHECK: address {addr} has gateway {have[addr] or 'none'}, expected {want}",
            )


def cmd_status(req: CmdArgs) -> None:
    static.load(req)


# What dockline.launch (the executable) and the zygote serve.
HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": None, "STATUS": cmd_status}
ABOUT = "dockline static"

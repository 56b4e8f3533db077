"""host-local's configuration, parsed and validated at the edge.

Keys and precedence follow the reference: ``runtimeConfig.ipRanges`` come
first, then the legacy single range at the top of ``ipam``, then
``ranges``; requested addresses come from ``CNI_ARGS IP=``, ``args.cni.ips``
and ``runtimeConfig.ips`` together.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~7 ms of start-up; annotations only
if TYPE_CHECKING:
    from typing import Optional

    from .ranges import IPAddress

from ..cni.errors import INCOMPATIBLE_VERSION, INVALID_CONFIG, CniError
from ..cni.skel import Request
from ..cni.version import at_least
from .ranges import RangeSet, parse_ip

_LEGACY_RANGE_KEYS = ("subnet", "rangeStart", "rangeEnd", "gateway")


class HostLocalConfig:
    __slots__ = ("network", "range_sets", "routes", "data_dir", "resolv_conf", "requested")

    def __init__(self, network: str, range_sets: list[RangeSet], routes: list[dict],
                 data_dir: str, resolv_conf: str, requested: list[IPAddress]) -> None:
        self.network = network
        self.range_sets = range_sets
        self.routes = routes
        self.data_dir = data_dir
        self.resolv_conf = resolv_conf
        self.requested = requested


def ipam_section(config: dict) -> dict:
    ipam = config.get("ipam")
    if ipam is None:
        raise CniError(INVALID_CONFIG, "IPAM config missing 'ipam' key")
    if not isinstance(ipam, dict):
        raise CniError(INVALID_CONFIG, "invalid 'ipam'", "not a JSON object")
    return ipam


def parse_routes(value) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CniError(INVALID_CONFIG, "invalid routes", "not a list")
    routes = []
    for route in value:
        if not isinstance(route, dict) or "dst" not in route:
            raise CniError(INVALID_CONFIG, "invalid route", f"{route!r} needs a dst")
        out = dict(route)
        out["dst"] = _route_dst(route["dst"])
        if route.get("gw"):
            out["gw"] = str(parse_ip(route["gw"], "route gw"))
        routes.append(out)
    return routes


def _route_dst(text) -> str:
    """A route's dst in canonical form.  Host bits are allowed and kept, as
    the reference does (its README has such an example)."""
    import ipaddress
    if not isinstance(text, str) or "/" not in text:
        raise CniError(INVALID_CONFIG, "invalid route dst", f"{text!r} is not in CIDR notation")
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise CniError(INVALID_CONFIG, "invalid route dst", f"{text!r}: {exc}") from None
    return f"{iface.ip}/{iface.network.prefixlen}"


def _string(ipam: dict, key: str) -> str:
    value = ipam.get(key) or ""
    if not isinstance(value, str):
        raise CniError(INVALID_CONFIG, f"invalid {key}", "not a string")
    return value


def _ip_list(value, what: str) -> list[IPAddress]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CniError(INVALID_CONFIG, f"invalid {what}", "not a list")
    return [parse_ip(v, what) for v in value]


def requested_ips(req: Request, env_ip: Optional[str]) -> list[IPAddress]:
    ips: list[IPAddress] = []
    if env_ip:
        ips += [parse_ip(part, "CNI_ARGS IP") for part in env_ip.split(",") if part]
    ips += _ip_list(req.args_cni.get("ips"), "args.cni.ips")
    ips += _ip_list(req.runtime_config.get("ips"), "runtimeConfig.ips")
    return ips


def load(req: Request) -> HostLocalConfig:
    ipam = ipam_section(req.config)
    raw_sets: list = []
    ip_ranges = req.runtime_config.get("ipRanges")
    if ip_ranges:
        if not isinstance(ip_ranges, list):
            raise CniError(INVALID_CONFIG, "invalid runtimeConfig.ipRanges", "not a list")
        raw_sets += ip_ranges
    if ipam.get("subnet"):
        raw_sets.append([{k: ipam[k] for k in _LEGACY_RANGE_KEYS if k in ipam}])
    ranges = ipam.get("ranges")
    if ranges is not None:
        if not isinstance(ranges, list):
            raise CniError(INVALID_CONFIG, "invalid ranges", "not a list of range sets")
        raw_sets += ranges
    if not raw_sets:
        raise CniError(INVALID_CONFIG, "no IP ranges specified")
    range_sets = [RangeSet.from_config(obj, i) for i, obj in enumerate(raw_sets)]
    for i, a in enumerate(range_sets):
        for j in range(i + 1, len(range_sets)):
            if a.overlaps(range_sets[j]):
                raise CniError(INVALID_CONFIG, f"range set {i} overlaps with {j}")
    families = [rs.version for rs in range_sets]
    if (families.count(4) > 1 or families.count(6) > 1) and not at_least(req.version, "0.3.0"):
        raise CniError(INCOMPATIBLE_VERSION, f"CNI version {req.version} does not support "
                       "more than 1 address per family")
    env_ip = req.cni_args(("IP",)).get("IP")
    return HostLocalConfig(
        network=req.network,
        range_sets=range_sets,
        routes=parse_routes(ipam.get("routes")),
        data_dir=_string(ipam, "dataDir"),
        resolv_conf=_string(ipam, "resolvConf"),
        requested=requested_ips(req, env_ip),
    )

"""host-local's configuration, parsed and validated at the edge.

Keys and precedence follow the reference: ``runtimeConfig.ipRanges`` come
first, then the legacy single range at the top of ``ipam``, then
``ranges``; requested addresses come from ``CNI_ARGS IP=``, ``args.cni.ips``
and ``runtimeConfig.ips`` together.  Keys inside ``ipam``, ranges and
routes are matched as Go's encoding/json matches the reference's struct
fields (case-insensitively), so a runtime's ``{"Subnet": ...}`` is read.

Everything an ADD needs is checked here, before the store is touched
(the allocator then matches requested addresses to range sets before it
takes the lock).  DEL and GC read only what they need, leniently
(``data_dir_for_cleanup``): a config they cannot parse must not keep an
attachment's addresses reserved.
"""

from __future__ import annotations

from ..cni.addr import parse_ip
from ..cni.errors import INCOMPATIBLE_VERSION, INVALID_CONFIG, INVALID_ENVIRONMENT, CniError
from ..cni.gojson import fold_fields
from ..cni.result import parse_route
from ..cni.skel import CmdArgs
from ..cni.version import at_least
from .disk import DEFAULT_DATA_DIR
from .ranges import RANGE_FIELDS, RangeSet

TYPE_CHECKING = False  # typing costs ~7 ms of start-up; annotations only
if TYPE_CHECKING:
    from ..cluster.config import ClusterConfig
    from ..cni.addr import IPAddress
    from ..cni.jsonio import JSONObject

# The reference's IPAMConfig fields (with its embedded legacy Range).
IPAM_FIELDS = RANGE_FIELDS + ("type", "routes", "dataDir", "resolvConf", "ranges")
_PATH_MAX = 4096


class HostLocalConfig:
    __slots__ = (
        "cluster",
        "data_dir",
        "network",
        "range_sets",
        "requested",
        "resolv_conf",
        "routes",
    )

    def __init__(
        self,
        network: str,
        range_sets: list[RangeSet],
        routes: list[JSONObject],
        data_dir: str,
        resolv_conf: str,
        requested: list[IPAddress],
        cluster: ClusterConfig | None = None,
    ) -> None:
        self.cluster = cluster  # cluster mode (dockline.cluster), None on one host
        self.network = network
        self.range_sets = range_sets
        self.routes = routes
        self.data_dir = data_dir
        self.resolv_conf = resolv_conf
        self.requested = requested


def ipam_section(config: JSONObject, fields: tuple[str, ...] = IPAM_FIELDS) -> JSONObject:
    ipam = config.get("ipam")
    if ipam is None:
        raise CniError(INVALID_CONFIG, "IPAM config missing 'ipam' key")
    if not isinstance(ipam, dict):
        raise CniError(INVALID_CONFIG, "invalid 'ipam'", "not a JSON object")
    return fold_fields(ipam, fields)


def parse_routes(value: object) -> list[JSONObject]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CniError(INVALID_CONFIG, "invalid routes", "not a list")
    return [parse_route(route, "route") for route in value]


def _string(ipam: JSONObject, key: str) -> str:
    value = ipam.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CniError(INVALID_CONFIG, f"invalid {key}", f"{value!r} is not a string")
    return value


def _path_problem(path: str) -> str | None:
    if len(path) > _PATH_MAX:
        return "is too long"
    if not path.isprintable():  # NUL, newlines, lone surrogates
        return "contains a control or unencodable character"
    return None


def data_dir(ipam: JSONObject) -> str:
    """dataDir, absolute and normalised; the default when unset.  A
    relative path would depend on the runtime's working directory, and
    ``..`` could leave the tree the admin meant: both are refused."""
    path = _string(ipam, "dataDir")
    if not path:
        return DEFAULT_DATA_DIR
    problem = _path_problem(path)
    if problem is None and not path.startswith("/"):
        problem = "is not an absolute path"
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if problem is None and ".." in parts:
        problem = "contains a '..' component"
    if problem:
        raise CniError(INVALID_CONFIG, "invalid dataDir", f"{path[:200]!r} {problem}")
    return "/" + "/".join(parts)


def data_dir_for_cleanup(config: JSONObject) -> str | None:
    """Where DEL and GC release: dataDir when the config names a valid
    one, the default when the ipam section or its dataDir is missing or
    unreadable as an object; None (release nothing) when a dataDir is set
    but invalid, as it cannot be where ADD wrote."""
    ipam = config.get("ipam")
    if not isinstance(ipam, dict):
        return DEFAULT_DATA_DIR
    try:
        return data_dir(fold_fields(ipam, ("dataDir",)))
    except CniError:
        return None


def resolv_conf_path(ipam: JSONObject) -> str:
    path = _string(ipam, "resolvConf")
    problem = _path_problem(path) if path else None
    if problem:
        raise CniError(INVALID_CONFIG, "invalid resolvConf", f"{path[:200]!r} {problem}")
    return path


def _ip_list(value: object, what: str) -> list[IPAddress]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CniError(INVALID_CONFIG, f"invalid {what}", "not a list")
    return [parse_ip(v, what, prefix_ok=True) for v in value]


def requested_ips(req: CmdArgs, env_ip: str | None) -> list[IPAddress]:
    ips: list[IPAddress] = []
    if env_ip:
        ips += [
            parse_ip(part, "CNI_ARGS IP", INVALID_ENVIRONMENT, prefix_ok=True)
            for part in env_ip.split(",")
            if part
        ]
    ips += _ip_list(req.args_cni.get("ips"), "args.cni.ips")
    ips += _ip_list(req.runtime_config.get("ips"), "runtimeConfig.ips")
    return ips


def load(req: CmdArgs) -> HostLocalConfig:
    ipam = ipam_section(req.config)
    raw_sets: list[object] = []
    ip_ranges = req.runtime_config.get("ipRanges")
    if ip_ranges:
        if not isinstance(ip_ranges, list):
            raise CniError(INVALID_CONFIG, "invalid runtimeConfig.ipRanges", "not a list")
        raw_sets += ip_ranges
    if ipam.get("subnet"):
        raw_sets.append([{k: ipam[k] for k in RANGE_FIELDS if k in ipam}])
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
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"CNI version {req.version} does not support more than 1 address per family",
        )
    env_ip = req.cni_args(("IP",)).get("IP")
    return HostLocalConfig(
        network=req.network,
        range_sets=range_sets,
        routes=parse_routes(ipam.get("routes")),
        data_dir=data_dir(ipam),
        resolv_conf=resolv_conf_path(ipam),
        requested=requested_ips(req, env_ip),
        cluster=cluster_config(req.config),
    )


def cluster_config(config: JSONObject) -> ClusterConfig | None:
    """The network's ``cluster`` object, checked (code 7); the cluster
    package is imported only when there is one."""
    if config.get("cluster") is None:
        return None
    from ..cluster.config import parse

    return parse(config["cluster"])

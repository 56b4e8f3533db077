"""CNI results in every spec version.

Results live in one internal shape, the 1.1.0 one, as plain dicts holding
only known keys with checked, canonical values.  ``parse`` reads any version into it and
``render`` writes it out in the version the config asked for, converting as
libcni does.
"""

from __future__ import annotations

from .addr import parse_int, parse_interface, parse_ip, render_interface
from .errors import DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG, CniError
from .gojson import fold_fields
from .version import SUPPORTED, at_least

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .jsonio import JSONObject

_IFACE_KEYS_1_0 = ("name", "mac", "sandbox")
_IFACE_KEYS_1_1 = ("name", "mac", "mtu", "sandbox", "socketPath", "pciID")
_ROUTE_KEYS_1_0 = ("dst", "gw")
_ROUTE_KEYS_1_1 = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
_DNS_KEYS = ("nameservers", "domain", "search", "options")
# Field names of the reference's types/100 Result and IPConfig (020's too),
# for matching a runtime's spelling of them.
_RESULT_FIELDS = ("cniVersion", "interfaces", "ips", "routes", "dns", "ip4", "ip6")
_IP_FIELDS = ("version", "interface", "address", "gateway")
_INT32 = 2**31 - 1
_UINT32 = 2**32 - 1
# Route integers and their kernel ranges (rtnetlink: u32, scope u8).
_ROUTE_INTS = (
    ("mtu", _UINT32),
    ("advmss", _UINT32),
    ("priority", _UINT32),
    ("table", _UINT32),
    ("scope", 255),
)


def family(address: str) -> str:
    """'4' or '6' for an address or CIDR string."""
    return "6" if ":" in address else "4"


def new(
    ips: Iterable[JSONObject] | None = None,
    routes: Iterable[JSONObject] | None = None,
    dns: JSONObject | None = None,
    interfaces: Iterable[JSONObject] | None = None,
) -> JSONObject:
    return {
        "interfaces": list(interfaces or []),
        "ips": list(ips or []),
        "routes": list(routes or []),
        "dns": dict(dns or {}),
    }


def parse(obj: object, version: str) -> JSONObject:
    """Read a result (e.g. a prevResult) of the given version into the
    internal shape, every value checked and re-rendered.  Keys are matched
    as Go's encoding/json matches them (the reference reads prevResult
    into its Result structs), so ``{"IPs": [{"Address": ...}]}`` is read.
    A container of the wrong shape is a decode failure (6); a bad value
    (an address with a scope id, an interface index past the interfaces,
    a route priority of 2**70) is an invalid configuration (7)."""
    if not isinstance(obj, dict):
        raise CniError(DECODE_FAILURE, "failed to decode result", "not a JSON object")
    obj = fold_fields(obj, _RESULT_FIELDS)
    own = obj.get("cniVersion")
    if own is not None and not isinstance(own, str):
        raise CniError(
            DECODE_FAILURE, "failed to decode result", f"cniVersion {own!r} is not a string"
        )
    version = own or version
    if version not in SUPPORTED:  # "1.2.0" is well formed, but no shape we know
        raise CniError(
            INCOMPATIBLE_VERSION, "incompatible CNI versions", f"unknown result version {version!r}"
        )
    if not at_least(version, "0.3.0"):
        return _parse_020(obj)
    interfaces = [_parse_interface(i, n) for n, i in enumerate(_list(obj, "interfaces"))]
    ips = [_parse_ip_config(ip, len(interfaces)) for ip in _list(obj, "ips")]
    routes = [parse_route(r, "result route") for r in _list(obj, "routes")]
    return {"interfaces": interfaces, "ips": ips, "routes": routes, "dns": _dns(obj.get("dns"))}


def _list(obj: JSONObject, key: str) -> list[JSONObject]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CniError(
            DECODE_FAILURE, "failed to decode result", f"{key!r} is not a list of objects"
        )
    return value


def _dns(value: object) -> JSONObject:
    if value is not None and not isinstance(value, dict):
        raise CniError(DECODE_FAILURE, "failed to decode result", "'dns' is not an object")
    return parse_dns(value, "result dns")


def _parse_interface(obj: JSONObject, index: int) -> JSONObject:
    obj = fold_fields(obj, _IFACE_KEYS_1_1)
    out: JSONObject = {}
    for key in _IFACE_KEYS_1_1:
        value = obj.get(key)
        if value is None:
            continue
        if key == "mtu":
            out[key] = parse_int(value, f"result interface {index} mtu", 0, _INT32)
        else:
            out[key] = check_string(value, f"result interface {index} {key}")
    return out


def _parse_ip_config(obj: JSONObject, n_interfaces: int) -> JSONObject:
    obj = fold_fields(obj, _IP_FIELDS)
    if obj.get("address") is None:
        raise CniError(INVALID_CONFIG, "invalid result ip", f"{obj!r} has no address")
    out: JSONObject = {}
    index = obj.get("interface")
    if index is not None:
        # An index must name one of the result's interfaces: plugins look it up.
        out["interface"] = parse_int(index, "result ip interface", 0, n_interfaces - 1)
    out["address"] = render_interface(parse_interface(obj["address"], "result ip address"))
    gateway = obj.get("gateway")
    if gateway not in (None, ""):
        out["gateway"] = str(parse_ip(gateway, "result ip gateway"))
    return out


def parse_route(obj: object, what: str, code: int = INVALID_CONFIG) -> JSONObject:
    """A route (config or result) with its keys as Go's types.Route reads
    them; only the known keys are kept."""
    if not isinstance(obj, dict):
        raise CniError(code, f"invalid {what}", f"{obj!r} is not an object")
    obj = fold_fields(obj, _ROUTE_KEYS_1_1)
    if obj.get("dst") is None:
        raise CniError(code, f"invalid {what}", f"{obj!r} needs a dst")
    # Host bits in dst are kept, as the reference keeps them.
    out: JSONObject = {"dst": render_interface(parse_interface(obj["dst"], f"{what} dst", code))}
    gw = obj.get("gw")
    if gw not in (None, ""):
        out["gw"] = str(parse_ip(gw, f"{what} gw", code))
    for key, high in _ROUTE_INTS:
        value = obj.get(key)
        if value is not None:
            out[key] = parse_int(value, f"{what} {key}", 0, high, code)
    return out


def parse_dns(obj: object, what: str, code: int = INVALID_CONFIG) -> JSONObject:
    """A dns object: nameservers are addresses; domain, search and options
    printable strings.  Empty values are dropped."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise CniError(code, f"invalid {what}", "not a JSON object")
    obj = fold_fields(obj, _DNS_KEYS)
    out: JSONObject = {}
    for key in _DNS_KEYS:
        value = obj.get(key)
        if value is None:
            continue
        if key == "domain":
            value = check_string(value, f"{what} domain", code)
        else:
            if not isinstance(value, list):
                raise CniError(code, f"invalid {what} {key}", f"{value!r} is not a list")
            if key == "nameservers":
                value = [str(parse_ip(v, f"{what} nameserver", code)) for v in value]
            else:
                value = [check_string(v, f"{what} {key}", code) for v in value]
        if value:
            out[key] = value
    return out


def check_string(value: object, what: str, code: int = INVALID_CONFIG) -> str:
    """A string safe to echo: printable (no control characters, no lone
    surrogates from a \\ud800 escape, which could not be written out)."""
    if not isinstance(value, str):
        raise CniError(code, f"invalid {what}", f"{value!r} is not a string")
    if not value.isprintable() or len(value) > 4096:
        raise CniError(code, f"invalid {what}", f"{value[:100]!r} is not a printable string")
    return value


def _parse_020(obj: JSONObject) -> JSONObject:
    result = new(dns=_dns(obj.get("dns")))
    for key in ("ip4", "ip6"):
        section = obj.get(key)
        if not section:
            continue
        if not isinstance(section, dict):
            raise CniError(DECODE_FAILURE, "failed to decode result", f"{key!r} is not an object")
        section = fold_fields(section, ("ip", "gateway", "routes"))
        if section.get("ip") is None:
            raise CniError(INVALID_CONFIG, "invalid result", f"{key} has no ip")
        ip = {"address": render_interface(parse_interface(section["ip"], f"result {key} ip"))}
        if section.get("gateway") not in (None, ""):
            ip["gateway"] = str(parse_ip(section["gateway"], f"result {key} gateway"))
        result["ips"].append(ip)
        result["routes"].extend(
            parse_route(r, f"result {key} route") for r in _list(section, "routes")
        )
    return result


def render(result: JSONObject, version: str) -> JSONObject:
    """The result as the given spec version prints it."""
    if not at_least(version, "0.3.0"):
        return _render_020(result, version)
    v1 = at_least(version, "1.0.0")
    v11 = at_least(version, "1.1.0")
    iface_keys = _IFACE_KEYS_1_1 if v11 else _IFACE_KEYS_1_0
    route_keys = _ROUTE_KEYS_1_1 if v11 else _ROUTE_KEYS_1_0
    out: JSONObject = {"cniVersion": version}
    interfaces = [_pick(i, iface_keys) for i in result.get("interfaces") or []]
    if interfaces:
        out["interfaces"] = interfaces
    ips = []
    for ip in result.get("ips") or []:
        entry = {} if v1 else {"version": family(ip["address"])}
        if ip.get("interface") is not None:
            entry["interface"] = ip["interface"]
        entry["address"] = ip["address"]
        if ip.get("gateway"):
            entry["gateway"] = ip["gateway"]
        ips.append(entry)
    if ips:
        out["ips"] = ips
    routes = [_pick(r, route_keys) for r in result.get("routes") or []]
    if routes:
        out["routes"] = routes
    out["dns"] = _pick(result.get("dns") or {}, _DNS_KEYS)
    return out


def _pick(obj: JSONObject, keys: tuple[str, ...]) -> JSONObject:
    return {k: obj[k] for k in keys if obj.get(k) not in (None, "", [])}


def _render_020(result: JSONObject, version: str) -> JSONObject:
    out: JSONObject = {"cniVersion": version}
    for fam, key in (("4", "ip4"), ("6", "ip6")):
        ip = next((i for i in result.get("ips") or [] if family(i["address"]) == fam), None)
        if ip is None:
            continue
        section: JSONObject = {"ip": ip["address"]}
        if ip.get("gateway"):
            section["gateway"] = ip["gateway"]
        routes = [
            _pick(r, _ROUTE_KEYS_1_0) for r in result.get("routes") or [] if family(r["dst"]) == fam
        ]
        if routes:
            section["routes"] = routes
        out[key] = section
    if "ip4" not in out and "ip6" not in out:
        raise CniError(
            INCOMPATIBLE_VERSION,
            "cannot convert result to CNI version " + version,
            "a result without IP addresses cannot be expressed before 0.3.0",
        )
    out["dns"] = _pick(result.get("dns") or {}, _DNS_KEYS)
    return out

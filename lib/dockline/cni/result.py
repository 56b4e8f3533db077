"""CNI results in every spec version.

Results live in one internal shape, the 1.1.0 one (plain dicts, so a
prevResult's unknown keys survive).  ``parse`` reads any version into it and
``render`` writes it out in the version the config asked for, converting as
libcni does.
"""
from __future__ import annotations

from .errors import DECODE_FAILURE, INCOMPATIBLE_VERSION, CniError
from .version import at_least

_IFACE_KEYS_1_0 = ("name", "mac", "sandbox")
_IFACE_KEYS_1_1 = ("name", "mac", "mtu", "sandbox", "socketPath", "pciID")
_ROUTE_KEYS_1_0 = ("dst", "gw")
_ROUTE_KEYS_1_1 = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
_DNS_KEYS = ("nameservers", "domain", "search", "options")


def family(address: str) -> str:
    """'4' or '6' for an address or CIDR string."""
    return "6" if ":" in address else "4"


def new(ips=None, routes=None, dns=None, interfaces=None) -> dict:
    return {"interfaces": list(interfaces or []), "ips": list(ips or []),
            "routes": list(routes or []), "dns": dict(dns or {})}


def parse(obj, version: str) -> dict:
    """Read a result (e.g. a prevResult) of the given version."""
    if not isinstance(obj, dict):
        raise CniError(DECODE_FAILURE, "failed to decode result", "not a JSON object")
    version = obj.get("cniVersion") or version
    try:
        if not at_least(version, "0.3.0"):
            return _parse_020(obj)
    except ValueError:
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"unknown result version {version!r}") from None
    ips = []
    for entry in _list(obj, "ips"):
        ip = {k: v for k, v in entry.items() if k != "version"}
        ips.append(ip)
    return {"interfaces": [dict(i) for i in _list(obj, "interfaces")], "ips": ips,
            "routes": [dict(r) for r in _list(obj, "routes")],
            "dns": dict(obj.get("dns") or {})}


def _list(obj: dict, key: str) -> list:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CniError(DECODE_FAILURE, "failed to decode result", f"{key!r} is not a list of objects")
    return value


def _parse_020(obj: dict) -> dict:
    result = new(dns=obj.get("dns"))
    for key in ("ip4", "ip6"):
        section = obj.get(key)
        if not section:
            continue
        ip = {"address": section["ip"]}
        if section.get("gateway"):
            ip["gateway"] = section["gateway"]
        result["ips"].append(ip)
        result["routes"].extend(dict(r) for r in section.get("routes") or [])
    return result


def render(result: dict, version: str) -> dict:
    """The result as the given spec version prints it."""
    if not at_least(version, "0.3.0"):
        return _render_020(result, version)
    v1 = at_least(version, "1.0.0")
    v11 = at_least(version, "1.1.0")
    iface_keys = _IFACE_KEYS_1_1 if v11 else _IFACE_KEYS_1_0
    route_keys = _ROUTE_KEYS_1_1 if v11 else _ROUTE_KEYS_1_0
    out: dict = {"cniVersion": version}
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


def _pick(obj: dict, keys: tuple[str, ...]) -> dict:
    return {k: obj[k] for k in keys if obj.get(k) not in (None, "", [])}


def _render_020(result: dict, version: str) -> dict:
    out: dict = {"cniVersion": version}
    for fam, key in (("4", "ip4"), ("6", "ip6")):
        ip = next((i for i in result.get("ips") or [] if family(i["address"]) == fam), None)
        if ip is None:
            continue
        section: dict = {"ip": ip["address"]}
        if ip.get("gateway"):
            section["gateway"] = ip["gateway"]
        routes = [_pick(r, _ROUTE_KEYS_1_0) for r in result.get("routes") or []
                  if family(r["dst"]) == fam]
        if routes:
            section["routes"] = routes
        out[key] = section
    if "ip4" not in out and "ip6" not in out:
        raise CniError(INCOMPATIBLE_VERSION, "cannot convert result to CNI version " + version,
                       "a result without IP addresses cannot be expressed before 0.3.0")
    out["dns"] = _pick(result.get("dns") or {}, _DNS_KEYS)
    return out

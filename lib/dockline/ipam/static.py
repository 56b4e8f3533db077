"""The static IPAM type's configuration: fixed addresses, routes and DNS.

Precedence as the reference: ``CNI_ARGS IP=`` adds to the configured
addresses (``GATEWAY=`` sets the gateway of those containing it);
``args.cni.ips`` replaces them; ``runtimeConfig.ips`` replaces everything.
"""
from __future__ import annotations

import ipaddress

from ..cni.errors import INCOMPATIBLE_VERSION, INVALID_CONFIG, CniError
from ..cni.version import at_least
from .config import ipam_section, parse_routes
from .ranges import parse_ip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cni.skel import Request

_DNS_KEYS = ("nameservers", "domain", "search", "options")


def _interface(text, what: str):
    if not isinstance(text, str) or "/" not in text:
        raise CniError(INVALID_CONFIG, f"invalid {what}",
                       f"{text!r} is not in CIDR notation (address/prefix)")
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise CniError(INVALID_CONFIG, f"invalid {what}", f"{text!r} is not an address/prefix") from None


def _ips_override(value, what: str) -> list[dict]:
    if not isinstance(value, list):
        raise CniError(INVALID_CONFIG, f"invalid {what}", "not a list")
    return [{"address": _interface(v, what)} for v in value]


def load(req: Request) -> dict:
    """The IPAM result static hands out for this request."""
    ipam = ipam_section(req.config)
    addresses = []
    for entry in ipam.get("addresses") or []:
        if not isinstance(entry, dict):
            raise CniError(INVALID_CONFIG, "invalid addresses entry", repr(entry))
        addr = {"address": _interface(entry.get("address"), "address")}
        if entry.get("gateway"):
            addr["gateway"] = parse_ip(entry["gateway"], "gateway")
        addresses.append(addr)
    env = req.cni_args(("IP", "GATEWAY"))
    from_env = [{"address": _interface(item, "CNI_ARGS IP")}
                for item in filter(None, (s.strip() for s in env.get("IP", "").split(",")))]
    for item in filter(None, (s.strip() for s in env.get("GATEWAY", "").split(","))):
        gw = parse_ip(item, "CNI_ARGS GATEWAY")
        for addr in from_env:  # GATEWAY= goes with IP=, as the reference has it
            if gw.version == addr["address"].version and gw in addr["address"].network:
                addr["gateway"] = gw
    addresses += from_env
    if req.args_cni.get("ips") is not None:
        addresses = _ips_override(req.args_cni["ips"], "args.cni.ips")
    if req.runtime_config.get("ips") is not None:
        addresses = _ips_override(req.runtime_config["ips"], "runtimeConfig.ips")
    versions = [a["address"].version for a in addresses]
    if (versions.count(4) > 1 or versions.count(6) > 1) and not at_least(req.version, "0.3.0"):
        raise CniError(INCOMPATIBLE_VERSION, f"CNI version {req.version} does not support "
                       "more than 1 address per family")
    dns = ipam.get("dns") or {}
    if not isinstance(dns, dict):
        raise CniError(INVALID_CONFIG, "invalid dns", "not a JSON object")
    ips = []
    for addr in addresses:
        ip = {"address": str(addr["address"])}
        if addr.get("gateway") is not None:
            ip["gateway"] = str(addr["gateway"])
        ips.append(ip)
    return {"ips": ips, "routes": parse_routes(ipam.get("routes")),
            "dns": {k: dns[k] for k in _DNS_KEYS if dns.get(k)}}

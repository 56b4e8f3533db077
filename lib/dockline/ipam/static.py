"""The static IPAM type's configuration: fixed addresses, routes and DNS.

Precedence as the reference: ``CNI_ARGS IP=`` adds to the configured
addresses (``GATEWAY=`` sets the gateway of those containing it);
``args.cni.ips`` replaces them; ``runtimeConfig.ips`` replaces everything.
"""

from __future__ import annotations

from ..cni.addr import parse_interface, parse_ip, render_interface
from ..cni.errors import INCOMPATIBLE_VERSION, INVALID_CONFIG, INVALID_ENVIRONMENT, CniError
from ..cni.gojson import fold_fields
from ..cni.result import parse_dns
from ..cni.version import at_least
from .config import ipam_section, parse_routes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cni.addr import IPAddress, IPInterface
    from ..cni.jsonio import JSONObject
    from ..cni.skel import CmdArgs

    # an address and its gateway, if any
    Entry = tuple[IPInterface, IPAddress | None]

# The reference's static config fields (IPAMConfig, Address), for Go's
# case-insensitive matching of a runtime's spelling.
_IPAM_FIELDS = ("type", "addresses", "routes", "dns")
_ADDRESS_FIELDS = ("address", "gateway")


def _ips_override(value: object, what: str) -> list[Entry]:
    if not isinstance(value, list):
        raise CniError(INVALID_CONFIG, f"invalid {what}", "not a list")
    return [(parse_interface(v, what), None) for v in value]


def _env_list(value: str) -> list[str]:
    return [s for s in (p.strip() for p in value.split(",")) if s]


def load(req: CmdArgs) -> JSONObject:
    """The IPAM result static hands out for this request."""
    ipam = ipam_section(req.config, _IPAM_FIELDS)
    entries = ipam.get("addresses")
    if entries is not None and not isinstance(entries, list):
        raise CniError(INVALID_CONFIG, "invalid addresses", "not a list")
    addresses: list[Entry] = []
    for entry in entries or []:
        if not isinstance(entry, dict):
            raise CniError(INVALID_CONFIG, "invalid addresses entry", f"{entry!r} is not an object")
        entry = fold_fields(entry, _ADDRESS_FIELDS)
        iface = parse_interface(entry.get("address"), "address")
        gateway = entry.get("gateway")
        addresses.append((iface, None if gateway in (None, "") else parse_ip(gateway, "gateway")))
    env = req.cni_args(("IP", "GATEWAY"))
    from_env = [
        parse_interface(item, "CNI_ARGS IP", INVALID_ENVIRONMENT)
        for item in _env_list(env.get("IP", ""))
    ]
    env_gateways: list[IPAddress | None] = [None] * len(from_env)
    for item in _env_list(env.get("GATEWAY", "")):
        gw = parse_ip(item, "CNI_ARGS GATEWAY", INVALID_ENVIRONMENT)
        for n, iface in enumerate(from_env):  # GATEWAY= goes with IP=, as the reference has it
            if gw.version == iface.version and gw in iface.network:
                env_gateways[n] = gw
    addresses += zip(from_env, env_gateways, strict=True)
    if req.args_cni.get("ips") is not None:
        addresses = _ips_override(req.args_cni["ips"], "args.cni.ips")
    if req.runtime_config.get("ips") is not None:
        addresses = _ips_override(req.runtime_config["ips"], "runtimeConfig.ips")
    versions = [iface.version for iface, _ in addresses]
    if (versions.count(4) > 1 or versions.count(6) > 1) and not at_least(req.version, "0.3.0"):
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"CNI version {req.version} does not support more than 1 address per family",
        )
    ips = []
    for iface, gateway in addresses:
        ip = {"address": render_interface(iface)}
        if gateway is not None:
            ip["gateway"] = str(gateway)
        ips.append(ip)
    return {
        "ips": ips,
        "routes": parse_routes(ipam.get("routes")),
        "dns": parse_dns(ipam.get("dns"), "dns"),
    }

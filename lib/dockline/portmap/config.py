"""portmap's configuration, validated at the edge (same keys and defaults
as the reference portmap plugin)."""
from __future__ import annotations

import ipaddress

from ..cni.errors import INVALID_CONFIG, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from ..cni.skel import Request

PROTOCOLS = ("tcp", "udp", "sctp")


class Mapping:
    __slots__ = ("host_port", "container_port", "protocol", "host_ip")

    def __init__(self, host_port: int, container_port: int, protocol: str,
                 host_ip: Optional[ipaddress._BaseAddress]) -> None:
        self.host_port = host_port
        self.container_port = container_port
        self.protocol = protocol
        self.host_ip = host_ip  # None: every host address

    @classmethod
    def from_config(cls, obj) -> "Mapping":
        if not isinstance(obj, dict):
            raise CniError(INVALID_CONFIG, "invalid portMappings entry", repr(obj))
        ports = []
        for key in ("hostPort", "containerPort"):
            value = obj.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                raise CniError(INVALID_CONFIG, "invalid portMappings entry",
                               f"{key} {value!r} is not a port number (1-65535)")
            ports.append(value)
        protocol = obj.get("protocol") or "tcp"
        if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
            raise CniError(INVALID_CONFIG, "invalid portMappings entry",
                           f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        host_ip = obj.get("hostIP") or None
        if host_ip is not None:
            try:
                host_ip = ipaddress.ip_address(host_ip)
            except ValueError:
                raise CniError(INVALID_CONFIG, "invalid portMappings entry",
                               f"hostIP {host_ip!r} is not an IP address") from None
            if host_ip.is_unspecified:
                host_ip = None  # 0.0.0.0 and :: mean every address
        return cls(ports[0], ports[1], protocol.lower(), host_ip)

    def key(self) -> str:
        return f"{self.protocol}/{self.host_port}/{self.host_ip or '*'}"


class ContainerIP:
    __slots__ = ("address", "subnet", "version")

    def __init__(self, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        self.address = iface.ip
        self.subnet = iface.network
        self.version = iface.version


def _conditions(value, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise CniError(INVALID_CONFIG, f"invalid {what}", "not a list of strings")
    return value


def _is_iptables_syntax(conditions: list[str]) -> bool:
    return any(c.strip().startswith(("-", "!")) for c in conditions)


class PortmapConfig:
    __slots__ = ("mappings", "snat", "masq_all", "mark_bit", "external_mark_chain",
                 "conditions_v4", "conditions_v6", "backend", "container_ips", "host_ifaces")

    def __init__(self, req: Request, need_prev: bool) -> None:
        c = req.config
        raw = req.runtime_config.get("portMappings") or []
        if not isinstance(raw, list):
            raise CniError(INVALID_CONFIG, "invalid portMappings", "not a list")
        self.mappings = [Mapping.from_config(m) for m in raw]
        self.snat = c.get("snat", True)
        self.masq_all = c.get("masqAll", False)
        for key, value in (("snat", self.snat), ("masqAll", self.masq_all)):
            if not isinstance(value, bool):
                raise CniError(INVALID_CONFIG, f"invalid {key}", f"{value!r} is not true or false")
        bit = c.get("markMasqBit")
        chain = c.get("externalSetMarkChain")
        if bit is not None and chain is not None:
            raise CniError(INVALID_CONFIG, "markMasqBit and externalSetMarkChain cannot both be set")
        if bit is None:
            bit = 13
        if not isinstance(bit, int) or isinstance(bit, bool) or not 0 <= bit <= 31:
            raise CniError(INVALID_CONFIG, "invalid markMasqBit", f"{bit!r} is not in 0-31")
        if chain is not None and (not isinstance(chain, str) or not chain
                                  or not all(ch.isalnum() or ch in "-_" for ch in chain)):
            raise CniError(INVALID_CONFIG, "invalid externalSetMarkChain", repr(chain))
        self.mark_bit = bit
        self.external_mark_chain = chain
        self.conditions_v4 = _conditions(c.get("conditionsV4"), "conditionsV4")
        self.conditions_v6 = _conditions(c.get("conditionsV6"), "conditionsV6")
        backend = c.get("backend")
        if backend is not None and backend not in ("iptables", "nftables"):
            raise CniError(INVALID_CONFIG, "invalid backend",
                           f"{backend!r}: expected \"iptables\" or \"nftables\"")
        self.backend = backend
        ipt_style = _is_iptables_syntax(self.conditions_v4 + self.conditions_v6)
        nft_style = any(not _is_iptables_syntax([cond]) for cond in self.conditions_v4 + self.conditions_v6)
        if backend == "nftables" and (ipt_style or chain is not None):
            raise CniError(INVALID_CONFIG, "iptables conditions or externalSetMarkChain "
                           "cannot be used with the nftables backend")
        if backend == "iptables" and nft_style:
            raise CniError(INVALID_CONFIG, "nftables conditions cannot be used with the iptables backend")
        self.container_ips: list[ContainerIP] = []
        self.host_ifaces: list[str] = []
        prev = req.prev_result
        if prev is None:
            if need_prev:
                raise CniError(INVALID_CONFIG, "portmap must be called as a chained plugin",
                               "prevResult is missing")
            return
        ifaces = prev.get("interfaces") or []
        mine = {i for i, iface in enumerate(ifaces)
                if iface.get("sandbox") and iface.get("name") == req.ifname}
        first: dict[int, ContainerIP] = {}
        for ip in prev.get("ips") or []:
            if mine and ip.get("interface") not in mine:
                continue
            cip = ContainerIP(ip["address"])
            first.setdefault(cip.version, cip)
        self.container_ips = [first[v] for v in sorted(first)]
        self.host_ifaces = [i["name"] for i in ifaces if not i.get("sandbox") and i.get("name")]

    @property
    def has_nft_conditions(self) -> bool:
        conditions = self.conditions_v4 + self.conditions_v6
        return bool(conditions) and not _is_iptables_syntax(conditions)

    @property
    def mark(self) -> int:
        return 1 << self.mark_bit

"""portmap's configuration, validated at the edge (same keys and defaults
as the reference portmap plugin).

Everything the firewall scripts will contain is checked here, through
``dockline.firewall.tokens``, before the first side effect: mappings
(read the way Go decodes them: containerd sends ``HostPort`` ...), the
container's addresses and interface names from prevResult, the mark, the
external chain and the operator's extra conditions.
"""

from __future__ import annotations

from ..cni.errors import INVALID_CONFIG, CniError
from ..cni.gojson import fold_fields
from ..firewall import tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cni.skel import CmdArgs
    from ..firewall.tokens import Address

PROTOCOLS = tokens.PROTOCOLS
# The reference's PortMapEntry fields, as Go's decoding matches them.
_MAPPING_FIELDS = ("hostPort", "containerPort", "protocol", "hostIP")


def _entry_error(details: str) -> CniError:
    return CniError(INVALID_CONFIG, "invalid portMappings entry", details)


class Mapping:
    __slots__ = ("container_port", "host_ip", "host_port", "protocol")

    def __init__(
        self, host_port: int, container_port: int, protocol: str, host_ip: Address | None
    ) -> None:
        self.host_port = host_port
        self.container_port = container_port
        self.protocol = protocol
        self.host_ip = host_ip  # None: every host address

    @classmethod
    def from_config(cls, obj: object) -> Mapping:
        if not isinstance(obj, dict):
            raise _entry_error(f"{obj!r:.80} is not an object")
        obj = fold_fields(obj, _MAPPING_FIELDS)
        ports = []
        for key in ("hostPort", "containerPort"):
            value = obj.get(key)
            # Go decodes only integer literals into an int field: 80.0,
            # "80", true and out-of-range numbers are all errors there too.
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                raise _entry_error(f"{key} {value!r:.40} is not a port number (1-65535)")
            ports.append(value)
        protocol = obj.get("protocol")
        if protocol is None or protocol == "":
            protocol = "tcp"
        if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
            raise _entry_error(f"protocol {protocol!r:.40} is not one of {', '.join(PROTOCOLS)}")
        host_ip = obj.get("hostIP")
        if host_ip is None or host_ip == "":
            host_ip = None  # go-cni sends "" for "every address"
        elif not isinstance(host_ip, str):
            raise _entry_error(f"hostIP {host_ip!r:.40} is not a string")
        else:
            try:
                host_ip = tokens.address(host_ip, "hostIP")
            except CniError as err:
                raise _entry_error(err.details) from None
            if host_ip.is_unspecified:
                host_ip = None  # 0.0.0.0 and :: mean every address
        return cls(ports[0], ports[1], protocol.lower(), host_ip)

    def key(self) -> str:
        return f"{self.protocol}/{self.host_port}/{self.host_ip or '*'}"


class ContainerIP:
    __slots__ = ("address", "subnet", "version")

    def __init__(self, cidr: object) -> None:
        iface = tokens.interface(cidr, "prevResult address")
        self.address = iface.ip
        self.subnet = iface.network
        self.version = iface.version


def _conditions(value: object, what: str, family: int) -> tuple[list[str], str | None]:
    """(tokens, 'iptables' | 'nftables' | None) of one conditions list."""
    if value is None or value == []:
        return [], None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise CniError(INVALID_CONFIG, f"invalid {what}", "not a list of strings")
    if tokens.is_iptables_syntax(value):
        return tokens.iptables_conditions(value, what, family), "iptables"
    return tokens.nft_conditions(value, what), "nftables"


class PortmapConfig:
    __slots__ = (
        "backend",
        "conditions_style",
        "conditions_v4",
        "conditions_v6",
        "container_ips",
        "external_mark_chain",
        "host_ifaces",
        "mappings",
        "mark_bit",
        "masq_all",
        "snat",
    )

    def __init__(self, req: CmdArgs, need_prev: bool) -> None:
        c = req.config
        raw = req.runtime_config.get("portMappings")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise CniError(INVALID_CONFIG, "invalid portMappings", "not a list")
        self.mappings = [Mapping.from_config(m) for m in raw]
        self.snat = c.get("snat", True)
        self.masq_all = c.get("masqAll", False)
        for key, value in (("snat", self.snat), ("masqAll", self.masq_all)):
            if not isinstance(value, bool):
                raise CniError(
                    INVALID_CONFIG, f"invalid {key}", f"{value!r:.40} is not true or false"
                )
        bit = c.get("markMasqBit")
        chain = c.get("externalSetMarkChain")
        if bit is not None and chain is not None:
            raise CniError(
                INVALID_CONFIG, "markMasqBit and externalSetMarkChain cannot both be set"
            )
        self.mark_bit = tokens.mark_bit(13 if bit is None else bit)
        self.external_mark_chain = (
            None if chain is None else tokens.chain(chain, "externalSetMarkChain")
        )
        self.conditions_v4, style4 = _conditions(c.get("conditionsV4"), "conditionsV4", 4)
        self.conditions_v6, style6 = _conditions(c.get("conditionsV6"), "conditionsV6", 6)
        if style4 and style6 and style4 != style6:
            raise CniError(
                INVALID_CONFIG,
                "invalid conditions",
                "conditionsV4 and conditionsV6 are in different syntaxes",
            )
        self.conditions_style = style4 or style6
        backend = c.get("backend")
        if backend is not None and backend not in ("iptables", "nftables"):
            raise CniError(
                INVALID_CONFIG,
                "invalid backend",
                f'{backend!r:.40}: expected "iptables" or "nftables"',
            )
        self.backend: str | None = backend  # checked just above
        if backend == "nftables" and (self.conditions_style == "iptables" or chain is not None):
            raise CniError(
                INVALID_CONFIG,
                "iptables conditions or externalSetMarkChain "
                "cannot be used with the nftables backend",
            )
        if backend == "iptables" and self.conditions_style == "nftables":
            raise CniError(
                INVALID_CONFIG, "nftables conditions cannot be used with the iptables backend"
            )
        self.container_ips: list[ContainerIP] = []
        self.host_ifaces: list[str] = []
        prev = req.prev_result
        if prev is None:
            if need_prev:
                raise CniError(
                    INVALID_CONFIG,
                    "portmap must be called as a chained plugin",
                    "prevResult is missing",
                )
            return
        ifaces = prev.get("interfaces") or []
        mine = {
            i
            for i, iface in enumerate(ifaces)
            if iface.get("sandbox") and iface.get("name") == req.ifname
        }
        first: dict[int, ContainerIP] = {}
        for ip in prev.get("ips") or []:
            if mine and ip.get("interface") not in mine:
                continue
            cip = ContainerIP(ip.get("address"))
            first.setdefault(cip.version, cip)
        self.container_ips = [first[v] for v in sorted(first)]
        # Host-side interfaces (the bridge, the host veth): named in
        # /proc/sys paths later, so they must be plain interface names.
        self.host_ifaces = [
            tokens.ifname(i["name"], "prevResult interface name")
            for i in ifaces
            if not i.get("sandbox") and i.get("name")
        ]

    @property
    def has_nft_conditions(self) -> bool:
        return self.conditions_style == "nftables"

    @property
    def mark(self) -> int:
        return 1 << self.mark_bit

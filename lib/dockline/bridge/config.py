"""The bridge plugin's configuration, validated at the edge.

Same keys, defaults and constraints as the reference bridge plugin.
"""

from __future__ import annotations

from ..cni.errors import INVALID_CONFIG, CniError
from ..names.dockerlinks import CNI_ARGS_KEYS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..cni.jsonio import JSONObject
    from ..cni.skel import CmdArgs

_MAC_HEX = frozenset("0123456789abcdefABCDEF")


def _bool(config: Mapping[str, object], key: str) -> bool:
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise CniError(INVALID_CONFIG, f"invalid {key}", f"{value!r} is not true or false")
    return value


def _int(config: Mapping[str, object], key: str, lo: int, hi: int) -> int:
    value = config.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise CniError(
            INVALID_CONFIG, f"invalid {key}", f"{value!r} is not a number in [{lo}, {hi}]"
        )
    return value


def parse_mac(value: object, what: str) -> str:
    parts = value.split(":") if isinstance(value, str) else []
    if (
        not isinstance(value, str)
        or len(parts) != 6
        or not all(len(p) == 2 and set(p) <= _MAC_HEX for p in parts)
    ):
        raise CniError(INVALID_CONFIG, f"invalid {what}", f"{value!r} is not a MAC address")
    mac = value.lower()
    if int(parts[0], 16) & 1:
        raise CniError(INVALID_CONFIG, f"invalid {what}", f"{mac} is a multicast address")
    return mac


def _vlan_trunk(value: object) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CniError(INVALID_CONFIG, "invalid vlanTrunk", "not a list")
    ids: list[int] = []
    for entry in value:
        if not isinstance(entry, dict):
            raise CniError(INVALID_CONFIG, "invalid vlanTrunk entry", repr(entry))
        if "id" in entry:
            ids.append(_int(entry, "id", 1, 4094))
        elif "minID" in entry or "maxID" in entry:
            lo, hi = _int(entry, "minID", 1, 4094), _int(entry, "maxID", 1, 4094)
            if lo > hi:
                raise CniError(
                    INVALID_CONFIG, "invalid vlanTrunk entry", f"minID {lo} > maxID {hi}"
                )
            ids.extend(range(lo, hi + 1))
        else:
            raise CniError(INVALID_CONFIG, "invalid vlanTrunk entry", "needs id or minID/maxID")
    return sorted(set(ids))


class BridgeConfig:
    __slots__ = (
        "bridge",
        "disable_container_interface",
        "dns",
        "enable_dad",
        "expose",
        "force_address",
        "hairpin",
        "icc",
        "ip_masq",
        "ip_masq_backend",
        "ipam_type",
        "is_default_gateway",
        "is_gateway",
        "isolate",
        "isolate_except",
        "mac",
        "macspoofchk",
        "mtu",
        "port_isolation",
        "preserve_default_vlan",
        "promisc",
        "vlan",
        "vlan_trunk",
    )

    def __init__(self, req: CmdArgs, for_cleanup: bool = False) -> None:
        """``for_cleanup``: DEL and GC must succeed on whatever ADD was given,
        so option combinations ADD refuses are not errors there."""
        c = req.config
        bridge = c.get("bridge") or "cni0"
        problem = None
        if not isinstance(bridge, str):
            problem = "is not a string"
        else:
            from ..cni.skel import ifname_problem

            problem = ifname_problem(bridge)
        if problem:
            raise CniError(INVALID_CONFIG, "invalid bridge name", f"{bridge!r} {problem}")
        self.bridge: str = bridge
        self.is_default_gateway = _bool(c, "isDefaultGateway")
        self.is_gateway = _bool(c, "isGateway") or self.is_default_gateway
        self.force_address = _bool(c, "forceAddress")
        self.ip_masq = _bool(c, "ipMasq")
        backend = c.get("ipMasqBackend")
        if backend is not None and backend not in ("iptables", "nftables"):
            raise CniError(
                INVALID_CONFIG,
                "invalid ipMasqBackend",
                f'{backend!r}: expected "iptables" or "nftables"',
            )
        self.ip_masq_backend: str | None = backend
        self.mtu = _int(c, "mtu", 0, 65535)
        if self.mtu and self.mtu < 68:
            raise CniError(INVALID_CONFIG, "invalid mtu", f"{self.mtu} is below 68")
        self.hairpin = _bool(c, "hairpinMode")
        self.promisc = _bool(c, "promiscMode")
        if self.hairpin and self.promisc and not for_cleanup:
            raise CniError(
                INVALID_CONFIG, "cannot set hairpin mode and promiscuous mode at the same time"
            )
        self.vlan = _int(c, "vlan", 0, 4094)
        self.vlan_trunk = _vlan_trunk(c.get("vlanTrunk"))
        if self.vlan and self.vlan in self.vlan_trunk:
            raise CniError(
                INVALID_CONFIG, "invalid vlanTrunk", f"vlan {self.vlan} is also in vlanTrunk"
            )
        self.preserve_default_vlan = _bool(c, "preserveDefaultVlan")
        self.macspoofchk = _bool(c, "macspoofchk")
        self.enable_dad = _bool(c, "enabledad")
        self.disable_container_interface = _bool(c, "disableContainerInterface")
        self.port_isolation = _bool(c, "portIsolation")
        dns = c.get("dns")
        if dns is not None and not isinstance(dns, dict):
            raise CniError(INVALID_CONFIG, "invalid dns", "not a JSON object")
        # A non-empty object replaces IPAM's dns in the result (even when
        # its fields are empty); it is checked and made canonical like IPAM's.
        self.dns: JSONObject | None = None
        if dns:
            from ..cni.result import parse_dns

            self.dns = parse_dns(dns, "dns")
        ipam = c.get("ipam")
        if ipam is None:
            ipam = {}
        if not isinstance(ipam, dict):
            raise CniError(INVALID_CONFIG, "invalid ipam", "not a JSON object")
        self.ipam_type: str = ipam.get("type") or ""
        if self.ipam_type and not isinstance(self.ipam_type, str):
            raise CniError(INVALID_CONFIG, "invalid ipam type", repr(self.ipam_type))
        if self.disable_container_interface and self.ipam_type and not for_cleanup:
            raise CniError(INVALID_CONFIG, "cannot use IPAM when disableContainerInterface is set")
        self.mac = None if for_cleanup else self._container_mac(req)
        self._isolation(req, for_cleanup)

    def _isolation(self, req: CmdArgs, for_cleanup: bool) -> None:
        """Docker's isolation (dockline.firewall.isolation): ``icc`` (default
        true: containers of the network reach one another), ``isolate``
        (default true, Docker's default: no traffic routed between this
        network and another bridge; false where nft is missing and the
        config does not ask for it) and ``isolateExcept``
        (bridges an isolated network still exchanges traffic with); the
        ``expose`` capability (ports a container declares to its linkers)."""
        c = req.config
        icc = c.get("icc", True)
        if not isinstance(icc, bool):
            raise CniError(INVALID_CONFIG, "invalid icc", f"{icc!r} is not true or false")
        self.icc: bool = icc
        if "isolate" in c:
            self.isolate = _bool(c, "isolate")
        else:  # Docker's default, where the host can have it
            from .. import proc

            self.isolate = bool(proc.which("nft"))
        self.isolate_except: list[str] = []
        self.expose: list[tuple[str, int, int]] = []
        if not for_cleanup:
            self._icc_needs(icc)
        expose = req.runtime_config.get("expose")
        if c.get("isolateExcept") is None and (for_cleanup or expose is None):
            return  # nothing to parse: the module is not even imported
        from ..firewall import isolation

        self.isolate_except = isolation.parse_except(c.get("isolateExcept"))
        if for_cleanup:
            return
        if self.isolate_except and not self.isolate:
            raise CniError(INVALID_CONFIG, "isolateExcept needs isolate", "set isolate: true")
        if self.bridge in self.isolate_except:
            raise CniError(INVALID_CONFIG, "invalid isolateExcept", "it names the network's bridge")
        self.expose = isolation.parse_expose(expose)

    def _icc_needs(self, icc: bool) -> None:
        """icc false: containers reach one another (as far as links allow)
        through the gateway, so there must be one, with addresses."""
        if icc or (self.is_gateway and self.ipam_type and not self.disable_container_interface):
            return
        raise CniError(
            INVALID_CONFIG,
            "icc false needs isGateway and IPAM",
            "containers reach one another through the gateway",
        )

    @staticmethod
    def _container_mac(req: CmdArgs) -> str | None:
        """runtimeConfig.mac, else args.cni.mac, else CNI_ARGS MAC=."""
        mac = req.runtime_config.get("mac")
        if mac:
            return parse_mac(mac, "runtimeConfig.mac")
        mac = req.args_cni.get("mac")
        if mac:
            return parse_mac(mac, "args.cni.mac")
        mac = req.cni_args(CNI_ARGS_KEYS).get("MAC")
        return parse_mac(mac, "CNI_ARGS MAC") if mac else None

"""An attachment: one container interface on one network.

CNI identifies an attachment by (network name, container ID, ifname); every
name dockline derives from it (the host veth, the firewall tag, the hosts
file line tag, the names registry key) comes from this one type, so DEL and
GC find what ADD made without a state file.
"""

from __future__ import annotations

from .errors import INVALID_CONFIG, CniError

try:  # _blake2 is what hashlib wraps; hashlib itself costs ~5 ms to import
    from _blake2 import blake2b
except ImportError:  # pragma: no cover
    from hashlib import blake2b

HOST_VETH_PREFIX = "dl"
VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")


def network_tag(network: str) -> str:
    """8 hex digits naming the network: the prefix of every tag of its
    attachments, so GC can pick out one network's rules."""
    return blake2b(network.encode(), digest_size=4).hexdigest()


class Attachment:
    """(network, container ID, ifname) and the names derived from it."""

    __slots__ = ("_digest", "container_id", "ifname", "network")

    def __init__(self, network: str, container_id: str, ifname: str) -> None:
        self.network = network
        self.container_id = container_id
        self.ifname = ifname
        parts = "\0".join((network, container_id, ifname)).encode()
        self._digest = blake2b(parts, digest_size=8).hexdigest()  # 16 hex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Attachment) and self._triple() == other._triple()

    def __hash__(self) -> int:
        return hash(self._triple())

    def __repr__(self) -> str:
        return f"Attachment({self.network!r}, {self.container_id!r}, {self.ifname!r})"

    def _triple(self) -> tuple[str, str, str]:
        return (self.network, self.container_id, self.ifname)

    @property
    def key(self) -> str:
        """The attachment within its network (the names registry's key)."""
        return f"{self.container_id}:{self.ifname}"

    @property
    def network_tag(self) -> str:
        return network_tag(self.network)

    @property
    def tag(self) -> str:
        """24 hex digits: the network's tag, then the attachment's digest.
        Firewall rules carry it, so DEL and GC need no addresses."""
        return self.network_tag + self._digest

    @property
    def hosts_tag(self) -> str:
        """16 hex digits marking the hosts-file lines this attachment wrote."""
        return self._digest

    @property
    def host_veth(self) -> str:
        """``dl`` + 13 hex digits: 15 characters, the kernel's limit."""
        return HOST_VETH_PREFIX + self._digest[:13]


def valid_attachments(config: dict[str, object], network: str) -> set[Attachment]:
    """The attachments of ``network`` the runtime still uses (GC's list).
    An absent or null list means none is valid, as libcni sends for
    ``cnitool gc``."""
    items: object = None
    for key in VALID_ATTACHMENTS_KEYS:
        if key in config:
            items = config[key]
            break
    if items is None:
        items = []
    # Anything else that is not a list ({}, false, "") is garbage, not
    # "nothing is valid": read so, it would tear down every live container.
    if not isinstance(items, list):
        raise CniError(INVALID_CONFIG, "invalid valid-attachments", "not a list")
    out = set()
    for item in items:
        cid = item.get("containerID") if isinstance(item, dict) else None
        ifname = item.get("ifname") if isinstance(item, dict) else None
        # A malformed entry must stop GC: read as "not valid", it would
        # release a live container's resources.
        if not (isinstance(cid, str) and cid and isinstance(ifname, str) and ifname):
            raise CniError(
                INVALID_CONFIG,
                "invalid valid-attachments entry",
                f"{item!r}: needs string containerID and ifname",
            )
        out.add(Attachment(network, cid, ifname))
    return out

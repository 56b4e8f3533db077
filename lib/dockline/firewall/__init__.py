"""Firewall rules owned by one attachment, in one batch per change.

Every rule dockline installs carries a tag derived from (network,
container ID, ifname), so DEL and GC find exactly an attachment's rules
without knowing its addresses (the container may be gone).
"""
from __future__ import annotations

try:  # _blake2 is what hashlib wraps; hashlib itself costs ~5 ms to import
    from _blake2 import blake2b
except ImportError:  # pragma: no cover
    from hashlib import blake2b


def short_hash(*parts: str, size: int = 8) -> str:
    return blake2b("\0".join(parts).encode(), digest_size=size).hexdigest()


class Owner:
    """The attachment rules belong to and the tags derived from it."""

    __slots__ = ("network", "container_id", "ifname", "network_tag", "tag")

    def __init__(self, network: str, container_id: str, ifname: str) -> None:
        self.network = network
        self.container_id = container_id
        self.ifname = ifname
        self.network_tag = short_hash(network, size=4)          # 8 hex
        self.tag = self.network_tag + short_hash(network, container_id, ifname)  # 24 hex

    @classmethod
    def tag_for(cls, network: str, container_id: str, ifname: str) -> str:
        return cls(network, container_id, ifname).tag

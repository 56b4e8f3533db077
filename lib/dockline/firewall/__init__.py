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


def nft_tagged_rules(family: str, table: str, chain: str, tag_prefix: str) -> list[tuple[str, str]]:
    """(tag, handle) of the rules in an nftables chain whose comment is
    ``dl-<tag>`` with tag starting with ``tag_prefix``; none if the chain
    does not exist."""
    from .. import proc
    result = proc.run(["nft", "-a", "list", "chain", family, table, chain])
    if result.returncode != 0:
        return []
    found = []
    marker = f'comment "dl-{tag_prefix}'
    for line in result.stdout.decode(errors="replace").splitlines():
        if marker in line and "# handle " in line:
            tag = line.split('comment "dl-', 1)[1].split('"', 1)[0]
            found.append((tag, line.rsplit("# handle ", 1)[1].strip()))
    return found


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

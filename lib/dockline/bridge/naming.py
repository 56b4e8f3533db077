"""Names derived from the attachment, so DEL and GC find what ADD made
without any state file and without entering the container's namespace."""

from __future__ import annotations

from ..firewall import short_hash

HOST_VETH_PREFIX = "dl"


def host_veth_name(network: str, container_id: str, ifname: str) -> str:
    """``dl`` + 13 hex digits: 15 characters, the kernel's limit."""
    return HOST_VETH_PREFIX + short_hash(network, container_id, ifname, size=8)[:13]

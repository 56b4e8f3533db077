"""Reachability across hosts: a route per block of another host, via that
host's underlay address.

Every host announces, with each block it holds (blocks.py), the address it
reaches etcd from: its underlay address.  The bridge, on ADD and STATUS,
reads the network's blocks (one etcd range call) and makes the host's
routes match: ``<block> via <owner's underlay address>`` for each block of
another host, with protocol ``dockline`` (RTPROT 211) so that routes to
blocks returned or moved are found and removed; nothing outside the
network's own subnets is ever routed, whatever etcd holds.  Proxy ARP on
the bridge lets containers, which see the whole cluster subnet as on-link,
reach addresses of other hosts through their gateway host: the host
answers ARP for an address it routes elsewhere.

No encapsulation, so no MTU cost; the underlay must carry the container
addresses as they are: the hosts share one L2 segment (the next hops are
direct), and nothing on it may drop or rewrite the cluster subnet.  Plain
IPv4 routing: IPv6 blocks are allocated but not routed across hosts yet.
Nothing here is authenticated or encrypted: a host on the underlay can send
packets with container source addresses, and anyone who may write to the
etcd prefix can point a block of the cluster subnet at any host.
"""

from __future__ import annotations

import ipaddress
import sys

from ..cni import jsonio
from .blocks import block_key, block_of_key
from .etcd import Client, EtcdError, EtcdUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..ipam.ranges import IPNetwork
    from .config import ClusterConfig

RTPROT_DOCKLINE = 211
_AF_INET = 2


def _inside(net: IPNetwork, subnets: list[IPNetwork]) -> bool:
    return any(
        s.version == net.version
        and int(s.network_address) <= int(net.network_address)
        and int(net.broadcast_address) <= int(s.broadcast_address)
        for s in subnets
    )


def wanted_routes(kvs: list[Any], local: str | None, subnets: list[IPNetwork]) -> dict[str, str]:
    """block -> next hop, for blocks of other hosts inside ``subnets``."""
    out: dict[str, str] = {}
    for kv in kvs:
        try:
            block = ipaddress.ip_network(block_of_key(kv.key))
            doc = jsonio.loads(kv.value)
            hop = ipaddress.ip_address(doc.get("underlay", "")) if isinstance(doc, dict) else None
        except ValueError:
            continue
        if hop is None or block.version != 4 or hop.version != 4 or str(hop) == local:
            continue
        if _inside(block, subnets):
            out[str(block)] = str(hop)
    return out


def sync(
    cconf: ClusterConfig, network: str, host: Any, bridge: str, subnets: list[IPNetwork]
) -> None:
    """Make the host's routes to other hosts' blocks of ``network`` (inside
    ``subnets``) match etcd, and turn on proxy ARP on ``bridge``.  Best
    effort towards etcd: unreachable, the routes stay as they were (an ADD
    served from a held block is not failed for this)."""
    if not any(s.version == 4 for s in subnets):
        return
    try:
        with Client(cconf) as client:
            kvs = client.get_prefix(block_key(cconf, network))
            local = client.local_address
    except (EtcdUnavailable, EtcdError):
        return
    wanted = wanted_routes(kvs, local, subnets)
    for route in host.list_routes(family=_AF_INET):
        if route.proto != RTPROT_DOCKLINE:
            continue
        if not _inside(ipaddress.ip_network(route.dst), subnets):
            continue  # another network's
        if wanted.get(route.dst) == route.gateway:
            del wanted[route.dst]
        else:
            host.del_route(route.dst, gateway=route.gateway, missing_ok=True)
    for block, hop in sorted(wanted.items()):
        try:
            host.add_route(block, gateway=hop, proto=RTPROT_DOCKLINE, replace=True)
        except OSError as exc:  # e.g. a next hop not on this host's underlay
            sys.stderr.write(f"dockline cluster: no route to {block} via {hop}: {exc}\n")
    host.sysctl_set(f"net/ipv4/conf/{bridge}/proxy_arp", 1)

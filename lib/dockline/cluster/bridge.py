"""The bridge plugin in cluster mode: what it does beyond one host.

The bridge calls ``run`` instead of its handler when the network config
has a ``cluster`` object (and ``add_routes`` as a phase of ADD): for the
call, the name registry also holds the other hosts' entries from etcd
(names.py), and STATUS, which runtimes repeat, brings this host up to date
with the cluster: link lines of its containers, routes to other hosts'
blocks.  An ADD asking for explicit names or links needs etcd, and so does
CHECK (code 11 without it); an ADD with a pod name only registers it
locally when etcd is out of reach.  DEL and GC never fail for etcd (what
they could not publish is published by a later call).
"""

from __future__ import annotations

import ipaddress

from ..cni.errors import CniError
from ..names import registry
from . import config as cluster_config
from . import routes
from .names import ClusterNames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..ipam.ranges import IPNetwork


def run(handler: Callable[[Any], Any], req: Any, data_dir: str) -> Any:
    command = req.command
    try:
        cconf = cluster_config.from_network(req.config)
    except CniError:
        if command in ("DEL", "GC"):
            return handler(req)  # never fail a cleanup for a config it cannot read
        raise
    if cconf is None or not data_dir:
        return handler(req)
    # CHECK reports stale link lines (101) rather than repairing them.
    names = ClusterNames(
        cconf,
        req.network,
        data_dir,
        strict=command == "CHECK" or (command == "ADD" and _needs_cluster_names(req, data_dir)),
        refresh=command != "CHECK",
    )
    registry.cluster = names
    try:
        out = handler(req)
        if command == "STATUS":
            _catch_up(req, names, data_dir)
        return out
    finally:
        registry.cluster = None
        names.close()


def _needs_cluster_names(req: Any, data_dir: str) -> bool:
    """Whether an ADD asks for explicit names or links: those need etcd
    (names unique cluster-wide, link targets on any host), so without it
    the ADD fails (11).  A pod name alone is registered locally and
    published by a later call."""
    from ..names import dockerlinks

    try:
        plan = dockerlinks.prepare(req, data_dir)
    except CniError:
        return True  # the ADD refuses it anyway
    return bool(plan.names or plan.links)


def add_routes(
    config: dict[str, Any], network: str, host: Any, bridge: str, ips: list[Any]
) -> None:
    """ADD's phase: routes to the other hosts' blocks (best effort)."""
    try:
        cconf = cluster_config.from_network(config)
    except CniError:
        return
    if cconf is not None and ips:
        subnets = [ipaddress.ip_interface(ip["address"]).network for ip in ips]
        routes.sync(cconf, network, host, bridge, subnets)


def _subnets(req: Any) -> list[IPNetwork]:
    from ..ipam import config as hostlocal_config

    try:
        conf = hostlocal_config.load(req)
    except CniError:
        return []
    return [r.subnet for rs in conf.range_sets for r in rs.ranges]


def _catch_up(req: Any, names: ClusterNames, data_dir: str) -> None:
    """STATUS: link lines and routes as the cluster now is."""
    names.strict = False
    with registry.Registry(req.network, data_dir) as reg:
        # Opening it merged etcd's entries and rewrote stale lines; what an
        # earlier call could not publish (etcd was out of reach) goes now.
        names.publish(reg)
    bridge = req.config.get("bridge") or "cni0"
    if not isinstance(bridge, str):
        return
    from ..netlink.netns import current_netns

    with current_netns() as host:
        if host.get_link(bridge) is not None:
            routes.sync(names.conf, req.network, host, bridge, _subnets(req))

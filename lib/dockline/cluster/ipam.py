"""host-local in cluster mode: the calls host-local makes when the network
config has a ``cluster`` object (and only then; see blocks.py)."""

from __future__ import annotations

from ..cni.errors import NOT_AVAILABLE, CniError
from ..ipam.allocator import Allocator, plan_requests
from ..ipam.disk import DiskStore, UnsafeStore
from .blocks import Blocks, HeldStore
from .etcd import EtcdUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..ipam.allocator import Allocation
    from ..ipam.config import HostLocalConfig
    from .config import ClusterConfig


def allocate(
    cconf: ClusterConfig,
    conf: HostLocalConfig,
    container_id: str,
    ifname: str,
    disk: DiskStore | None = None,
) -> list[Allocation]:
    """One address per range set from this host's blocks, claiming a block
    from etcd only when the held ones are full.  Nothing is reserved until
    every block needed is held, so an etcd failure (code 11) leaves no
    reservation behind."""
    plan = plan_requests(conf.range_sets, conf.requested)
    # host-local passes its own store (built as for one host), so both
    # modes write reservations the same way
    disk = disk or DiskStore(conf.network, conf.data_dir)
    with Blocks(cconf, conf.network, disk) as blocks:
        try:
            cut = blocks.prepare(conf.range_sets, plan)
            return Allocator(HeldStore(disk), cut).allocate(container_id, ifname, conf.requested)
        except CniError as exc:
            # A block claimed for one range set before another failed is
            # given back at once rather than by a later call (not when etcd
            # is out of reach: that would wait out the timeout again).
            if not isinstance(exc, EtcdUnavailable):
                blocks.return_empty()
            raise


def return_empty(config: dict[str, Any], network: str, data_dir: str) -> None:
    """After DEL or GC released addresses: give back blocks now empty.
    Never fails (DEL must not): a cluster config it cannot read, a store
    it will not use or etcd out of reach leave the blocks held, and a later
    call (or the lease's expiry) returns them."""
    from . import config as cluster_config

    try:
        cconf = cluster_config.from_network(config)
    except CniError:
        return
    if cconf is None:
        return
    disk = DiskStore(network, data_dir)
    try:
        if disk.open(create=False) is None:
            return
    except (OSError, UnsafeStore):
        return
    try:
        with Blocks(cconf, network, disk) as blocks:
            blocks.return_empty()
    except (OSError, CniError):
        return


def status(cconf: ClusterConfig, network: str, data_dir: str) -> None:
    """STATUS in cluster mode: etcd must answer (code 50 otherwise); the
    host's lease is refreshed on the way, which keeps an idle host's blocks."""
    disk = DiskStore(network, data_dir)
    try:
        with Blocks(cconf, network, disk) as blocks:
            blocks.client.status()
            if blocks.host.lease:
                blocks.refresh(required=True)
            blocks.return_empty()
    except EtcdUnavailable as exc:
        raise CniError(
            NOT_AVAILABLE, "host-local: the cluster's etcd cannot be reached", exc.details
        ) from None

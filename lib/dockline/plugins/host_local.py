"""host-local: addresses from configured ranges, recorded on local disk.

A drop-in for the reference host-local: same config, same store format.
"""

from __future__ import annotations

from dockline.cni.attachment import Attachment, valid_attachments
from dockline.cni.errors import NOT_AVAILABLE, STATE_MISSING, CniError
from dockline.cni.skel import CmdArgs
from dockline.ipam import config as hostlocal_config
from dockline.ipam import resolvconf
from dockline.ipam.allocator import Allocator, plan_requests
from dockline.ipam.disk import INDEX_ROOT, DiskStore, UnsafeStore

TYPE_CHECKING = False  # typing costs ~7 ms of start-up; annotations only
if TYPE_CHECKING:
    from dockline.cni.jsonio import JSONObject
    from dockline.ipam.config import HostLocalConfig


def _store(conf: HostLocalConfig) -> DiskStore:
    return DiskStore(conf.network, conf.data_dir, INDEX_ROOT)


def validate_add(req: CmdArgs) -> tuple[HostLocalConfig, JSONObject]:
    """Everything an ADD can be refused for without the store (config,
    requested addresses against the range sets, resolvConf); no side
    effects.  The bridge calls it before it changes anything."""
    conf = hostlocal_config.load(req)
    plan_requests(conf.range_sets, conf.requested)
    dns = resolvconf.load(conf.resolv_conf) if conf.resolv_conf else {}
    return conf, dns


def cmd_add(req: CmdArgs) -> JSONObject:
    conf, dns = validate_add(req)
    if conf.cluster is not None:  # cluster mode: blocks leased from etcd
        from dockline.cluster import ipam as cluster_ipam

        allocs = cluster_ipam.allocate(
            conf.cluster, conf, req.container_id, req.ifname, _store(conf)
        )
    else:
        allocs = Allocator(_store(conf), conf.range_sets).allocate(
            req.container_id, req.ifname, conf.requested
        )
    return {"ips": [a.to_result_ip() for a in allocs], "routes": conf.routes, "dns": dns}


def cmd_del(req: CmdArgs) -> None:
    """Releases by container ID and ifname whatever else the config holds:
    ranges, routes, CNI_ARGS and runtimeConfig are not read, so a config
    the plugin cannot parse (any more) still frees the attachment's
    addresses.  A dataDir that is set but invalid cannot be where ADD
    wrote: nothing is released.  A store behind a symlink we refuse to
    follow holds nothing dockline wrote either."""
    data_dir = hostlocal_config.data_dir_for_cleanup(req.config)
    if data_dir is None:
        return
    try:
        store = DiskStore(req.network, data_dir, INDEX_ROOT)
        Allocator(store, []).release(req.container_id, req.ifname)
    except UnsafeStore:
        return
    _cluster_return_empty(req, data_dir)


def _cluster_return_empty(req: CmdArgs, data_dir: str) -> None:
    """Cluster mode: blocks left empty go back to etcd (never fails)."""
    if req.config.get("cluster") is not None:
        from dockline.cluster import ipam as cluster_ipam

        cluster_ipam.return_empty(req.config, req.network, data_dir)


def cmd_check(req: CmdArgs) -> None:
    conf = hostlocal_config.load(req)
    store = _store(conf)
    with store.lock():
        # the index's answer first; an empty one is checked against them all
        if not store.owned(req.container_id, req.ifname) and not any(
            r.belongs_to(req.container_id, req.ifname) for r in store.reservations()
        ):
            raise CniError(
                STATE_MISSING,
                "host-local: failed to find address",
                f"no address is reserved for container {req.container_id} interface {req.ifname}",
            )


def cmd_gc(req: CmdArgs) -> None:
    """Like DEL, reads only the valid-attachments list (which must be
    well-formed: read as "none valid" it would release live containers'
    addresses) and dataDir."""
    valid = valid_attachments(req.config, req.network)
    data_dir = hostlocal_config.data_dir_for_cleanup(req.config)
    if data_dir is None:
        return
    store = DiskStore(req.network, data_dir, INDEX_ROOT)
    with store.lock():
        for res in list(store.reservations()):
            if not res.container_id:
                continue  # a crash leftover; allocation reclaims it
            if res.ifname is None:
                keep = any(a.container_id == res.container_id for a in valid)
            else:
                keep = Attachment(req.network, res.container_id, res.ifname) in valid
            if not keep:
                store.release(res.ip)
        store.prune_index()
    _cluster_return_empty(req, data_dir)


def cmd_status(req: CmdArgs) -> None:
    conf = hostlocal_config.load(req)
    try:
        _store(conf).check_writable()
    except OSError as exc:
        raise CniError(
            NOT_AVAILABLE,
            "host-local: address store not writable",
            f"{exc.filename or ''}: {exc.strerror}",
        ) from None
    except CniError as exc:  # a store we refuse to use
        raise CniError(
            NOT_AVAILABLE, "host-local: address store not usable", f"{exc.msg}: {exc.details}"
        ) from None
    if conf.cluster is not None:  # etcd must answer: 50 otherwise
        from dockline.cluster import ipam as cluster_ipam

        cluster_ipam.status(conf.cluster, conf.network, conf.data_dir)


# What dockline.launch (the executable) and the zygote serve.
HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status}
ABOUT = "dockline host-local"

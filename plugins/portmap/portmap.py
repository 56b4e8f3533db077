"""portmap: publish container ports on the host (iptables or nftables).

A drop-in for the reference portmap plugin, chained after bridge with the
``portMappings`` capability.  Unlike the reference, DEL finds the rules by
network and container ID, so it works even when the runtime does not
resend the mappings, and UDP conntrack entries are flushed on DEL too.
"""
from __future__ import annotations

from dockline.cni.attachments import valid_attachments
from dockline.cni.skel import Request
from dockline.firewall import Owner, hostports
from dockline.portmap.config import PortmapConfig


def _owner(req: Request) -> Owner:
    return Owner(req.network, req.container_id, req.ifname)


def cmd_add(req: Request) -> dict:
    conf = PortmapConfig(req, need_prev=True)
    if conf.mappings:
        hostports.add(hostports.choose_backend(conf), _owner(req), conf)
    return req.prev_result


def cmd_del(req: Request) -> None:
    conf = PortmapConfig(req, need_prev=False)
    hostports.delete(hostports.choose_backend(conf), _owner(req))


def cmd_check(req: Request) -> None:
    conf = PortmapConfig(req, need_prev=True)
    hostports.check(hostports.choose_backend(conf), _owner(req), conf)


def cmd_gc(req: Request) -> None:
    conf = PortmapConfig(req, need_prev=False)
    hostports.gc(hostports.choose_backend(conf), req.network, valid_attachments(req.config))


def cmd_status(req: Request) -> None:
    PortmapConfig(req, need_prev=False)


# What dockline.launch (the executable) and the zygote serve.
HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc,
            "STATUS": cmd_status}
ABOUT = "dockline portmap"

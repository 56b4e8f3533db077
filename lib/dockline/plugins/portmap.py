"""portmap: publish container ports on the host (iptables or nftables).

A drop-in for the reference portmap plugin, chained after bridge with the
``portMappings`` capability.  Unlike the reference, DEL finds the rules by
network and container ID, so it works even when the runtime does not
resend the mappings, UDP conntrack entries are flushed on DEL too, and DEL
succeeds on a config it cannot read (cleaning every backend).
"""

from __future__ import annotations

from dockline.cni.attachment import valid_attachments
from dockline.cni.skel import CmdArgs
from dockline.firewall import hostports
from dockline.portmap.config import PortmapConfig


def cmd_add(req: CmdArgs) -> dict:
    conf = PortmapConfig(req, need_prev=True)
    if conf.mappings:
        hostports.add(hostports.choose_backend(conf), req.attachment, conf)
    return req.prev_result


def _lenient(req: CmdArgs, command: str) -> tuple[str, ...]:
    """The backends DEL/GC clean: the config's, or both when the config
    cannot be read (DEL must not fail on input it cannot parse: a runtime
    retries it forever, and the rules are found by tag anyway)."""
    try:
        conf = PortmapConfig(req, need_prev=False)
        return (hostports.choose_backend(conf),)
    except Exception as err:  # any garbage: clean wherever rules may be
        import sys

        sys.stderr.write(
            f"dockline portmap: {command} with a config it cannot read ({err}); "
            "cleaning up on every backend\n"
        )
        return hostports.BOTH


def cmd_del(req: CmdArgs) -> None:
    hostports.delete(_lenient(req, "DEL"), req.attachment)


def cmd_check(req: CmdArgs) -> None:
    conf = PortmapConfig(req, need_prev=True)
    hostports.check(hostports.choose_backend(conf), req.attachment, conf)


def cmd_gc(req: CmdArgs) -> None:
    # A list we cannot read stays an error: read wrongly, it would delete
    # live containers' ports.
    valid = valid_attachments(req.config, req.network)
    # Every backend: GC is rare, and the default backend may have changed
    # since an ADD (iptables installed later), or a config was edited.
    hostports.gc(hostports.BOTH, req.network, valid)


def cmd_status(req: CmdArgs) -> None:
    PortmapConfig(req, need_prev=False)


# What dockline.launch (the executable) and the zygote serve.
HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status}
ABOUT = "dockline portmap"

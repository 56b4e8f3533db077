"""portmap: publish container ports on the host (nftables or iptables).

A drop-in for the reference portmap plugin, chained after bridge with the
``portMappings`` capability.  Unlike the reference, DEL removes what its
ADD recorded (``dockline.portmap.rules``), so it works even when the
runtime does not resend the mappings and lists no firewall table, UDP
conntrack entries are flushed on DEL too, and DEL succeeds on a config it
cannot read.
"""

from __future__ import annotations

from dockline.cni.attachment import valid_attachments
from dockline.cni.skel import CmdArgs
from dockline.portmap import rules
from dockline.portmap.config import PortmapConfig

TYPE_CHECKING = False  # typing costs ~7 ms of start-up; annotations only
if TYPE_CHECKING:
    from dockline.cni.jsonio import JSONObject


def cmd_add(req: CmdArgs) -> JSONObject | None:
    # need_prev: PortmapConfig has refused a request without prevResult
    conf = PortmapConfig(req, need_prev=True)
    if conf.mappings:
        rules.add(rules.choose_backend(conf), req.attachment, conf)
    return req.prev_result


def _lenient(req: CmdArgs, command: str) -> tuple[str, ...]:
    """The backends DEL cleans when the ADD left no record: the config's,
    or both when the config cannot be read (DEL must not fail on input it
    cannot parse: a runtime retries it forever)."""
    try:
        conf = PortmapConfig(req, need_prev=False)
        return (rules.choose_backend(conf),)
    except Exception as err:  # any garbage: clean wherever rules may be
        import sys

        sys.stderr.write(
            f"dockline portmap: {command} with a config it cannot read ({err}); "
            "cleaning up on every backend\n"
        )
        return rules.BOTH


def cmd_del(req: CmdArgs) -> None:
    # The config is read only when the ADD left no record (see rules.delete).
    rules.delete(lambda: _lenient(req, "DEL"), req.attachment)


def cmd_check(req: CmdArgs) -> None:
    conf = PortmapConfig(req, need_prev=True)
    rules.check(rules.choose_backend(conf), req.attachment, conf)


def cmd_gc(req: CmdArgs) -> None:
    # A list we cannot read stays an error: read wrongly, it would delete
    # live containers' ports.
    valid = valid_attachments(req.config, req.network)
    # Every backend: GC is rare, and the default backend may have changed
    # since an ADD (iptables installed later), or a config was edited.
    rules.gc(rules.BOTH, req.network, valid)


def cmd_status(req: CmdArgs) -> None:
    PortmapConfig(req, need_prev=False)


# What dockline.launch (the executable) and the zygote serve.
HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status}
ABOUT = "dockline portmap"

"""``dockline gc NETWORK [--yes]``: find what containers that are gone left
on a network, and with ``--yes`` have the plugins release it.

Stale: an attachment no cache entry knows whose network namespace is gone
(no veth left; the container end of a veth pair dies with its namespace):
addresses, names, hosts lines, firewall rules; plus veths and firewall
objects of the network that belong to no known attachment.  Collecting
runs the chain's GC (spec 1.1.0), as libcni does, with
``cni.dev/valid-attachments`` = every attachment a cache knows, plus every
attachment whose container is still alive (a runtime without a libcni
cache must not lose a live container to this command).  A veth on the
bridge that no store, registry or cache knows cannot be named in that
list (its name is a hash), yet its container is alive and the bridge's
GC would delete it: then ``--orphans`` must be given as well.
"""

from __future__ import annotations

from . import libcni
from . import state as net_state
from .inspect import load
from .output import FAILED, OK, emit_json, error, table

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ..cni.jsonio import JSONObject
    from .output import SubParsers

EPILOG = """\
examples:
  dockline gc dockline            # show what is stale
  dockline gc dockline --yes      # and release it
  dockline gc dockline --json
  dockline gc dockline --yes --orphans   # also veths of unknown, live containers

exit status: 0 nothing stale, or all of it released; 1 GC failed or left
something, or the network does not exist; 2 a usage error
"""


def add_parser(sub: SubParsers) -> None:
    import argparse

    p = sub.add_parser(
        "gc",
        help="find (and with --yes release) what dead containers left",
        description="Find attachments of a network whose container is gone and "
        "that no cache knows; with --yes, run the chain's GC.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("network")
    p.add_argument("--yes", action="store_true", help="run GC (otherwise only show)")
    p.add_argument(
        "--orphans",
        action="store_true",
        help="with --yes: also delete veths on the bridge that no store, registry or "
        "cache knows (their containers are alive)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def findings(st: net_state.NetworkState) -> JSONObject:
    return {
        "stale": [a.to_json() for a in st.attachments if a.stale],
        "orphanVeths": st.orphan_veths,
        "orphanFirewall": st.orphan_firewall,
    }


def _count(found: JSONObject) -> int:
    return sum(len(v) for v in found.values())


def _show(found: JSONObject) -> None:
    rows = [
        [
            a["containerID"],
            a["ifname"],
            ",".join(a["addresses"]) or "-",
            ",".join(a["names"]) or "-",
            str(len(a["firewall"])),
            ",".join(a["sources"]),
        ]
        for a in found["stale"]
    ]
    rows += [["?", "?", "-", "-", "-", f"veth {v}"] for v in found["orphanVeths"]]
    rows += [["?", "?", "-", "-", "-", obj] for obj in found["orphanFirewall"]]
    table(["CONTAINER", "IFNAME", "ADDRESSES", "NAMES", "FW", "FOUND IN"], rows)


def run(a: argparse.Namespace) -> int:
    net = load(a.network)
    if net is None:
        return FAILED
    st = net_state.gather(net)
    found = findings(st)
    report: JSONObject = {"network": net.name, **found, "collected": False}
    dead_cached = [att for att in st.attachments if att.cached and not att.alive]
    if _count(found) and a.yes and found["orphanVeths"] and not a.orphans:
        error(
            f"{len(found['orphanVeths'])} veth(s) on {st.bridge} belong to no known attachment, "
            "yet their containers are alive, and GC would delete them: add --orphans to "
            "go ahead (nothing was changed)"
        )
        return FAILED
    if _count(found) and a.yes:
        valid = [
            {"containerID": att.container_id, "ifname": att.ifname}
            for att in st.attachments
            if att.cached or att.alive
        ]
        try:
            if not libcni.gc(net, valid):
                error(
                    f"GC needs cniVersion 1.1.0 and no disableGC (network {net.name!r} has "
                    f"{net.cni_version})"
                )
                return FAILED
        except libcni.PluginError as exc:
            error(exc.describe())
            return FAILED
        report["collected"] = True
        after = findings(net_state.gather(net))
        report["remaining"] = after
    if a.json:
        emit_json(report)
    else:
        if not _count(found):
            print(f"network {net.name}: nothing stale")
        else:
            print(f"network {net.name}: {_count(found)} stale item(s)")
            _show(found)
            if not a.yes:
                print("run again with --yes to release them")
            elif _count(report["remaining"]):
                print("still there after GC:")
                _show(report["remaining"])
            else:
                print("released")
        for att in dead_cached:
            print(
                f"note: {att.container_id}/{att.ifname} is cached but its netns "
                f"{att.netns or '?'} is gone: its runtime never deleted it "
                f"(dockline cnitool del {net.name} {att.netns or '<netns>'} --id {att.container_id}"
                f" --ifname {att.ifname})"
            )
    if report["collected"] and _count(report["remaining"]):
        return FAILED
    return OK

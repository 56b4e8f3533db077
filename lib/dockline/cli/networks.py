"""``dockline networks``: the networks configured in NETCONFPATH, in the
order libcni finds them, with their plugin chain, bridge, subnets and
used/free address counts (from the host-local store)."""

from __future__ import annotations

import os

from . import libcni
from . import state as net_state
from .output import OK, emit_json, table

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ..cni.jsonio import JSONObject
    from .output import SubParsers

EPILOG = """\
examples:
  dockline networks
  NETCONFPATH=/etc/cni/net.d dockline networks --json

exit status: 0 listed (broken files are listed with their error), 2 a usage error
"""


def add_parser(sub: SubParsers) -> None:
    import argparse

    p = sub.add_parser(
        "networks",
        help="list the configured networks and their address use",
        description="The networks configured in $NETCONFPATH (default /etc/cni/net.d).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def human_count(n: int) -> str:
    """Exact below a billion; IPv6 ranges as powers of two."""
    if n < 10**9:
        return str(n)
    bits = n.bit_length() - 1
    return f"~2^{bits}" if n != 1 << bits else f"2^{bits}"


def collect(confdir: str) -> list[JSONObject]:
    out: list[JSONObject] = []
    seen: dict[str, str] = {}
    for path, net, err in libcni.all_networks(confdir):
        item: JSONObject = {"file": path, "name": net.name if net else None, "error": err or None}
        if net is not None:
            item["shadowedBy"] = seen.get(net.name)
            seen.setdefault(net.name, path)
            st = net_state.gather(net, with_firewall=False)
            item.update(
                {
                    "cniVersion": net.cni_version,
                    "plugins": st.chain,
                    "bridge": st.bridge or None,
                    "dataDir": st.data_dir or None,
                    "attachments": len(st.attachments),
                    "ranges": [
                        {
                            "subnet": r.subnet,
                            "range": r.range,
                            "size": r.size,
                            "used": r.used,
                            "free": r.free,
                        }
                        for r in st.ranges
                    ],
                    "problems": st.problems,
                }
            )
        out.append(item)
    return out


def run(a: argparse.Namespace) -> int:
    confdir = os.environ.get("NETCONFPATH", libcni.DEFAULT_NETCONFPATH)
    items = collect(confdir)
    if a.json:
        emit_json({"netconfpath": confdir, "networks": items})
        return OK
    if not items:
        print(f"no network configs in {confdir}")
        return OK
    rows = []
    for it in items:
        name = os.path.basename(it["file"])
        if it["error"]:
            rows.append(["-", "-", "-", "-", "-", "-", "-", f"{name}: {it['error']}"])
            continue
        note = name + (
            f" (shadowed by {os.path.basename(it['shadowedBy'])})" if it["shadowedBy"] else ""
        )
        ranges = it["ranges"] or [None]
        for i, r in enumerate(ranges):
            first = i == 0
            rows.append(
                [
                    it["name"] if first else "",
                    " > ".join(it["plugins"]) if first else "",
                    (it["bridge"] or "-") if first else "",
                    r["subnet"] if r else "-",
                    human_count(r["used"]) if r else "-",
                    human_count(r["free"]) if r else "-",
                    str(it["attachments"]) if first else "",
                    note if first else "",
                ]
            )
    table(["NETWORK", "PLUGINS", "BRIDGE", "SUBNET", "USED", "FREE", "ATTACHMENTS", "FILE"], rows)
    return OK

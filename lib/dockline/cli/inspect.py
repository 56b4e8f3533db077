"""``dockline inspect NETWORK``: every attachment of a network as the host
really has it: addresses (host-local store), container ID and ifname,
host veth, names and links (names registry), published ports and the
firewall objects carrying its tag, and whether a cache entry and a live
network namespace still stand behind it."""

from __future__ import annotations

import os

from . import libcni
from . import state as net_state
from .output import FAILED, OK, emit_json, error, table

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ..cni.jsonio import JSONObject
    from .output import SubParsers

EPILOG = """\
examples:
  dockline inspect dockline
  dockline inspect dockline --json | jq '.attachments[] | select(.stale)'

STATE is "ok" (cached by a runtime, container alive), "uncached" (alive,
no cache entry: a runtime that keeps no libcni cache), "cached, netns gone"
(the runtime never sent DEL), or "stale" (gone and unknown: `dockline gc`
removes it).
exit status: 0 shown, 1 no such network, 2 a usage error
"""


def add_parser(sub: SubParsers) -> None:
    import argparse

    p = sub.add_parser(
        "inspect",
        help="every attachment of a network: addresses, veths, names, ports, firewall",
        description="Every attachment of a network as the host has it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("network")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def state_word(att: net_state.AttachmentState) -> str:
    if att.stale:
        return "stale"
    if att.cached and not att.alive:
        return "cached, netns gone"
    return "ok" if att.cached else "uncached"


def load(network: str) -> libcni.NetworkList | None:
    confdir = os.environ.get("NETCONFPATH", libcni.DEFAULT_NETCONFPATH)
    try:
        return libcni.load_network(confdir, network)
    except libcni.ConfigError as exc:
        error(str(exc))
        return None


def state_json(st: net_state.NetworkState) -> JSONObject:
    return {
        "network": st.net.name,
        "file": st.net.path,
        "cniVersion": st.net.cni_version,
        "plugins": st.chain,
        "bridge": st.bridge or None,
        "dataDir": st.data_dir or None,
        "attachments": [a.to_json() for a in st.attachments],
        "orphanVeths": st.orphan_veths,
        "orphanFirewall": st.orphan_firewall,
        "problems": st.problems,
    }


def run(a: argparse.Namespace) -> int:
    net = load(a.network)
    if net is None:
        return FAILED
    st = net_state.gather(net)
    if a.json:
        emit_json(state_json(st))
        return OK
    print(
        f"network {net.name} ({' > '.join(st.chain)}; bridge {st.bridge or '-'}; "
        f"{os.path.basename(net.path)})"
    )
    rows = [
        [
            att.container_id,
            att.ifname,
            ",".join(att.addresses) or "-",
            att.host_veth + ("" if att.host_veth_present else " (gone)") if att.host_veth else "-",
            ",".join(att.names + ([f"pod={att.pod}"] if att.pod else [])) or "-",
            ",".join(att.links) or "-",
            ",".join(att.ports) or "-",
            str(len(att.firewall)),
            state_word(att),
        ]
        for att in st.attachments
    ]
    if rows:
        table(
            [
                "CONTAINER",
                "IFNAME",
                "ADDRESSES",
                "HOST VETH",
                "NAMES",
                "LINKS",
                "PORTS",
                "FW",
                "STATE",
            ],
            rows,
        )
    else:
        print("no attachments")
    for att in st.attachments:
        if att.firewall:
            print(f"\nfirewall objects of {att.container_id}/{att.ifname}:")
            for obj in att.firewall:
                print(f"  {obj}")
    if st.orphan_veths or st.orphan_firewall:
        print("\nbelonging to no known attachment (dockline gc removes them):")
        for name in st.orphan_veths:
            print(f"  veth {name}")
        for obj in st.orphan_firewall:
            print(f"  {obj}")
    for problem in st.problems:
        error(problem)
    return OK

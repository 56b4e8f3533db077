"""Per-link reads ask the kernel for that link only (strict dump filters):
with hundreds of other links in the netns, list_addresses(link) and
list_routes(link) get back, and decode, just that link's objects; the
answers are the same as the plain dump filtered by hand."""

from __future__ import annotations

import json
import textwrap

from helpers.paths import REPO, VENV_PYTHON

LIB = REPO / "lib"
SITE = next((VENV_PYTHON.parent.parent / "lib").glob("python3*/site-packages"))

SCRIPT = """\
import json, sys
sys.path[:0] = [{lib!r}, {site!r}]
from dockline.netlink import current_netns
from dockline.netlink import rtnl as R

seen = []
plain_dump = R.RtnlSocket._dump
def counting(self, request):
    replies = plain_dump(self, request)
    seen.append(len(replies))
    return replies
R.RtnlSocket._dump = counting

with current_netns() as host:
    addrs = host.list_addresses("d7")
    addr_replies = seen[-1]
    routes = host.list_routes("d7")
    route_replies = seen[-1]
    every_addr = host.list_addresses()
    every_route = host.list_routes()
    out = {{
        "addrs": sorted(f"{{a.address}}/{{a.prefixlen}}" for a in addrs),
        "addr_replies": addr_replies,
        "routes": sorted(r.dst for r in routes),
        "route_replies": route_replies,
        "by_hand_addrs": sorted(
            f"{{a.address}}/{{a.prefixlen}}" for a in every_addr if a.index == addrs[0].index
        ),
        "by_hand_routes": sorted(r.dst for r in every_route if r.oif == addrs[0].index),
        "all_addrs": len(every_addr),
    }}
print(json.dumps(out))
"""


def test_one_link_s_addresses_and_routes_without_the_others(sandbox):
    batch = []
    for i in range(200):
        batch.append(f"link add d{i} type bridge")
        batch.append(f"addr add 10.77.{i}.1/24 dev d{i}")
        batch.append(f"link set d{i} up")
    sandbox.run(["ip", "-batch", "-"], input="\n".join(batch) + "\n")
    sandbox.sh("ip -6 addr add fd77::7/64 dev d7 nodad")
    script = SCRIPT.format(lib=str(LIB), site=str(SITE))
    proc = sandbox.run([str(VENV_PYTHON), "-I", "-S", "-c", textwrap.dedent(script)])
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["all_addrs"] > 400  # the others are there...
    assert "10.77.7.1/24" in got["addrs"] and "fd77::7/64" in got["addrs"]
    assert got["addrs"] == got["by_hand_addrs"]
    assert got["addr_replies"] == len(got["addrs"])  # ...but not sent for d7's
    assert "10.77.7.0/24" in got["routes"] and "fd77::/64" in got["routes"]
    assert got["routes"] == got["by_hand_routes"]
    assert got["route_replies"] == len(got["routes"])


SYSCTL_SCRIPT = """\
import json, sys
sys.path[:0] = [{lib!r}, {site!r}]
from dockline.netlink import open_netns
out = {{}}
with open_netns("/run/netns/a") as a, open_netns("/run/netns/b") as b:
    for ns, value in ((a, 1), (b, 2), (a, 1)):
        ns.sysctl_set("net/ipv4/conf/eth0/arp_notify", value)
        ns.sysctl_set("net/ipv4/conf/eth0/arp_announce", value)
    out["a"] = [a.sysctl_get("net/ipv4/conf/eth0/arp_notify"),
                a.sysctl_get("net/ipv4/conf/eth0/arp_announce")]
    out["b"] = [b.sysctl_get("net/ipv4/conf/eth0/arp_notify"),
                b.sysctl_get("net/ipv4/conf/eth0/arp_announce")]
print(json.dumps(out))
"""


def test_sysctl_directories_opened_once_stay_in_their_netns(sandbox):
    """Netns.sysctl_set/get open a device's /proc/sys directory once and
    the files through it: each netns's eth0 keeps its own values."""
    for name in ("a", "b"):
        sandbox.sh(f"ip netns add {name} && ip -n {name} link add eth0 type bridge")
    script = SYSCTL_SCRIPT.format(lib=str(LIB), site=str(SITE))
    proc = sandbox.run([str(VENV_PYTHON), "-I", "-S", "-c", script])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"a": ["1", "1"], "b": ["2", "2"]}
    for name, value in (("a", "1"), ("b", "2")):
        got = sandbox.sh(f"ip netns exec {name} cat /proc/sys/net/ipv4/conf/eth0/arp_notify")
        assert got.stdout.strip() == value

"""Differential tests: Traffic through the bridge, for both implementations:
container to container (IPv4 and IPv6), container to the host's gateway
address.

The method, and what differs by design: tests/helpers/bridge_diff.py."""

from __future__ import annotations

from helpers.bridge_diff import (
    DIFF_MARKS,
    DUAL,
    SIDES,
    both,
    bridge_conf,
)
from helpers.paths import VENV_PYTHON

pytestmark = DIFF_MARKS


SERVER = r"""
import socket, sys, select
socks = []
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(fam, socket.SOCK_STREAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 7777)); s.listen(8); socks.append(s)
print("listening", flush=True)
served = 0
while served < int(sys.argv[1]):
    ready, _, _ = select.select(socks, [], [], 8)
    if not ready:
        break
    for s in ready:
        c, peer = s.accept(); c.sendall(("hello " + peer[0]).encode()); c.close(); served += 1
"""


CLIENT = r"""
import socket, sys, time
for target in sys.argv[1:]:
    for attempt in range(40):
        try:
            c = socket.create_connection((target, 7777), timeout=2)
            print(target, c.recv(100).decode()); c.close(); break
        except OSError as exc:
            err = exc; time.sleep(0.1)
    else:
        print(target, "FAILED", err)
"""


def test_traffic_between_containers_and_to_gateway():
    """Two containers on the bridge reach each other (IPv4 and IPv6) and the
    host through the bridge's gateway address, for both implementations."""
    conf = bridge_conf(ranges=DUAL, isDefaultGateway=True)

    def scenario(side):
        side.netns("c1", "c2")
        side.add(conf, ns="c1").ok()
        side.add(conf, ns="c2").ok()
        py = str(VENV_PYTHON)
        script = (
            f"ip netns exec c1 timeout 15 {py} -c '{SERVER}' 2 > /var/lib/cni/s1.out 2>&1 &\n"
            f"timeout 15 {py} -c '{SERVER}' 1 > /var/lib/cni/s0.out 2>&1 &\n"
            "sleep 0.3\n"
            f"ip netns exec c2 timeout 15 {py} -c '{CLIENT}' 10.1.2.2 fd00:1::2\n"
            f"ip netns exec c1 timeout 15 {py} -c '{CLIENT}' 10.1.2.1\n"
            "wait\n"
        )
        return side.sh(script, check=False).stdout

    runs = both(scenario)
    for side in SIDES:
        lines = runs[side].splitlines()
        assert "10.1.2.2 hello 10.1.2.3" in lines, (side, runs[side])
        assert "fd00:1::2 hello fd00:1::3" in lines, (side, runs[side])
        assert "10.1.2.1 hello 10.1.2.2" in lines, (side, runs[side])

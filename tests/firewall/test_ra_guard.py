"""RA guard with real frames: a router advertisement crafted by hand in one
container (a raw ICMPv6 socket, as any container with CAP_NET_RAW can
open) reaches another container on the bridge until the guard is on for
the sender's port (by dockline's host-veth prefix), and never after;
ordinary IPv6 between them still flows; a guard deleted by hand is seen
by CHECK and put back by the next ADD."""

import time

from helpers.paths import REPO, VENV_PYTHON

LIB = REPO / "lib"

SEND_RA = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
if sys.argv[1:] == ["hopopts"]:  # the RA behind a hop-by-hop header (PadN): RA-guard evasion
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, bytes([0, 0, 1, 4, 0, 0, 0, 0]))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex("eth0"))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
# type 134, code 0, checksum (the kernel fills it in), hop limit 64, flags 0,
# router lifetime 1800 s, reachable 0, retrans 0; then a prefix option
# (type 3, length 4): 2001:db8:bad::/64, on-link + autonomous
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0)
ra += socket.inet_pton(socket.AF_INET6, "2001:db8:bad::")
for _ in range(3):
    s.sendto(ra, ("ff02::1", 0, 0, socket.if_nametoindex("eth0")))
"""

# Prints one line per router advertisement seen within the timeout.
LISTEN_RA = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(0.2)
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    try:
        data, addr = s.recvfrom(2000)
    except socket.timeout:
        continue
    if data[0] == 134 and b"\x20\x01\x0d\xb8\x0b\xad" in data:
        print("RA from", addr[0], flush=True)
"""


def _topology(sb):
    # Two "containers" on one bridge, host-side ports named as dockline
    # names them; no DAD so addresses are usable at once.
    sb.sh(
        "ip link add br0 type bridge; ip link set br0 up;"
        "for n in a b; do ip netns add $n; ip link add dl$n$n$n type veth peer name eth0 netns $n;"
        " ip link set dl$n$n$n master br0 up; ip -n $n link set lo up;"
        " ip netns exec $n sysctl -qw net.ipv6.conf.eth0.accept_dad=0;"
        " ip -n $n link set eth0 up; done;"
        "ip -n a addr add fd00::a/64 dev eth0 nodad; ip -n b addr add fd00::b/64 dev eth0 nodad"
    )
    for _ in range(50):  # the link-local addresses the RAs are sent from
        if "fe80" in sb.sh("ip -n a -6 addr show dev eth0 scope link").stdout:
            break
        time.sleep(0.1)


def _ra_reaches_b(sb, *how: str) -> bool:
    sb.sh("rm -f /run/netns/ra.out")
    sb.run(
        ["sh", "-c", f"ip netns exec b {VENV_PYTHON} -c '{LISTEN_RA}' 2 > /run/netns/ra.out 2>&1 &"]
    )
    for _ in range(50):
        if "ready" in sb.sh("cat /run/netns/ra.out 2>/dev/null", check=False).stdout:
            break
        time.sleep(0.05)
    sb.run(["ip", "netns", "exec", "a", str(VENV_PYTHON), "-c", SEND_RA, *how], check=True)
    time.sleep(2.3)
    out = sb.sh("cat /run/netns/ra.out").stdout
    assert "ready" in out, out
    return "RA from" in out


ECHO = (
    "import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('fd00::b', 7)); "
    "d, a = s.recvfrom(100); s.sendto(d, a)"
)
ASK = (
    "import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3); "
    "s.sendto(b'hello', ('fd00::b', 7)); print(s.recvfrom(100)[0].decode())"
)


def _udp6_works(sb) -> bool:
    sb.run(["sh", "-c", f'ip netns exec b {VENV_PYTHON} -c "{ECHO}" >/dev/null 2>&1 &'])
    time.sleep(0.3)
    return sb.sh(f'ip netns exec a {VENV_PYTHON} -c "{ASK}"', check=False).stdout.strip() == "hello"


def _guard(sb, call: str):
    code = (
        f"import sys; sys.path.insert(0, {str(LIB)!r}); "
        f"from dockline.firewall import ra_guard; {call}"
    )
    run = sb.run([str(VENV_PYTHON), "-I", "-c", code])
    assert run.returncode == 0, run.stdout + run.stderr


def test_router_advert_from_a_container_is_dropped(sandbox):
    _topology(sandbox)
    assert _ra_reaches_b(sandbox)  # the attack works without the guard
    assert _ra_reaches_b(sandbox, "hopopts")
    _guard(
        sandbox,
        "assert ra_guard._table_exists() is False; ra_guard.ensure('dl'); ra_guard.ensure('dl');"
        "assert ra_guard._table_exists() is True; assert ra_guard.check('dl')",
    )
    rules = sandbox.sh("nft list table bridge dockline_guard").stdout
    assert rules.count("nd-router-advert") == 1  # ensure twice: still one rule
    assert not _ra_reaches_b(sandbox)
    assert not _ra_reaches_b(sandbox, "hopopts")
    # ordinary IPv6 between the containers is untouched
    assert _udp6_works(sandbox)
    # the table deleted by hand: CHECK notices, the next ensure puts it back
    sandbox.sh("nft delete table bridge dockline_guard")
    assert _ra_reaches_b(sandbox)
    _guard(
        sandbox,
        "assert not ra_guard.check('dl'); ra_guard.ensure('dl'); assert ra_guard.check('dl')",
    )
    assert not _ra_reaches_b(sandbox)


def test_port_prefixes_are_tokens(sandbox):
    code = (
        f"import sys; sys.path.insert(0, {str(LIB)!r}); from dockline.firewall import ra_guard\n"
        "from dockline.cni.errors import CniError\n"
        "for bad in ['x\" }\\nflush ruleset', 'a;b', 'dl*', 'x' * 15]:\n"
        "    try:\n        ra_guard.ensure(bad)\n    except CniError as e:\n"
        "        assert e.code == 7, e\n    else:\n        raise SystemExit(repr(bad))\n"
    )
    before = sandbox.sh("nft list ruleset").stdout
    run = sandbox.run([str(VENV_PYTHON), "-I", "-c", code])
    assert run.returncode == 0, run.stdout + run.stderr
    assert sandbox.sh("nft list ruleset").stdout == before

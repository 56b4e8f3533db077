"""Isolation (issue 11): Docker's icc switch with links as the exceptions,
and no traffic between isolated networks.  Real traffic in a private
sandbox, TCP and UDP, IPv4 and IPv6."""

import json

import pytest
from helpers.paths import REPO, VENV_PYTHON

CAPS = {"ips": True, "mac": True, "aliases": True, "links": True, "hostsFile": True, "expose": True}

SERVER = """
import socket, sys, threading
port = int(sys.argv[1])
def tcp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"ok"); c.close()
def udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    while True:
        d, a = s.recvfrom(100); s.sendto(b"ok", a)
threading.Thread(target=tcp, daemon=True).start()
udp()
"""

CLIENT = """
import socket, sys
host, port, proto, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(timeout)
try:
    if proto == "tcp":
        s.connect((host, port))
    else:
        s.sendto(b"hi", (host, port))
    ok = s.recv(2) == b"ok"
except OSError:
    ok = False
print("yes" if ok else "no")
"""


def conflist(name="dockline", bridge="dockline0", v4="10.89.0", v6="fd89", **options):
    conf = json.loads((REPO / "conf" / "30-dockline-portmap.conflist").read_text())
    conf["name"] = name
    plugin = conf["plugins"][0]
    plugin["capabilities"] = CAPS
    plugin["bridge"] = bridge
    plugin["ipam"]["ranges"] = [[{"subnet": f"{v4}.0/24"}], [{"subnet": f"{v6}::/64"}]]
    plugin.update(options)
    return conf


def setup(sb, conf, file="20.conflist"):
    sb.run(["sh", "-c", f"cat > /etc/cni/net.d/{file}"], input=json.dumps(conf), check=True)


def cni(sb, command, netns, cid=None, pod=None, cap=None, network="dockline"):
    args = [str(REPO / "scripts" / "cni"), command, network, f"/run/netns/{netns}"]
    args += ["--id", cid or netns, "--cap-args", json.dumps(cap or {})]
    if pod:
        args += ["--args", f"IgnoreUnknown=1;K8S_POD_NAME={pod}"]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": str(REPO / ".build" / "cni-bin")}
    return sb.run(args, env=env)


def ok(run):
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout) if run.stdout.strip().startswith("{") else None


def addrs(result):
    v4 = next(i["address"].split("/")[0] for i in result["ips"] if ":" not in i["address"])
    v6 = next(i["address"].split("/")[0] for i in result["ips"] if ":" in i["address"])
    return v4, v6


def serve(sb, netns, *ports):
    """TCP and UDP servers on every address of ``netns`` (None: the host)."""
    prefix = f"ip netns exec {netns} " if netns else ""
    for port in ports:
        sb.sh(f"{prefix}{VENV_PYTHON} -c '{SERVER}' {port} >/dev/null 2>&1 &")
    for port in ports:
        sb.sh(
            f"for i in $(seq 100); do {prefix}{VENV_PYTHON} -c '{CLIENT}' ::1 {port} tcp 1 "
            "| grep -q yes && break; sleep 0.05; done"
        )


def reach(sb, netns, host, port, proto="tcp", timeout=0.6):
    prefix = f"ip netns exec {netns} " if netns else ""
    out = sb.sh(f"{prefix}{VENV_PYTHON} -c '{CLIENT}' {host} {port} {proto} {timeout}").stdout
    return out.strip() == "yes"


def reaches(sb, netns, targets, port, expect):
    """Every (address, proto) of ``targets`` on ``port`` is reached from
    ``netns`` iff ``expect``."""
    got = {
        (host, proto): reach(sb, netns, host, port, proto)
        for host in targets
        for proto in ("tcp", "udp")
    }
    assert got == dict.fromkeys(got, expect), (netns, port, got)


def nft_ruleset(sb):
    return sb.sh("nft list ruleset", check=False).stdout


def outside(sb):
    """A namespace beyond the host (the outside world): 192.0.2.2, 2001:db8::2."""
    sb.sh(
        "ip netns add out; ip link add dlout type veth peer name eth0 netns out;"
        "ip addr add 192.0.2.1/24 dev dlout; ip addr add 2001:db8::1/64 dev dlout nodad;"
        "ip link set dlout up; ip -n out link set lo up; ip -n out link set eth0 up;"
        "ip -n out addr add 192.0.2.2/24 dev eth0;"
        "ip -n out addr add 2001:db8::2/64 dev eth0 nodad;"
        "ip -n out route add default via 192.0.2.1; ip -n out -6 route add default via 2001:db8::1"
    )


@pytest.fixture(params=["br_netfilter", "no_br_netfilter"])
def trio(request, sandbox, dockline_bin):
    """web linked to db (alias dbapp), and other, unlinked, on an icc-off
    network; servers on port 5432 and 8080 in each.  With br_netfilter's
    hooks on (this machine's default) and off."""
    sb = sandbox
    value = 1 if request.param == "br_netfilter" else 0
    for fam in ("iptables", "ip6tables"):
        sb.sh(f"sysctl -qw net.bridge.bridge-nf-call-{fam}={value}")
    setup(sb, conflist(icc=False))
    for ns in ("db", "web", "other"):
        sb.sh(f"ip netns add {ns}; ip -n {ns} link set lo up")
    db = ok(cni(sb, "add", "db", pod="db"))
    web = ok(cni(sb, "add", "web", pod="web", cap={"links": ["db:dbapp"]}))
    other = ok(cni(sb, "add", "other", pod="other"))
    for ns in ("db", "web", "other"):
        serve(sb, ns, 5432, 8080)
    return sb, {"db": addrs(db), "web": addrs(web), "other": addrs(other)}


def test_links_open_one_way_and_others_are_refused(trio):
    sb, ip = trio
    reaches(sb, "web", ip["db"], 5432, True)  # web -> db: the link
    reaches(sb, "web", ip["db"], 8080, True)  # every port when db declares none
    reaches(sb, "db", ip["web"], 5432, False)  # db -> web: no link that way
    reaches(sb, "other", ip["db"], 5432, False)
    reaches(sb, "other", ip["web"], 5432, False)
    reaches(sb, "web", ip["other"], 5432, False)
    reaches(sb, "db", ip["other"], 5432, False)
    # the hosts line still names db
    assert sb.sh("ip netns exec web getent ahostsv4 dbapp").stdout.split()[0] == ip["db"][0]


def test_everyone_reaches_the_gateway_outside_and_published_ports(trio):
    sb, ip = trio
    outside(sb)
    serve(sb, None, 9000)  # on the host: the gateway's addresses
    serve(sb, "out", 9000)
    for ns in ("web", "db", "other"):
        reaches(sb, ns, ("10.89.0.1", "fd89::1"), 9000, True)
        reaches(sb, ns, ("192.0.2.2", "2001:db8::2"), 9000, True)
    # and the host and the outside world reach every container
    for ns in ("web", "db", "other"):
        reaches(sb, None, ip[ns], 5432, True)

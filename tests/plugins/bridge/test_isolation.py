"""Isolation (issue 11): Docker's icc switch with links as the exceptions,
and no traffic between isolated networks.  Real traffic in a private
sandbox, TCP and UDP, IPv4 and IPv6."""

import json

import pytest
from helpers.cni import call_plugin
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


def test_published_ports_answer_from_the_host_other_containers_and_hairpin(trio):
    sb, ip = trio
    outside(sb)
    sb.sh("ip netns add pub; ip -n pub link set lo up")
    maps = [
        {"hostPort": 18080, "containerPort": 8080, "protocol": proto} for proto in ("tcp", "udp")
    ]
    pub = ok(cni(sb, "add", "pub", pod="pub", cap={"portMappings": maps}))
    serve(sb, "pub", 8080)
    reaches(sb, "pub", addrs(pub), 8080, True)
    for ns in ("other", "web", "db", "pub"):  # another container, and itself (hairpin)
        reaches(sb, ns, ("10.89.0.1", "fd89::1"), 18080, True)
    reaches(sb, None, ("10.89.0.1", "fd89::1"), 18080, True)  # the host
    reaches(sb, "out", ("192.0.2.1", "2001:db8::1"), 18080, True)  # the outside world
    # but not the container's port directly, from an unlinked container
    reaches(sb, "other", addrs(pub), 8080, False)


def test_declared_ports_narrow_a_link(sandbox, dockline_bin):
    sb = sandbox
    setup(sb, conflist(icc=False))
    for ns in ("db", "web"):
        sb.sh(f"ip netns add {ns}; ip -n {ns} link set lo up")
    db = addrs(ok(cni(sb, "add", "db", pod="db", cap={"expose": ["5432/tcp", "5432/udp"]})))
    ok(cni(sb, "add", "web", pod="web", cap={"links": ["db:dbapp"]}))
    serve(sb, "db", 5432, 8080)
    reaches(sb, "web", db, 5432, True)
    reaches(sb, "web", db, 8080, False)
    # a range, one protocol
    sb.sh("ip netns add db2; ip -n db2 link set lo up")
    db2 = addrs(ok(cni(sb, "add", "db2", pod="db2", cap={"expose": ["8000-8080/udp"]})))
    sb.sh("ip netns add web2; ip -n web2 link set lo up")
    ok(cni(sb, "add", "web2", pod="web2", cap={"links": ["db2"]}))
    serve(sb, "db2", 8080)
    assert all(reach(sb, "web2", host, 8080, "udp") for host in db2)
    assert not any(reach(sb, "web2", host, 8080, "tcp") for host in db2)


def elements(sb):
    """Every per-attachment element of the isolation tables: (set, element)."""
    found = []
    for table in ("inet dockline_isolation", "bridge dockline_isolation"):
        out = sb.sh(f"nft -j list table {table}", check=False).stdout
        if not out.strip():
            continue
        for item in json.loads(out)["nftables"]:
            kind = "set" if "set" in item else "map" if "map" in item else None
            if kind is None:
                continue
            name = item[kind]["name"]
            if name in ("icc_br", "icc_self", "iso_br", "iso_self", "allowed"):
                continue  # the network's own, kept with the bridge
            found += [(name, json.dumps(e)) for e in item[kind].get("elem", [])]
    return found


def test_restarted_target_moves_the_access_and_del_gc_leave_nothing(trio):
    sb, ip = trio
    before = elements(sb)
    assert any(name == "link4" for name, _ in before) and any(n == "link6" for n, _ in before)
    ok(cni(sb, "del", "db"))
    # db gone: web's elements to it went with it
    assert not any(name.startswith("link") for name, _ in elements(sb))
    new_db = addrs(ok(cni(sb, "add", "db", cid="db-restarted", pod="db")))
    assert new_db != ip["db"]
    assert sb.sh("ip netns exec web getent ahostsv4 dbapp").stdout.split()[0] == new_db[0]
    reaches(sb, "web", new_db, 5432, True)
    reaches(sb, "db", ip["web"], 5432, False)
    ok(cni(sb, "check", "web", pod="web", cap={"links": ["db:dbapp"]}))
    # DEL of everything: no element, no port chain (a second DEL is fine)
    for cid, ns in (("db-restarted", "db"), ("web", "web"), ("other", "other")):
        ok(cni(sb, "del", ns, cid=cid))
        ok(cni(sb, "del", ns, cid=cid))
    assert elements(sb) == []


def test_gc_removes_what_deleted_containers_left(trio):
    sb, ip = trio
    conf = json.loads(sb.sh("cat /etc/cni/net.d/20.conflist").stdout)
    conf["cni.dev/valid-attachments"] = [{"containerID": "other", "ifname": "eth0"}]
    for plugin in conf["plugins"]:
        plugin.pop("capabilities", None)
    bridge = {**conf["plugins"][0], "cniVersion": "1.1.0", "name": "dockline"}
    bridge["cni.dev/valid-attachments"] = conf["cni.dev/valid-attachments"]
    call_plugin(
        sb,
        REPO / ".build" / "cni-bin" / "bridge",
        "GC",
        bridge,
        containerid=None,
        netns=None,
        ifname=None,
    ).ok()
    left = elements(sb)
    assert len([e for e in left if e[0] == "icc_ports"]) == 1  # other's source check
    assert len([e for e in left if e[0] in ("src4", "src6")]) == 2
    assert not any(name.startswith(("link", "dport", "port")) for name, _ in left)


def test_isolated_networks_exchange_nothing_unless_allowed(sandbox, dockline_bin):
    sb = sandbox
    nets = {
        "a": conflist("neta", "dockline0", "10.89.0", "fd89", isolate=True),
        "b": conflist("netb", "dockline1", "10.90.0", "fd90"),  # isolated by default
        "c": conflist(
            "netc", "dockline2", "10.91.0", "fd91", isolate=True, isolateExcept=["dockline0"]
        ),
        "d": conflist("netd", "dockline3", "10.92.0", "fd92", isolate=False),  # turned off
    }
    ip = {}
    for key, conf in nets.items():
        setup(sb, conf, f"{key}.conflist")
        sb.sh(f"ip netns add {key}1; ip -n {key}1 link set lo up")
        cap = {}
        if key == "b":
            cap = {"portMappings": [{"hostPort": 19090, "containerPort": 5432, "protocol": "tcp"}]}
        ip[key] = addrs(ok(cni(sb, "add", f"{key}1", network=conf["name"], cap=cap)))
        serve(sb, f"{key}1", 5432)
    reaches(sb, "a1", ip["b"], 5432, False)
    reaches(sb, "b1", ip["a"], 5432, False)
    reaches(sb, "b1", ip["c"], 5432, False)
    reaches(sb, "a1", ip["d"], 5432, False)  # an isolated network: from every other bridge
    reaches(sb, "d1", ip["a"], 5432, False)
    reaches(sb, "a1", ip["c"], 5432, True)  # isolateExcept opens a pair, both ways
    reaches(sb, "c1", ip["a"], 5432, True)
    # published ports are the way between networks (Docker's rule)
    assert reach(sb, "a1", "10.89.0.1", 19090) and reach(sb, "a1", "fd89::1", 19090)
    # and the gateway: each container's own
    serve(sb, None, 9000)
    for key in "abc":
        reaches(sb, f"{key}1", ip["a"][:0] + (f"10.{89 + 'abcd'.index(key)}.0.1",), 9000, True)


@pytest.mark.parametrize("options", [{}, {"isolate": False}], ids=["default", "isolate-off"])
def test_a_network_without_the_options_is_untouched(sandbox, dockline_bin, options):
    """Inside a network without icc false nothing changes; between
    networks, isolation is on by default (Docker's), off with isolate
    false: then no isolation table at all."""
    sb = sandbox
    setup(sb, conflist(**options))
    for ns in ("db", "web"):
        sb.sh(f"ip netns add {ns}; ip -n {ns} link set lo up")
    db = addrs(ok(cni(sb, "add", "db", pod="db")))
    web = addrs(ok(cni(sb, "add", "web", pod="web")))
    serve(sb, "db", 5432)
    serve(sb, "web", 5432)
    reaches(sb, "web", db, 5432, True)
    reaches(sb, "db", web, 5432, True)
    assert ("dockline_isolation" in nft_ruleset(sb)) == (options == {})
    # ports are not isolated and the container routes are IPAM's only
    assert "isolated on" not in sb.sh("bridge -d link show").stdout
    assert "/25" not in sb.sh("ip -n web route").stdout


@pytest.mark.parametrize(
    "options,cap,what",
    [
        ({"icc": "false"}, {}, "invalid icc"),
        ({"icc": 0}, {}, "invalid icc"),
        ({"isolate": "yes"}, {}, "invalid isolate"),
        ({"isolate": False, "isolateExcept": ["dockline1"]}, {}, "isolateExcept needs isolate"),
        ({"isolate": True, "isolateExcept": ["bad name"]}, {}, "isolateExcept"),
        ({"isolate": True, "isolateExcept": "dockline1"}, {}, "isolateExcept"),
        ({"isolate": True, "isolateExcept": ["dockline0"]}, {}, "isolateExcept"),
        ({"icc": False, "isGateway": False}, {}, "icc false needs isGateway"),
        ({}, {"expose": "5432/tcp"}, "invalid expose"),
        ({}, {"expose": ["5432/icmp"]}, "expose protocol"),
        ({}, {"expose": ["0/tcp"]}, "invalid expose entry"),
        ({}, {"expose": ["65536"]}, "invalid expose entry"),
        ({}, {"expose": ["90-80/udp"]}, "invalid expose entry"),
        ({}, {"expose": ["80/tcp;drop"]}, "expose"),
        ({}, {"expose": [" 80/tcp"]}, "invalid expose entry"),
        ({}, {"expose": ["\uff18\uff10/tcp"]}, "invalid expose entry"),
        ({}, {"expose": [80]}, "invalid expose entry"),
        ({}, {"expose": ["80/tcp"] * 300}, "more than"),
    ],
)
def test_bad_options_are_code_7_and_touch_nothing(sandbox, dockline_bin, options, cap, what):
    sb = sandbox
    setup(sb, conflist(**options))
    sb.sh("ip netns add c1")
    run = cni(sb, "add", "c1", cap=cap)
    assert run.returncode != 0
    error = json.loads(run.stdout)
    assert error["code"] == 7 and what in error["msg"] + error.get("details", ""), error
    assert "dockline_isolation" not in nft_ruleset(sb)
    assert sb.sh("ip -br link show master dockline0", check=False).stdout.strip() == ""


def test_check_finds_a_missing_rule(trio):
    sb, ip = trio
    web_check = cni(sb, "check", "web", pod="web", cap={"links": ["db:dbapp"]})
    ok(web_check)
    sb.sh(
        "nft delete element inet dockline_isolation link4 "
        f"'{{ \"dockline0\" . {ip['web'][0]} . {ip['db'][0]} }}'"
    )
    run = cni(sb, "check", "web", pod="web", cap={"links": ["db:dbapp"]})
    assert run.returncode != 0 and json.loads(run.stdout)["code"] == 101
    sb.sh("nft delete table bridge dockline_isolation")
    run = cni(sb, "check", "other", pod="other")
    assert run.returncode != 0 and json.loads(run.stdout)["code"] == 101


def test_a_container_cannot_go_around_the_rules(trio):
    """other, unlinked, drops its routes via the gateway and talks to db
    directly on the link layer; then borrows web's addresses (web is linked
    to db).  Both are dropped."""
    sb, ip = trio
    sb.sh("ip -n other route flush proto boot; ip -n other -6 route flush proto boot")
    sb.sh("ip -n other route add default via 10.89.0.1")
    sb.sh("ip -n other -6 route add default via fd89::1")
    reaches(sb, "other", ip["db"], 5432, False)
    reaches(sb, "other", ip["web"], 5432, False)
    serve(sb, None, 9000)
    reaches(sb, "other", ("10.89.0.1", "fd89::1"), 9000, True)
    # other takes web's addresses: its port lets nothing out with them
    sb.sh(
        f"ip -n other addr flush dev eth0 scope global; "
        f"ip -n other addr add {ip['web'][0]}/24 dev eth0; "
        f"ip -n other addr add {ip['web'][1]}/64 dev eth0 nodad"
    )
    reaches(sb, "other", ip["db"], 5432, False)
    reaches(sb, "other", ("10.89.0.1", "fd89::1"), 9000, False)
    # web itself still reaches db
    reaches(sb, "web", ip["db"], 5432, True)


NFT_TRACE = "/var/lib/cni/nft-trace.log"


def test_add_and_del_run_no_nft_once_the_tables_exist(sandbox, dockline_bin):
    """After the first ADD wrote the tables, ADD, CHECK and DEL of linked
    containers change elements over netlink only: nft is wrapped to log."""
    sb = sandbox
    setup(sb, conflist(icc=False, ipMasq=False))
    for ns in ("db", "web"):
        sb.sh(f"ip netns add {ns}; ip -n {ns} link set lo up")
    ok(cni(sb, "add", "db", pod="db", cap={"expose": ["5432/tcp"]}))
    real = "/var/lib/cni/nft.real"
    sb.sh(f"touch {real} && mount --bind $(command -v nft) {real}")
    sb.run(
        ["sh", "-c", "cat > /var/lib/cni/nft && chmod 755 /var/lib/cni/nft"],
        input=f'#!/bin/sh\necho "nft $*" >> {NFT_TRACE}\nexec {real} "$@"\n',
        check=True,
    )
    sb.sh(f"mount --bind /var/lib/cni/nft $(command -v nft); : > {NFT_TRACE}")
    ok(cni(sb, "add", "web", pod="web", cap={"links": ["db:dbapp"]}))
    ok(cni(sb, "check", "web", pod="web", cap={"links": ["db:dbapp"]}))
    ok(cni(sb, "del", "web"))
    ok(cni(sb, "del", "db"))
    ran = sb.sh(f"cat {NFT_TRACE}").stdout.splitlines()
    # (bridge CHECK still lists the RA guard's chain: not isolation's)
    assert [line for line in ran if "dockline_guard" not in line] == []
    sb.sh("umount $(command -v nft)")
    assert elements(sb) == []


def test_check_on_an_isolated_network_finds_its_bridge_missing(sandbox, dockline_bin):
    sb = sandbox
    setup(sb, conflist(isolate=True, isolateExcept=["dockline9"]))
    sb.sh("ip netns add c1")
    ok(cni(sb, "add", "c1"))
    ok(cni(sb, "check", "c1"))
    sb.sh("nft flush set inet dockline_isolation allowed")
    run = cni(sb, "check", "c1")
    assert run.returncode != 0 and json.loads(run.stdout)["code"] == 101
    assert "allowed" in json.loads(run.stdout)["msg"]
    ok(cni(sb, "del", "c1"))


def test_del_on_an_unreadable_config_still_removes_everything(trio):
    sb, ip = trio
    conf = json.loads(sb.sh("cat /etc/cni/net.d/20.conflist").stdout)
    conf["plugins"][0]["mtu"] = "not a number"  # BridgeConfig refuses it
    setup(sb, conf)
    ok(cni(sb, "del", "web"))
    left = elements(sb)
    assert not any(name.startswith(("link", "dport", "port")) for name, _ in left)
    assert len([e for e in left if e[0] == "icc_ports"]) == 2  # db's and other's

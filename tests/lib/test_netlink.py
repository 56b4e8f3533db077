"""dockline.netlink against the real kernel, in a private sandbox.

The pytest process is not inside the sandbox, so every check runs a small
script with the plugins' interpreter flags (``-I -S`` plus an explicit
sys.path) inside it, then looks at the result with ip(8) / bridge(8) and
real traffic.
"""

import json
import subprocess
import textwrap

import pytest
from helpers.paths import REPO, VENV_PYTHON

LIB = REPO / "lib"
SITE = next((VENV_PYTHON.parent.parent / "lib").glob("python3*/site-packages"))
PATHS = f"""\
import errno, json, sys
sys.path[:0] = [{str(LIB)!r}, {str(SITE)!r}]
"""
PRELUDE = (
    PATHS
    + """\
from dockline.netlink import *
def out(value):
    print(json.dumps(value))
def link(l):
    return l._asdict() if l is not None else None
def fails(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except NetlinkError as e:
        return [e.errno, e.message, type(e).__name__]
    raise AssertionError("no NetlinkError")
"""
)


def py(sandbox, body: str, check: bool = True):
    """Run ``body`` (after PRELUDE) in the sandbox; its stdout is JSON."""
    proc = sandbox.run([str(VENV_PYTHON), "-I", "-S", "-c", PRELUDE + textwrap.dedent(body)])
    if check:
        assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def ip_json(sandbox, cmd: str, netns: str | None = None):
    prefix = f"ip netns exec {netns} " if netns else ""
    return json.loads(sandbox.sh(prefix + cmd).stdout or "[]")


def link_json(sandbox, name: str, netns: str | None = None) -> dict:
    return ip_json(sandbox, f"ip -d -j link show dev {name}", netns)[0]


# -- import ------------------------------------------------------------------


def test_import_skips_pyroute2_package_init_and_keeps_pyroute2_usable():
    script = PATHS + textwrap.dedent("""\
        import dockline.netlink
        dockline.netlink.NetlinkError, dockline.netlink.sysctl_get
        light = "pyroute2" in sys.modules
        from dockline.netlink import netns
        heavy = sorted(m for m in ("asyncio", "multiprocessing", "pyroute2.iproute",
                                   "pyroute2.config") if m in sys.modules)
        import pyroute2
        from pyroute2 import IPRoute
        import pyroute2.netlink
        print(json.dumps([light, heavy, IPRoute.__name__, pyroute2.netlink.nlmsg.__name__,
                          pyroute2.config.AF_BRIDGE]))
        """)
    proc = subprocess.run(
        [str(VENV_PYTHON), "-I", "-S", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [False, [], "IPRoute", "nlmsg", 7]


# -- bridges -----------------------------------------------------------------


def test_ensure_bridge_creates_up_bridge_and_is_idempotent(sandbox):
    first, second = py(
        sandbox,
        """
        with current_netns() as host:
            a = host.ensure_bridge("br0", mtu=1400)
            b = host.ensure_bridge("br0", mtu=9000)   # existing: mtu left alone
            out([link(a), link(b)])
        """,
    )
    assert first["kind"] == "bridge" and first["flags"] & 1 and first["mtu"] == 1400
    assert first["index"] == second["index"] and first["mac"] == second["mac"]
    shown = link_json(sandbox, "br0")
    assert shown["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in shown["flags"] and shown["mtu"] == 1400
    assert shown["address"] == first["mac"]
    assert len(ip_json(sandbox, "ip -j link show type bridge")) == 1


def test_ensure_bridge_concurrent_creators_agree(sandbox):
    script = PRELUDE + textwrap.dedent("""
        import time
        start = float(sys.argv[1])
        while time.time() < start:   # all start together
            pass
        with current_netns() as host:
            out(link(host.ensure_bridge("cni0")))
        """)
    procs = 6
    run = sandbox.sh(
        f"""
        start=$(( $(date +%s) + 1 ))
        for i in $(seq {procs}); do "$PY" -I -S -c "$SCRIPT" $start & done
        wait
        """,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PY": str(VENV_PYTHON), "SCRIPT": script},
    )
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) == procs, run.stderr
    assert len({(r["index"], r["mac"]) for r in results}) == 1
    assert len(ip_json(sandbox, "ip -j link show type bridge")) == 1
    assert "UP" in link_json(sandbox, "cni0")["flags"]


def test_bridge_mac_is_pinned_created_or_adopted(sandbox):
    # br1 exists already (down, kernel-random MAC): ensure_bridge adopts it.
    sandbox.sh("ip link add br1 type bridge")
    macs = py(
        sandbox,
        """
        with current_netns() as host:
            out([host.ensure_bridge(name).mac for name in ("br0", "br1")])
        """,
    )
    # Ports with the lowest possible unicast MAC: an unpinned bridge would take it.
    sandbox.sh("""
        ip link add p0 address 00:00:00:00:00:01 type veth peer name q0
        ip link add p1 address 00:00:00:00:00:02 type veth peer name q1
        ip link set p0 master br0 up; ip link set p1 master br1 up
        """)
    assert [link_json(sandbox, name)["address"] for name in ("br0", "br1")] == macs
    assert "UP" in link_json(sandbox, "br1")["flags"]


def test_ensure_bridge_refuses_non_bridge_of_that_name(sandbox):
    sandbox.sh("ip link add br0 type veth peer name br0p")
    err = py(
        sandbox,
        """
        with current_netns() as host:
            out(fails(host.ensure_bridge, "br0"))
        """,
    )
    assert err[0] == 17 and "not a bridge" in err[1] and "veth" in err[1]
    assert link_json(sandbox, "br0")["linkinfo"]["info_kind"] == "veth"


# -- veth pairs and links ------------------------------------------------------


def test_veth_pair_into_container_netns(sandbox):
    sandbox.sh("ip netns add c1")
    res = py(
        sandbox,
        """
        with current_netns() as host, open_netns("/run/netns/c1") as ns:
            eth0, veth = ns.add_veth("eth0", peer_ns=host, mtu=1400, mac="02:00:00:00:00:aa",
                                     peer_up=True)
            again = fails(ns.add_veth, "eth0", peer_ns=host)
            named = fails(ns.add_veth, "eth1", peer_ns=host, peer_name=veth.name)
            out({"eth0": link(eth0), "veth": link(veth), "peer": host.veth_peer_index(veth),
                 "peer2": ns.veth_peer_index("eth0"), "again": again, "named": named,
                 "links": [l.name for l in ns.list_links()]})
        """,
    )
    eth0, veth = res["eth0"], res["veth"]
    assert eth0["name"] == "eth0" and eth0["kind"] == "veth" and eth0["mtu"] == 1400
    assert eth0["mac"] == "02:00:00:00:00:aa"
    assert veth["name"].startswith("veth") and len(veth["name"]) == 12
    int(veth["name"][4:], 16)
    assert res["peer"] == eth0["index"] and res["peer2"] == veth["index"]
    assert res["again"][0] == 17 and "eth0" in res["again"][1]
    assert res["named"][0] == 17
    assert sorted(res["links"]) == ["eth0", "lo"]

    shown = link_json(sandbox, "eth0", "c1")
    assert shown["linkinfo"]["info_kind"] == "veth" and shown["mtu"] == 1400
    assert shown["address"] == "02:00:00:00:00:aa" and "UP" not in shown["flags"]
    host_end = link_json(sandbox, veth["name"])
    assert "UP" in host_end["flags"] and host_end["mtu"] == 1400
    assert host_end["ifindex"] == veth["index"]
    assert sandbox.sh("ip netns exec c1 ip link show eth1", check=False).returncode != 0


def test_link_settings_master_and_delete(sandbox):
    res = py(
        sandbox,
        """
        with current_netns() as host:
            br = host.ensure_bridge("br0")
            a, b = host.add_veth("va", peer_name="vb")
            host.set_link(a, mtu=1300, mac="02:00:00:00:00:01", promisc=True, up=True)
            host.set_master("va", br)
            before = link(host.get_link("va"))
            host.set_link("vb", name="vb2")
            host.link_down(a)
            down = host.get_link(a.index).up
            host.set_master(a, 0)
            nomaster = host.get_link("va").master
            host.delete_link("va")
            host.delete_link("va")                        # gone: tolerated
            strict = fails(host.delete_link, "va", missing_ok=False)
            out({"br": br.index, "before": before, "down": down, "nomaster": nomaster,
                 "strict": strict, "va": host.get_link("va"), "vb2": host.get_link("vb2")})
        """,
    )
    before = res["before"]
    assert before["mtu"] == 1300 and before["mac"] == "02:00:00:00:00:01"
    assert before["master"] == res["br"] and before["flags"] & 0x100 and before["flags"] & 1
    assert res["down"] is False and res["nomaster"] is None
    assert res["strict"][0] == 19 and res["va"] is None and res["vb2"] is None


def test_bridge_port_flags(sandbox):
    py(
        sandbox,
        """
        with current_netns() as host:
            br = host.ensure_bridge("br0")
            a, b = host.add_veth("va", peer_name="vb")
            host.set_master(a, br)
            host.set_bridge_port(a, hairpin=True, isolated=True, learning=False)
        """,
    )
    port = ip_json(sandbox, "bridge -d -j link show dev va")[0]
    assert port["hairpin"] is True and port["isolated"] is True and port["learning"] is False
    py(
        sandbox,
        """
        with current_netns() as host:
            host.set_bridge_port("va", hairpin=False, learning=True)
        """,
    )
    port = ip_json(sandbox, "bridge -d -j link show dev va")[0]
    assert port["hairpin"] is False and port["isolated"] is True and port["learning"] is True


def test_bridge_vlans(sandbox):
    res = py(
        sandbox,
        """
        with current_netns() as host:
            try:
                br = host.ensure_bridge("br0", vlan_filtering=True)
            except NetlinkError as e:
                if e.errno != errno.EOPNOTSUPP:
                    raise
                out("unsupported")
                sys.exit(0)
            a, b = host.add_veth("va", peer_name="vb")
            host.set_master(a, br)
            host.bridge_vlan_add(a, 10, pvid=True, untagged=True)
            host.bridge_vlan_add(a, [20, 30])
            host.bridge_vlan_del(a, 1)
            host.bridge_vlan_add(br, 10, bridge_self=True)
            out(host.bridge_vlans(a))
        """,
    )
    if res == "unsupported":
        pytest.skip("kernel without CONFIG_BRIDGE_VLAN_FILTERING (EOPNOTSUPP, as for ip link)")
    assert sorted(res) == [[10, 6], [20, 0], [30, 0]]
    shown = ip_json(sandbox, "bridge -j vlan show dev va")
    vlans = {v["vlan"]: v.get("flags", []) for v in shown[0]["vlans"]}
    assert set(vlans) == {10, 20, 30}
    assert "PVID" in vlans[10] and "Egress Untagged" in vlans[10]


# -- addresses and routes ----------------------------------------------------------


def test_addresses_v4_v6(sandbox):
    res = py(
        sandbox,
        """
        with current_netns() as host:
            a, _ = host.add_veth("va", peer_name="vb")
            host.add_address(a, "10.1.2.3/24")
            host.add_address("va", "10.9.9.9/32")
            host.add_address(a, "fd00::3/64", nodad=True)
            dup = fails(host.add_address, a, "10.1.2.3/24")
            host.add_address(a, "10.1.2.3/24", exist_ok=True)
            bad = fails(host.add_address, a, "10.1.2.300/24")
            v4 = [(x.cidr, x.broadcast) for x in host.list_addresses(a, family=2)]
            v6 = [(x.cidr, x.flags & 0x02) for x in host.list_addresses("va", family=10)]
            host.del_address(a, "10.9.9.9/32")
            gone = fails(host.del_address, a, "10.9.9.9/32")
            host.del_address(a, "10.9.9.9/32", missing_ok=True)
            after = sorted(x.cidr for x in host.list_addresses(a))
            out({"v4": v4, "v6": v6, "dup": dup, "bad": bad, "gone": gone, "after": after})
        """,
    )
    assert sorted(res["v4"]) == [["10.1.2.3/24", "10.1.2.255"], ["10.9.9.9/32", None]]
    assert ["fd00::3/64", 2] in res["v6"]
    assert res["dup"][0] == 17 and "10.1.2.3/24" in res["dup"][1]
    assert res["bad"][0] == 22
    assert res["gone"][0] == 99
    assert "10.9.9.9/32" not in res["after"] and "10.1.2.3/24" in res["after"]
    addrs = ip_json(sandbox, "ip -j addr show dev va")[0]["addr_info"]
    v4 = [a for a in addrs if a["family"] == "inet"]
    assert [(a["local"], a["prefixlen"], a.get("broadcast")) for a in v4] == [
        ("10.1.2.3", 24, "10.1.2.255")
    ]
    v6 = next(a for a in addrs if a["local"] == "fd00::3")
    assert v6.get("nodad") is True and not v6.get("tentative")


def test_routes(sandbox):
    res = py(
        sandbox,
        """
        with current_netns() as host:
            a, _ = host.add_veth("va", peer_name="vb", up=True, peer_up=True)
            host.add_address(a, "10.1.2.3/24")
            host.add_address(a, "fd00::3/64", nodad=True)
            host.add_route("default", gateway="10.1.2.1", link=a)
            host.add_route("10.50.0.0/16", gateway="10.1.2.1", metric=100, mtu=1300, advmss=1200)
            host.add_route("10.60.0.0/24", link="va")               # scope link
            host.add_route("10.70.0.0/24", link=a, table=100, src="10.1.2.3")
            host.add_route("fd01::/64", gateway="fd00::1", link=a, metric=5)
            dup = fails(host.add_route, "default", gateway="10.1.2.1", link=a)
            host.add_route("default", gateway="10.1.2.1", link=a, exist_ok=True)
            host.add_route("default", gateway="10.1.2.2", link=a, replace=True)
            unreach = fails(host.add_route, "10.80.0.0/24", gateway="192.168.77.1")
            badprefix = fails(host.add_route, "10.90.0.1/24", link=a)
            main = {r.dst: r._asdict() for r in host.list_routes(a)}
            t100 = [r.dst for r in host.list_routes(table=100)]
            v6 = [r.dst for r in host.list_routes(family=10)]
            host.del_route("10.60.0.0/24", link=a)
            host.del_route("10.70.0.0/24", table=100)
            missing = fails(host.del_route, "10.60.0.0/24")
            host.del_route("10.60.0.0/24", missing_ok=True)
            left = sorted(r.dst for r in host.list_routes(a, family=2))
            out({"main": main, "t100": t100, "v6": v6, "dup": dup, "unreach": unreach,
                 "badprefix": badprefix, "missing": missing, "left": left})
        """,
    )
    main = res["main"]
    assert main["0.0.0.0/0"]["gateway"] == "10.1.2.2"
    r = main["10.50.0.0/16"]
    assert (r["gateway"], r["metric"], r["mtu"], r["advmss"]) == ("10.1.2.1", 100, 1300, 1200)
    assert main["10.60.0.0/24"]["scope"] == 253 and main["10.60.0.0/24"]["gateway"] is None
    assert res["t100"] == ["10.70.0.0/24"] and "fd01::/64" in res["v6"]
    assert res["dup"][0] == 17 and res["unreach"][0] == 101  # ENETUNREACH
    assert res["badprefix"][0] == 22 and "prefix" in res["badprefix"][1].lower()
    assert res["missing"][0] == 3
    assert res["left"] == ["0.0.0.0/0", "10.1.2.0/24", "10.50.0.0/16"]
    shown = sandbox.sh("ip route show; ip route show table 100; ip -6 route show").stdout
    assert "default via 10.1.2.2 dev va" in shown
    assert "10.50.0.0/16 via 10.1.2.1 dev va metric 100 mtu 1300 advmss 1200" in shown
    assert "fd01::/64 via fd00::1 dev va metric 5" in shown


def test_batch_runs_in_order_and_reports_first_failure(sandbox):
    res = py(
        sandbox,
        """
        with current_netns() as host:
            a, _ = host.add_veth("va", peer_name="vb", peer_up=True)
            try:
                with host.batch() as b:
                    b.add_address(a, "10.1.2.3/24")
                    b.link_up(a)
                    b.add_route("10.80.0.0/24", gateway="192.168.77.1")   # fails: unreachable
                    b.add_route("default", gateway="10.1.2.1")           # needs the two above
                err = None
            except NetlinkError as e:
                err = [e.errno, e.message]
            try:
                with host.batch() as b:
                    b.add_address(a, "10.3.3.3/24")
                    raise KeyError("abandon")
            except KeyError:
                pass
            out({"err": err, "routes": [r.dst for r in host.list_routes(a)],
                 "up": host.get_link(a).up,
                 "addrs": sorted(x.cidr for x in host.list_addresses(a, family=2))})
        """,
    )
    assert res["err"][0] == 101 and "192.168.77.1" in res["err"][1]
    assert res["up"] and "0.0.0.0/0" in res["routes"]
    assert res["addrs"] == ["10.1.2.3/24"]  # the abandoned batch sent nothing


# -- namespaces and sysctls ----------------------------------------------------------


def test_netns_paths_that_are_not_usable(sandbox):
    sandbox.sh("ip netns add c1; touch /run/netns/stale")
    res = py(
        sandbox,
        """
        out({p: fails(open_netns, p) for p in (
            "/run/netns/missing", "/run/netns/stale", "/proc/self/ns/uts",
            "/proc/self/ns/net", "/proc/999999999/ns/net", "")}
            | {"check_current": fails(check_netns, "/proc/self/ns/net"),
               "check_missing": fails(check_netns, "/run/netns/missing"),
               "check_ok": check_netns("/run/netns/c1"),
               "allow_current": open_netns("/proc/self/ns/net", allow_current=True).path})
        """,
    )
    assert res["/run/netns/missing"] == [
        2,
        "netns '/run/netns/missing' does not exist",
        "NetnsError",
    ]
    assert res["/run/netns/stale"][0] == 22 and "not a namespace" in res["/run/netns/stale"][1]
    assert "not a network namespace" in res["/proc/self/ns/uts"][1]
    assert "current network namespace" in res["/proc/self/ns/net"][1]
    assert res["/proc/999999999/ns/net"][0] == 2 and res[""][0] == 2
    assert res["check_current"][2] == "NetnsError" and res["check_missing"][0] == 2
    assert res["check_ok"] is None and res["allow_current"] == "/proc/self/ns/net"


def test_sysctls_in_current_and_target_netns(sandbox):
    sandbox.sh("ip netns add c1")
    res = py(
        sandbox,
        """
        with current_netns() as host, open_netns("/run/netns/c1") as ns:
            ns.add_veth("eth0.5", peer_ns=host)
            ns.sysctl_set("net.ipv4.ip_forward", 1)
            ns.sysctl_set("net/ipv4/conf/eth0.5/arp_notify", "1")
            host.sysctl_set("/proc/sys/net/ipv4/conf/all/arp_ignore", 2)
            with ns.entered():
                inside = sysctl_get("net.ipv4.ip_forward")
            out({"ns": ns.sysctl_get("net.ipv4.ip_forward"),
                 "host": sysctl_get("net.ipv4.ip_forward"), "inside": inside,
                 "iface": ns.sysctl_get("net/ipv4/conf/eth0.5/arp_notify"),
                 "missing": fails(ns.sysctl_get, "net.ipv4.conf.nope.arp_notify"),
                 "escape": fails(sysctl_get, "../../etc/passwd")})
        """,
    )
    assert res["ns"] == "1" and res["inside"] == "1" and res["host"] == "0"
    assert res["iface"] == "1" and res["missing"][0] == 2 and res["escape"][0] == 22
    read = "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/arp_ignore"
    assert sandbox.sh(f"ip netns exec c1 sh -c '{read}'").stdout.split() == ["1", "0"]
    assert sandbox.sh(read).stdout.split() == ["0", "2"]


def test_device_settings_over_netlink_are_the_sysctls(sandbox):
    """netlink/devconf.py: an IPv4 setting written with RTM_SETLINK is what
    /proc/sys shows; IPv6 settings and forwarding read over netlink are what
    /proc/sys holds, in the netns asked and no other."""
    sandbox.sh("ip netns add c1")
    res = py(
        sandbox,
        """
        with current_netns() as host, open_netns("/run/netns/c1") as ns:
            eth0, veth = ns.add_veth("eth0", peer_ns=host)
            with ns.batch() as b:
                b.set_ipv4_conf(eth0, arp_notify=1)
            ns.sysctl_set("net/ipv6/conf/eth0/accept_ra", 0)
            ns.sysctl_set("net/ipv6/conf/eth0/accept_dad", 2)
            ns.sysctl_set("net/ipv6/conf/all/forwarding", 1)
            host.sysctl_set("net/ipv4/ip_forward", 1)
            out({"arp_notify": ns.sysctl_get("net/ipv4/conf/eth0/arp_notify"),
                 "host_arp_notify": host.sysctl_get(f"net/ipv4/conf/{veth.name}/arp_notify"),
                 "ns6": ns.ipv6_conf(eth0), "host6": host.ipv6_conf(veth),
                 "fwd": [ns.forwarding(2), ns.forwarding(10),
                         host.forwarding(2), host.forwarding(10)],
                 "gone": fails(ns.set_ipv4_conf, 999, arp_notify=1)})
        """,
    )
    assert res["arp_notify"] == "1" and res["host_arp_notify"] == "0"
    assert res["ns6"]["accept_ra"] == 0 and res["ns6"]["accept_dad"] == 2
    assert res["ns6"]["disable_ipv6"] == 0
    assert res["host6"]["accept_ra"] != 0 and res["host6"]["accept_dad"] == 1
    assert res["fwd"] == [0, 1, 1, 0]
    assert res["gone"][0] == 19  # ENODEV


# -- the whole thing, with traffic ----------------------------------------------------


def test_two_containers_talk_through_the_bridge(sandbox):
    sandbox.sh("ip netns add c1; ip netns add c2")
    py(
        sandbox,
        """
        with current_netns() as host:
            br = host.ensure_bridge("cni0", mtu=1500)
            host.add_address(br, "10.22.0.1/24")
            for n, name in ((2, "c1"), (3, "c2")):
                with open_netns("/run/netns/" + name) as ns:
                    eth0, veth = ns.add_veth("eth0", peer_ns=host, mtu=1500, peer_up=True)
                    with host.batch() as b:
                        b.set_master(veth, br)
                        b.set_bridge_port(veth, hairpin=True)
                    with ns.batch() as b:
                        b.add_address(eth0, f"10.22.0.{n}/24")
                        b.link_up(eth0)
                        b.link_up("lo")
                        b.add_route("default", gateway="10.22.0.1", link=eth0)
                    ns.sysctl_set("net.ipv4.conf.eth0.arp_notify", 1)
        """,
    )
    server = textwrap.dedent("""
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 7000))
        s.listen()
        c, peer = s.accept()
        c.sendall(c.recv(64).upper() + peer[0].encode())
        """)
    client = textwrap.dedent("""
        import socket, sys, time
        for attempt in range(50):            # until the server listens
            try:
                c = socket.create_connection((sys.argv[1], 7000), timeout=5)
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        c.sendall(b"hello from ")
        print(c.recv(64).decode())
        """)
    run = sandbox.sh(
        """
        ip netns exec c2 "$PY" -I -S -c "$SERVER" &
        ip netns exec c1 "$PY" -I -S -c "$CLIENT" 10.22.0.3
        wait
        "$PY" -I -S -c "$SERVER" &
        ip netns exec c2 "$PY" -I -S -c "$CLIENT" 10.22.0.1
        wait
        """,
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PY": str(VENV_PYTHON),
            "SERVER": server,
            "CLIENT": client,
        },
    )
    # container to container, and container to the host side of the bridge
    assert run.stdout.split("\n")[:2] == ["HELLO FROM 10.22.0.2", "HELLO FROM 10.22.0.3"]

"""portmap chained after bridge, with real traffic from everywhere a user
expects a published port to answer: another machine (a namespace routed to
the host), the host over its own address and over 127.0.0.1, another
container via the host's address, and the container itself (hairpin).
The same matrix runs against the reference plugins, both dockline
backends, TCP and UDP, IPv4 and IPv6."""

import json

import pytest
from helpers.cni import call_plugin
from helpers.portmap import (
    HOST4,
    HOST6,
    IMPLS,
    MAPPINGS,
    cni,
    setup_network,
    start_servers,
    tcp_probe,
    udp_probe,
)


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_published_port_reachable_from_everywhere(sandbox, dockline_bin, impl):
    cni_path = setup_network(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add web; ip netns add db")
    assert cni(sandbox, cni_path, "add", "web", MAPPINGS).returncode == 0
    assert cni(sandbox, cni_path, "add", "db").returncode == 0
    start_servers(sandbox)
    seen = {
        "another machine (v4)": tcp_probe(sandbox, "ext", HOST4),
        "another machine (v6)": tcp_probe(sandbox, "ext", HOST6),
        "host, own address": tcp_probe(sandbox, None, HOST4),
        "host, 127.0.0.1": tcp_probe(sandbox, None, "127.0.0.1"),
        "another container via host address": tcp_probe(sandbox, "db", HOST4),
        "container itself via host address (hairpin)": tcp_probe(sandbox, "web", HOST4),
        "udp from another machine (v4)": udp_probe(sandbox, "ext", HOST4),
        "udp from another machine (v6)": udp_probe(sandbox, "ext", HOST6),
    }
    expected = {k: ("pong" if k.startswith("udp") else "web") for k in seen}
    assert seen == expected


@pytest.mark.parametrize("impl", ["dockline-iptables", "dockline-nftables"])
def test_del_without_mappings_removes_every_rule(sandbox, dockline_bin, impl):
    cni_path = setup_network(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add web")
    assert cni(sandbox, cni_path, "add", "web", MAPPINGS).returncode == 0
    rules = sandbox.sh("iptables-save -t nat; ip6tables-save -t nat; nft list ruleset").stdout
    assert "8080" in rules and "5353" in rules
    # cnitool without CAP_ARGS: the reference portmap would leave its rules
    run = cni(sandbox, cni_path, "del", "web", cap_args={})
    assert run.returncode == 0, run.stdout + run.stderr
    rules = sandbox.sh("iptables-save -t nat; ip6tables-save -t nat; nft list ruleset").stdout
    assert "8080" not in rules and "5353" not in rules and "dl-" not in rules
    assert cni(sandbox, cni_path, "del", "web").returncode == 0  # again: still fine


@pytest.mark.parametrize("impl", ["dockline-iptables", "dockline-nftables"])
def test_same_host_port_twice_is_refused_and_leaves_nothing(sandbox, dockline_bin, impl):
    cni_path = setup_network(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add web; ip netns add web2")
    assert cni(sandbox, cni_path, "add", "web", MAPPINGS).returncode == 0
    before = sandbox.sh("iptables-save -t nat | grep -v '^#'; nft list ruleset").stdout
    run = cni(
        sandbox,
        cni_path,
        "add",
        "web2",
        {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
    )
    assert run.returncode != 0
    err = json.loads(run.stdout)
    assert err["code"] == 100 and "host port" in err["msg"]
    after = sandbox.sh("iptables-save -t nat | grep -v '^#'; nft list ruleset").stdout
    # portmap left nothing for web2 (the bridge's part is the runtime's
    # DEL to undo, as for any failed chain)
    assert "10.89.0.3:80" not in after
    assert before.count("dnat") == after.count("dnat") and before.count("DNAT") == after.count(
        "DNAT"
    )
    # the runtime DELs the failed ADD: the first container keeps its port
    cni(sandbox, cni_path, "del", "web2")
    start_servers(sandbox)
    assert tcp_probe(sandbox, "ext", HOST4) == "web"
    # another host IP or protocol is no conflict
    run = cni(
        sandbox,
        cni_path,
        "add",
        "web2",
        {
            "portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "udp"},
                {"hostPort": 8080, "containerPort": 80, "hostIP": HOST4},
            ]
        },
    )
    assert run.returncode == 0, run.stdout


@pytest.mark.parametrize("impl", ["dockline-iptables", "dockline-nftables"])
def test_host_ip_restricts_to_one_address(sandbox, dockline_bin, impl):
    cni_path = setup_network(sandbox, impl, dockline_bin)
    sandbox.sh(
        "ip netns add web; ip addr add 198.51.100.1/24 dev ext0;"
        "ip -n ext addr add 198.51.100.2/24 dev eth0"
    )
    assert (
        cni(
            sandbox,
            cni_path,
            "add",
            "web",
            {"portMappings": [{"hostPort": 8080, "containerPort": 80, "hostIP": "198.51.100.1"}]},
        ).returncode
        == 0
    )
    start_servers(sandbox)
    assert tcp_probe(sandbox, "ext", "198.51.100.1") == "web"
    assert tcp_probe(sandbox, "ext", HOST4) != "web"


@pytest.mark.parametrize("impl", ["dockline-iptables", "dockline-nftables"])
def test_check_and_gc(sandbox, dockline_bin, impl):
    cni_path = setup_network(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add web; ip netns add gone")
    assert cni(sandbox, cni_path, "add", "web", MAPPINGS).returncode == 0
    assert (
        cni(
            sandbox,
            cni_path,
            "add",
            "gone",
            {"portMappings": [{"hostPort": 9090, "containerPort": 80}]},
        ).returncode
        == 0
    )
    assert cni(sandbox, cni_path, "check", "web", MAPPINGS).returncode == 0
    # GC with only "web" valid: the scripts/cni runtime lists its cache
    sandbox.sh("rm /var/lib/cni/results/dockline-gone-eth0")
    run = cni(sandbox, cni_path, "gc", "web")
    assert run.returncode == 0, run.stdout + run.stderr
    rules = sandbox.sh("iptables-save -t nat; ip6tables-save -t nat; nft list ruleset").stdout
    assert "9090" not in rules and "8080" in rules
    # remove web's rules behind the plugin's back: CHECK notices
    if impl.endswith("nftables"):
        sandbox.sh("nft flush map inet dockline_portmap ports")
    else:
        sandbox.sh("iptables -t nat -F DOCKLINE-HOSTPORTS")
    run = cni(sandbox, cni_path, "check", "web", MAPPINGS)
    assert run.returncode != 0 and json.loads(run.stdout)["code"] == 101


def test_no_mappings_is_a_no_op(sandbox, dockline_bin):
    cni_path = setup_network(sandbox, "dockline-nftables", dockline_bin)
    sandbox.sh("ip netns add web")
    run = cni(sandbox, cni_path, "add", "web")
    assert run.returncode == 0
    result = json.loads(run.stdout)
    assert [ip["address"] for ip in result["ips"]] == ["10.89.0.2/24", "fd89::2/64"]
    assert "dockline_portmap" not in sandbox.sh("nft list tables").stdout


def test_chained_only(sandbox, dockline_bin):
    conf = {
        "cniVersion": "1.0.0",
        "name": "n",
        "type": "portmap",
        "runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 1}]},
    }
    run = call_plugin(sandbox, dockline_bin / "portmap", "ADD", conf)
    assert run.code != 0 and run.json["code"] == 7 and "chained" in run.json["msg"]


@pytest.mark.parametrize(
    "bad",
    [
        {"hostPort": 0, "containerPort": 80},
        {"hostPort": 70000, "containerPort": 80},
        {"hostPort": 80, "containerPort": 80, "protocol": "icmp"},
        {"hostPort": 80, "containerPort": 80, "hostIP": "nope"},
        "80:80",
    ],
)
def test_bad_mappings_are_code_7(sandbox, dockline_bin, bad):
    conf = {
        "cniVersion": "1.0.0",
        "name": "n",
        "type": "portmap",
        "runtimeConfig": {"portMappings": [bad]},
        "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]},
    }
    run = call_plugin(sandbox, dockline_bin / "portmap", "ADD", conf)
    assert run.code != 0 and run.json["code"] == 7


@pytest.mark.parametrize("impl", ["dockline-iptables", "dockline-nftables"])
def test_udp_conntrack_entries_flushed_on_del(sandbox, dockline_bin, impl):
    """A UDP flow to a published port leaves a conntrack entry that would keep
    steering packets to the old container; DEL drops it (the reference only
    does so on ADD)."""
    cni_path = setup_network(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add web")
    assert cni(sandbox, cni_path, "add", "web", MAPPINGS).returncode == 0
    start_servers(sandbox)
    assert udp_probe(sandbox, "ext", HOST4) == "pong"
    entries = sandbox.sh("conntrack -L -p udp --orig-port-dst 5353 2>/dev/null", check=False).stdout
    assert "dport=5353" in entries
    assert cni(sandbox, cni_path, "del", "web").returncode == 0
    entries = sandbox.sh("conntrack -L -p udp --orig-port-dst 5353 2>/dev/null", check=False).stdout
    assert "dport=5353" not in entries


@pytest.mark.parametrize("impl", ["dockline-iptables", "dockline-nftables"])
def test_concurrent_adds_race_for_one_host_port(sandbox, dockline_bin, impl):
    """Twelve containers added at once: eight with ports of their own, four
    racing for port 7000. Every own port is published, and exactly one of
    the racers gets 7000."""
    from concurrent.futures import ThreadPoolExecutor

    cni_path = setup_network(sandbox, impl, dockline_bin)
    names = [f"c{i}" for i in range(12)]
    sandbox.sh(" && ".join(f"ip netns add {n}" for n in names))

    def one(i):
        port = 7000 if i >= 8 else 7100 + i
        return cni(
            sandbox,
            cni_path,
            "add",
            names[i],
            {"portMappings": [{"hostPort": port, "containerPort": 80}]},
        )

    with ThreadPoolExecutor(max_workers=12) as pool:
        runs = list(pool.map(one, range(12)))
    assert all(r.returncode == 0 for r in runs[:8]), [r.stdout for r in runs[:8] if r.returncode]
    racers = [r for r in runs[8:] if r.returncode == 0]
    assert len(racers) == 1
    for loser in (r for r in runs[8:] if r.returncode != 0):
        assert json.loads(loser.stdout)["code"] == 100
    rules = sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    for i in range(8):
        assert str(7100 + i) in rules
    winner = [ip["address"].split("/")[0] for ip in json.loads(racers[0].stdout)["ips"]]
    # iptables: a DNAT rule per family; nftables: an element of the DNAT
    # map per family (host proto . port : container address . port)
    dests = {f"{winner[0]}:80", f"[{winner[1]}]:80", f"{winner[0]} . 80", f"{winner[1]} . 80"}
    to_7000 = [
        line
        for line in rules.splitlines()
        if "7000" in line
        and ("DNAT" in line or "dnat" in line or "tcp . 7000" in line)
        and "continue" not in line  # the claim, not the DNAT
    ]
    assert to_7000 and all(any(d in line for d in dests) for line in to_7000), to_7000

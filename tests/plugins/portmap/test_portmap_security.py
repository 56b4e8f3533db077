"""portmap against hostile and odd input, with the real firewall and real
traffic: nothing from a request reaches a firewall script unchecked (the
firewall is byte-for-byte unchanged after a refused ADD), containerd's
Go-spelled port mappings work, DEL cleans up whatever it is given, and
route_localnet no longer opens the host's loopback services to containers."""

import json

import pytest
from helpers.cni import call_plugin
from helpers.paths import VENV_PYTHON
from helpers.portmap import HOST4, cni, setup_network, start_servers, tcp_probe

BACKENDS = ["dockline-iptables", "dockline-nftables"]
PREV = {
    "cniVersion": "1.1.0",
    "interfaces": [
        {"name": "dockline0"},
        {"name": "dlx"},
        {"name": "eth0", "sandbox": "/run/netns/x"},
    ],
    "ips": [{"address": "10.89.0.9/24", "interface": 2}, {"address": "fd89::9/64", "interface": 2}],
}


def firewall(sb) -> str:
    return sb.sh(
        "iptables-save | grep -v '^#'; ip6tables-save | grep -v '^#'; nft list ruleset"
    ).stdout


def portmap_conf(backend, **extra):
    conf = {
        "cniVersion": "1.1.0",
        "name": "dockline",
        "type": "portmap",
        "backend": backend,
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        "prevResult": PREV,
    }
    conf.update(extra)
    return conf


HOSTILE = {
    "hostIP with a zone id and a newline": {
        "runtimeConfig": {
            "portMappings": [
                {"hostPort": 8080, "containerPort": 80, "hostIP": "fd00::1%x\n-A INPUT -j ACCEPT"}
            ]
        }
    },
    "hostIP with a zone id": {
        "runtimeConfig": {
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "hostIP": "fe80::1%eth0"}]
        }
    },
    "prevResult address with a zone id": {
        "prevResult": {**PREV, "ips": [{"address": "fd89::9%x\nflush ruleset/64", "interface": 2}]}
    },
    "prevResult interface name with a backslash": {
        "prevResult": {
            **PREV,
            "interfaces": [{"name": "br\\"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
        }
    },
    "iptables condition with a newline": {"conditionsV4": ["-s 10.0.0.0/8\n-A INPUT -j ACCEPT"]},
    "iptables condition with a target": {"conditionsV4": ["-s", "10.0.0.0/8", "-j", "ACCEPT"]},
    "iptables condition with a quote": {"conditionsV4": ['-m comment --comment "x']},
    "nft condition with a semicolon": {"conditionsV4": ["ip saddr 10.0.0.0/8; flush ruleset"]},
    "nft condition with a brace": {"conditionsV4": ["ip saddr 10.0.0.0/8 } ; flush ruleset"]},
    "nft condition with a verdict": {"conditionsV4": ["ip saddr 10.0.0.0/8 accept"]},
    "nft condition with a comment sign": {"conditionsV4": ["ip saddr 10.0.0.0/8 # x"]},
    "externalSetMarkChain with a newline": {"externalSetMarkChain": "X\n-A INPUT -j ACCEPT"},
    "externalSetMarkChain too long": {"externalSetMarkChain": "X" * 29},
    "mark bit out of range": {"markMasqBit": 32},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_hostile_input_is_code_7_and_changes_nothing(sandbox, dockline_bin, backend, case):
    extra = dict(HOSTILE[case])
    if "externalSetMarkChain" in extra or extra.get("conditionsV4", [""])[0].startswith("-"):
        backend = "iptables"  # only meaningful there
    elif "conditionsV4" in extra:
        backend = "nftables"
    conf = portmap_conf(backend, **extra)
    before = firewall(sandbox)
    run = call_plugin(sandbox, dockline_bin / "portmap", "ADD", conf)
    assert run.code != 0 and run.json["code"] == 7, run.stdout
    assert firewall(sandbox) == before


@pytest.mark.parametrize("value", [80.0, "80", True, 1e3, 2**64, -80, None, [80], {"x": 80}])
def test_port_numbers_are_decoded_as_go_does(sandbox, dockline_bin, value):
    """Go decodes only integer literals into an int field."""
    conf = portmap_conf(
        "nftables", runtimeConfig={"portMappings": [{"HostPort": value, "ContainerPort": 80}]}
    )
    run = call_plugin(sandbox, dockline_bin / "portmap", "ADD", conf)
    assert run.code != 0 and run.json["code"] == 7, run.stdout
    assert "dockline_portmap" not in sandbox.sh("nft list tables").stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_containerd_spelling_publishes_and_del_cleans(sandbox, dockline_bin, backend):
    """containerd 1.6 (go-cni) sends Go field names, an empty HostIP and
    whatever case the user gave the protocol."""
    cni_path = setup_network(sandbox, backend, dockline_bin)
    sandbox.sh("ip netns add web")
    mappings = {
        "portMappings": [
            {"HostPort": 18080, "ContainerPort": 80, "Protocol": "TCP", "HostIP": ""},
            {"hostport": 15353, "containerport": 53, "protocol": "Udp", "hostIP": ""},
        ]
    }
    run = cni(sandbox, cni_path, "add", "web", mappings)
    assert run.returncode == 0, run.stdout + run.stderr
    start_servers(sandbox)
    assert tcp_probe(sandbox, "ext", HOST4, port=18080) == "web"
    assert tcp_probe(sandbox, None, "127.0.0.1", port=18080) == "web"
    rules = firewall(sandbox)
    assert "18080" in rules and "15353" in rules
    assert cni(sandbox, cni_path, "del", "web", mappings).returncode == 0
    rules = firewall(sandbox)
    assert "18080" not in rules and "15353" not in rules and "dl-" not in rules


GARBAGE = {
    "portMappings not a list": {"runtimeConfig": {"portMappings": "8080:80"}},
    "portMappings entries": {"runtimeConfig": {"portMappings": [None, 7, {"HostPort": "x"}]}},
    "runtimeConfig not an object": {"runtimeConfig": [1, 2]},
    "prevResult not an object": {"prevResult": "garbage"},
    "prevResult addresses": {
        "prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "fd00::1%x"}]}
    },
    "prevResult interfaces": {
        "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": 7}], "ips": [{"address": 5}]}
    },
    "hostile conditions": {"conditionsV4": ["-j ACCEPT\n-A INPUT"], "conditionsV6": "x"},
    "unknown backend": {"backend": "pf"},
    "mark and chain": {"markMasqBit": 99, "externalSetMarkChain": "a b"},
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
@pytest.mark.parametrize("impl", BACKENDS)
def test_del_with_garbage_succeeds_and_removes_the_rules(sandbox, dockline_bin, impl, case):
    cni_path = setup_network(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add web")
    assert (
        cni(
            sandbox,
            cni_path,
            "add",
            "web",
            {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        ).returncode
        == 0
    )
    assert "8080" in firewall(sandbox)
    assert sandbox.sh("cat /proc/sys/net/ipv4/conf/dockline0/route_localnet").stdout.strip() == "1"
    conf = {"cniVersion": "1.1.0", "name": "dockline", "type": "portmap"}
    conf.update(GARBAGE[case])
    run = call_plugin(
        sandbox, dockline_bin / "portmap", "DEL", conf, containerid="web", netns="/run/netns/web"
    )
    assert run.code == 0, run.stdout + run.stderr
    rules = firewall(sandbox)  # the bridge's masquerade rules stay: bridge was not DELed
    assert "8080" not in rules and "DLP-" not in rules and "chain c-" not in rules
    assert sandbox.sh("cat /proc/sys/net/ipv4/conf/dockline0/route_localnet").stdout.strip() == "0"


def test_del_without_container_id_is_still_an_error(sandbox, dockline_bin):
    run = call_plugin(
        sandbox,
        dockline_bin / "portmap",
        "DEL",
        {"cniVersion": "1.1.0", "name": "n", "type": "portmap"},
        containerid=None,
    )
    assert run.code != 0 and run.json["code"] == 4


@pytest.mark.parametrize("impl", BACKENDS)
def test_conditions_are_applied(sandbox, dockline_bin, impl):
    """Valid conditions in either syntax make it into the rules, rendered
    again from the parsed tokens (10.1.2.3/8 becomes 10.0.0.0/8)."""
    cni_path = setup_network(sandbox, impl, dockline_bin)
    conf = json.loads(sandbox.sh("cat /etc/cni/net.d/30.conflist").stdout)
    conf["plugins"][1]["conditionsV4"] = (
        ["-s", "192.0.2.7/24", "-m addrtype ! --src-type", "LOCAL"]
        if impl.endswith("iptables")
        else ["ip saddr 192.0.2.7/24"]
    )
    sandbox.run(
        ["sh", "-c", "cat > /etc/cni/net.d/30.conflist"], input=json.dumps(conf), check=True
    )
    sandbox.sh("ip netns add web")
    run = cni(
        sandbox, cni_path, "add", "web", {"portMappings": [{"hostPort": 8080, "containerPort": 80}]}
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "192.0.2.0/24" in firewall(sandbox)
    start_servers(sandbox)
    assert tcp_probe(sandbox, "ext", HOST4) == "web"  # 192.0.2.2 matches
    assert tcp_probe(sandbox, None, "127.0.0.1") != "web"  # 127.0.0.1 does not


# --- route_localnet ----------------------------------------------------------

ATTACK = (
    "ip route del local 127.0.0.0/8 dev lo table local 2>/dev/null;"
    "sysctl -qw net.ipv4.conf.eth0.route_localnet=1;"
    "ip route add 127.0.0.1/32 via 10.89.0.1 dev eth0"
)


def _host_secret(sb):
    """A service the host binds to loopback only."""
    sb.sh(
        "mkdir -p /run/netns/secret && echo secret > /run/netns/secret/index.html;"
        f"{VENV_PYTHON} -m http.server 9999 --bind 127.0.0.1 --directory /run/netns/secret "
        ">/dev/null 2>&1 &"
        "for i in $(seq 50); do ss -ltn | grep -q '127.0.0.1:9999 ' && break; sleep 0.1; done"
    )


def _localnet(sb, ifname="dockline0") -> str:
    return sb.sh(f"cat /proc/sys/net/ipv4/conf/{ifname}/route_localnet").stdout.strip()


@pytest.mark.parametrize("impl", BACKENDS)
def test_containers_cannot_reach_host_loopback_services(sandbox, dockline_bin, impl):
    """CVE-2020-8558: with route_localnet on the bridge, a container routing
    127.0.0.1 via its gateway reached services bound to the host's
    loopback.  The guard drops that; published ports keep answering on
    127.0.0.1 from the host."""
    cni_path = setup_network(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add web; ip netns add evil")
    assert (
        cni(
            sandbox,
            cni_path,
            "add",
            "web",
            {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        ).returncode
        == 0
    )
    assert cni(sandbox, cni_path, "add", "evil").returncode == 0
    _host_secret(sandbox)
    start_servers(sandbox)
    sandbox.sh(f"ip netns exec evil sh -c '{ATTACK}'")
    assert _localnet(sandbox) == "1"
    assert tcp_probe(sandbox, None, "127.0.0.1", port=9999) == "secret"  # the host itself
    assert tcp_probe(sandbox, "evil", "127.0.0.1", port=9999) == ""  # the attack: dropped
    assert tcp_probe(sandbox, None, "127.0.0.1", port=8080) == "web"  # the published port
    # the attack is real: without the guard it gets through
    if impl.endswith("nftables"):
        sandbox.sh("nft flush chain inet dockline_portmap localnet")
    else:
        sandbox.sh("iptables -F DOCKLINE-LOCALNET")
    assert tcp_probe(sandbox, "evil", "127.0.0.1", port=9999) == "secret"


@pytest.mark.parametrize("impl", BACKENDS)
def test_route_localnet_only_on_the_bridge_and_off_with_the_last_mapping(
    sandbox, dockline_bin, impl
):
    cni_path = setup_network(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add a; ip netns add b; ip netns add c")
    assert cni(sandbox, cni_path, "add", "c").returncode == 0  # no mapping: no switch
    assert _localnet(sandbox) == "0"
    assert (
        cni(
            sandbox,
            cni_path,
            "add",
            "a",
            {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        ).returncode
        == 0
    )
    assert (
        cni(
            sandbox,
            cni_path,
            "add",
            "b",
            {"portMappings": [{"hostPort": 8081, "containerPort": 80}]},
        ).returncode
        == 0
    )
    on = [
        line
        for line in sandbox.sh("grep -H . /proc/sys/net/ipv4/conf/*/route_localnet").stdout.split()
        if line.endswith(":1")
    ]
    assert on == ["/proc/sys/net/ipv4/conf/dockline0/route_localnet:1"]  # not the veths, not ext0
    assert cni(sandbox, cni_path, "del", "a").returncode == 0
    assert _localnet(sandbox) == "1"  # b still publishes
    assert cni(sandbox, cni_path, "del", "b").returncode == 0
    assert _localnet(sandbox) == "0"
    assert cni(sandbox, cni_path, "del", "b").returncode == 0  # again: fine
    # GC drops the holds of attachments that are gone
    assert (
        cni(
            sandbox,
            cni_path,
            "add",
            "a",
            {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        ).returncode
        == 0
    )
    assert _localnet(sandbox) == "1"
    sandbox.sh("rm /var/lib/cni/results/dockline-a-eth0")
    assert cni(sandbox, cni_path, "gc", "c").returncode == 0
    assert _localnet(sandbox) == "0"


def test_route_localnet_set_by_the_operator_stays_on(sandbox, dockline_bin):
    cni_path = setup_network(sandbox, "dockline-nftables", dockline_bin)
    sandbox.sh("ip netns add a")
    assert cni(sandbox, cni_path, "add", "a").returncode == 0
    sandbox.sh("sysctl -qw net.ipv4.conf.dockline0.route_localnet=1")
    assert cni(sandbox, cni_path, "del", "a").returncode == 0
    assert (
        cni(
            sandbox,
            cni_path,
            "add",
            "a",
            {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        ).returncode
        == 0
    )
    assert cni(sandbox, cni_path, "del", "a").returncode == 0
    assert _localnet(sandbox) == "1"


def test_route_localnet_holders_are_counted_without_listing_them(sandbox, dockline_bin):
    """Each holder is a hard link to .holders (its link count counts them,
    so DEL lists nothing); a directory of plain files an older dockline
    left is converted by the next ADD, and its holders still count."""
    cni_path = setup_network(sandbox, "dockline-nftables", dockline_bin)
    state = "/var/lib/cni/dockline/localnet/dockline0"
    sandbox.sh("for n in a b c; do ip netns add $n; done")

    def publish(name, port):
        mapping = {"portMappings": [{"hostPort": port, "containerPort": 80}]}
        assert cni(sandbox, cni_path, "add", name, mapping).returncode == 0

    publish("a", 8080)
    publish("b", 8081)
    assert sandbox.sh(f"stat -c %h {state}/.holders").stdout.strip() == "3"
    # as an older dockline left it: plain files, no .holders
    sandbox.sh(f"cd {state} && for f in *; do cp $f .x && mv .x $f; done && rm .holders && ls -a")
    publish("c", 8082)
    assert sandbox.sh(f"stat -c %h {state}/.holders").stdout.strip() == "4"
    for name in ("a", "b"):
        assert cni(sandbox, cni_path, "del", name).returncode == 0
        assert _localnet(sandbox) == "1"
    assert cni(sandbox, cni_path, "del", "c").returncode == 0
    assert _localnet(sandbox) == "0"
    assert sandbox.sh(f"ls -a {state} 2>/dev/null; true").stdout == ""

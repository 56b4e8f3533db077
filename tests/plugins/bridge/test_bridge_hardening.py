"""The bridge plugin as an attacker and a careless runtime meet it:
IPv6 router advertisements and unconfigured IPv6 in containers, DEL with
a config it cannot read, and hostile environment or stdin (each a CNI
error, nothing created)."""

import json

import pytest
from helpers.bridge import add, conf, delete, dual_conf, links, store
from helpers.cni import call_plugin


def sysctl(sb, ns, key):
    return sb.sh(f"ip netns exec {ns} sysctl -n {key}").stdout.strip()


def test_ipv4_only_container_has_no_ipv6_and_ignores_router_adverts(sandbox, dockline_bin):
    add(sandbox, dockline_bin, "web", conf()).ok()
    assert sysctl(sandbox, "web", "net.ipv6.conf.eth0.accept_ra") == "0"
    assert sysctl(sandbox, "web", "net.ipv6.conf.eth0.disable_ipv6") == "1"
    addrs = json.loads(sandbox.sh("ip -n web -j -6 addr show dev eth0").stdout)
    assert all(not a.get("addr_info") for a in addrs)  # not even a link-local address


def test_dual_stack_container_keeps_ipv6_without_router_adverts(sandbox, dockline_bin):
    add(sandbox, dockline_bin, "web", dual_conf()).ok()
    assert sysctl(sandbox, "web", "net.ipv6.conf.eth0.accept_ra") == "0"
    assert sysctl(sandbox, "web", "net.ipv6.conf.eth0.disable_ipv6") == "0"


def _masq_rules(sb):
    return [
        line
        for line in sb.sh("iptables-save -t nat; nft list ruleset").stdout.splitlines()
        if "DL-" in line or "dl-" in line
    ]


@pytest.mark.parametrize(
    "garbage",
    [
        {"bridge": "bad/name"},
        {"mtu": "huge"},
        {"ipMasq": "yes"},
        {"vlanTrunk": 7},
        {"cniVersion": "9.9.9"},
        {"dns": []},
        {"runtimeConfig": {"mac": 12}},
    ],
)
def test_del_with_an_unreadable_config_still_removes_everything(sandbox, dockline_bin, garbage):
    good = conf(ipMasq=True)
    add(sandbox, dockline_bin, "web", good).ok()
    assert store(sandbox) and _masq_rules(sandbox)
    bad = dict(good, **garbage)
    run = delete(sandbox, dockline_bin, "web", bad)
    assert run.code == 0, run.stdout + run.stderr
    assert store(sandbox) == []
    assert not [n for n in links(sandbox) if n.startswith("dl") and n != "dl0"]
    assert _masq_rules(sandbox) == []
    # and again, on what is already gone
    assert delete(sandbox, dockline_bin, "web", bad).code == 0


def test_del_still_refuses_an_invalid_container_id(sandbox, dockline_bin):
    run = call_plugin(sandbox, dockline_bin / "bridge", "DEL", conf(), containerid="../x")
    assert run.code != 0 and run.json["code"] == 4


def _nothing_made(sb):
    assert store(sb) == []
    assert "dl0" not in links(sb)


@pytest.mark.parametrize(
    "variable,value",
    [
        ("CNI_ARGS", b"IgnoreUnknown=1;K8S_POD_NAME=\xff\xfe"),
        ("CNI_NETNS", b"/run/netns/web\n-A INPUT"),
        ("CNI_PATH", b"/opt/cni/bin\x1b[2J"),
        ("CNI_IFNAME", b"eth\xc3"),
    ],
)
def test_hostile_environment_is_code_4_and_creates_nothing(sandbox, dockline_bin, variable, value):
    sandbox.sh("ip netns add web")
    env = {
        b"PATH": b"/usr/sbin:/usr/bin:/sbin:/bin",
        b"CNI_COMMAND": b"ADD",
        b"CNI_CONTAINERID": b"web",
        b"CNI_NETNS": b"/run/netns/web",
        b"CNI_IFNAME": b"eth0",
        b"CNI_PATH": str(dockline_bin).encode(),
    }
    env[variable.encode()] = value
    proc = sandbox.run([str(dockline_bin / "bridge")], input=json.dumps(conf()).encode(), env=env)
    out = json.loads(proc.stdout)
    assert proc.returncode != 0 and out["code"] == 4, proc.stdout
    assert variable in out["msg"]
    _nothing_made(sandbox)


@pytest.mark.parametrize(
    "stdin",
    [
        b'{"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "mtu": 1e400}',
        b'{"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "bridge": "\\ud800"}',
        b'{"cniVersion": "1.0.0", "name": "net1", "x": ' + b"[" * 50000 + b"]" * 50000 + b"}",
        b'{"cniVersion": "1.0.0", "name": "net1", "mtu": ' + b"9" * 5000 + b"}",
    ],
)
def test_hostile_stdin_is_code_6_and_creates_nothing(sandbox, dockline_bin, stdin):
    sandbox.sh("ip netns add web")
    run = call_plugin(
        sandbox, dockline_bin / "bridge", "ADD", stdin, containerid="web", netns="/run/netns/web"
    )
    assert run.code != 0 and run.json["code"] == 6, run.stdout + run.stderr
    _nothing_made(sandbox)

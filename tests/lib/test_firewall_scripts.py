"""Masquerade rules (bridge ipMasq) are built from checked tokens only:
an interface name ending in a backslash no longer breaks the quoted
comment of the iptables rules, and an address with a zone id from IPAM is
refused before any rule is written."""

import pytest
from helpers.cni import call_plugin

SUBNET = "10.77.0.0/24"


def bridge_conf(backend, ipam=None):
    return {
        "cniVersion": "1.0.0",
        "name": "net1",
        "type": "bridge",
        "bridge": "dl0",
        "isGateway": True,
        "ipMasq": True,
        "ipMasqBackend": backend,
        "ipam": ipam or {"type": "host-local", "ranges": [[{"subnet": SUBNET}]]},
    }


def rules(sb) -> str:
    return sb.sh(
        "iptables-save -t nat | grep -v '^#'; ip6tables-save -t nat | grep -v '^#';nft list ruleset"
    ).stdout


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ifname_with_a_backslash(sandbox, dockline_bin, backend):
    sandbox.sh("ip netns add web")
    ifname = "eth\\"
    conf = bridge_conf(backend)
    run = call_plugin(
        sandbox,
        dockline_bin / "bridge",
        "ADD",
        conf,
        containerid="web",
        netns="/run/netns/web",
        ifname=ifname,
    )
    assert run.code == 0, run.stdout + run.stderr
    text = rules(sandbox)
    masq = [line for line in text.splitlines() if "MASQUERADE" in line or "masquerade" in line]
    assert masq and not any("\\" in line for line in masq), masq
    assert "10.77.0.0/24" in text
    run = call_plugin(
        sandbox,
        dockline_bin / "bridge",
        "DEL",
        conf,
        containerid="web",
        netns="/run/netns/web",
        ifname=ifname,
    )
    assert run.code == 0, run.stdout + run.stderr
    after = rules(sandbox)
    assert "10.77.0.2" not in after  # the container's own rule or map element
    if backend == "iptables":  # nftables keeps the subnet's constant chain
        assert SUBNET not in after


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_zone_id_from_ipam_never_reaches_a_rule(sandbox, dockline_bin, backend):
    sandbox.sh("ip netns add web")
    before = rules(sandbox)
    conf = bridge_conf(backend, {"type": "static", "addresses": [{"address": "fd00::5%x/64"}]})
    run = call_plugin(
        sandbox, dockline_bin / "bridge", "ADD", conf, containerid="web", netns="/run/netns/web"
    )
    assert run.code != 0, run.stdout
    assert rules(sandbox) == before

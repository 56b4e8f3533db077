"""Differential tests: ADD then DEL, one scenario per config, against the
reference bridge: the same result, the same kernel state, a clean DEL.

The method, and what differs by design: tests/helpers/bridge_diff.py."""

from __future__ import annotations

import pytest
from dockline.cni.attachment import Attachment
from helpers.bridge_diff import (
    BRIDGE,
    DIFF_MARKS,
    DL,
    DUAL,
    NETWORK,
    REF,
    V4,
    V6,
    add_del_scenario,
    assert_clean_del,
    assert_same_add,
    both,
    bridge_conf,
    c1_of,
    eth0_of,
)

pytestmark = DIFF_MARKS


def _expect_l2(result, snap):
    assert "ips" not in result and snap["bridge"]["addrs"] == []
    assert eth0_of(snap)["addrs"] == [] and eth0_of(snap)["up"]
    assert snap["ipam"] == {}


def _expect_v4_plain(result, snap):
    assert result["ips"] == [{"interface": 2, "address": "10.1.2.2/24", "gateway": "10.1.2.1"}]
    assert snap["bridge"]["addrs"] == []  # no isGateway: no address on the bridge
    assert snap["sysctl"]["net/ipv4/ip_forward"] == "0"
    assert not any(r["dst"] == "default" for r in c1_of(snap)["routes4"])
    assert eth0_of(snap)["addrs"] == [("inet", "10.1.2.2", 24, "global", "10.1.2.255")]
    assert eth0_of(snap)["sysctl"]["net/ipv4/conf/eth0/arp_notify"] == "1"
    assert snap["ipam"] == {"net1/10.1.2.2": "c1\r\neth0"}
    _expect_plain_port(result, snap)


def _expect_v4_gw(result, snap):
    assert snap["bridge"]["addrs"] == [("inet", "10.1.2.1", 24, "global", "10.1.2.255")]
    assert snap["sysctl"]["net/ipv4/ip_forward"] == "1"
    assert not any(r["dst"] == "default" for r in c1_of(snap)["routes4"])
    assert "routes" not in result


def _expect_v4_defgw(result, snap):
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}]
    assert {"dst": "default", "gateway": "10.1.2.1", "dev": "eth0"} in c1_of(snap)["routes4"]
    assert snap["sysctl"]["net/ipv4/ip_forward"] == "1"


def _expect_v6_defgw(result, snap):
    assert result["ips"] == [{"interface": 2, "address": "fd00:1::2/64", "gateway": "fd00:1::1"}]
    assert result["routes"] == [{"dst": "::/0", "gw": "fd00:1::1"}]
    assert ("inet6", "fd00:1::1", 64, "global", None) in snap["bridge"]["addrs"]
    assert snap["sysctl"]["net/ipv6/conf/all/forwarding"] == "1"
    assert any(
        r["dst"] == "default" and r.get("gateway") == "fd00:1::1" for r in c1_of(snap)["routes6"]
    )
    assert eth0_of(snap)["sysctl"]["net/ipv6/conf/eth0/accept_dad"] == "0"
    assert eth0_of(snap)["tentative"] == []


def _expect_dual_masq(result, snap):
    assert [ip["address"] for ip in result["ips"]] == ["10.1.2.2/24", "fd00:1::2/64"]
    assert snap["masq_sources"] == ["10.1.2.2/32", "fd00:1::2/128"]
    assert snap["sysctl"] == {"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1"}


def _expect_mtu(result, snap):
    assert snap["bridge"]["mtu"] == 1400
    assert [p["mtu"] for p in snap["ports"]] == [1400] and eth0_of(snap)["mtu"] == 1400


def _expect_existing_bridge_mtu(result, snap):
    assert [p["mtu"] for p in snap["ports"]] == [1400] and eth0_of(snap)["mtu"] == 1400


def _expect_hairpin(result, snap):
    assert [p["hairpin"] for p in snap["ports"]] == [True]
    assert not snap["bridge"]["promisc"]
    assert eth0_of(snap)["sysctl"]["net/ipv6/conf/eth0/accept_dad"] == "0"


def _expect_promisc(result, snap):
    assert snap["bridge"]["promisc"]
    assert [p["hairpin"] for p in snap["ports"]] == [False]


def _expect_plain_port(result, snap):
    assert snap["ports"] == [
        {
            "kind": "veth",
            "name_ok": True,
            "up": True,
            "mtu": 1500,
            "hairpin": False,
            "isolated": False,
            "peer_netns": True,
        }
    ]
    assert snap["bridge"]["kind"] == "bridge" and snap["bridge"]["up"]
    assert not snap["bridge"]["promisc"]
    assert eth0_of(snap)["kind"] == "veth" and eth0_of(snap)["up"]


def _expect_gw_kept(result, snap):
    # the pre-configured address (added without broadcast) is kept as it is
    assert snap["bridge"]["addrs"] == [("inet", "10.1.2.1", 24, "global", None)]


def _expect_forced(result, snap):
    assert snap["bridge"]["addrs"] == [("inet", "10.1.2.1", 24, "global", "10.1.2.255")]


def _expect_custom_gw(result, snap):
    assert result["ips"][0]["gateway"] == "10.1.2.254"
    assert snap["bridge"]["addrs"] == [("inet", "10.1.2.254", 24, "global", "10.1.2.255")]
    assert {"dst": "default", "gateway": "10.1.2.254", "dev": "eth0"} in c1_of(snap)["routes4"]


def _expect_ipam_routes(result, snap):
    assert {"dst": "192.168.0.0/16", "gateway": "10.1.2.1", "dev": "eth0"} in c1_of(snap)["routes4"]
    assert {"dst": "192.168.0.0/16"} in result["routes"]


def _expect_ipam_default_gw(result, snap):
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.2.254"}]
    assert {"dst": "default", "gateway": "10.1.2.254", "dev": "eth0"} in c1_of(snap)["routes4"]


ADD_CASES = {
    # id: (config, pre-script, expectation on the reference's result/state)
    "l2-only": (bridge_conf(ranges=[]), "", _expect_l2),
    "v4-plain": (bridge_conf(), "", _expect_v4_plain),
    "v4-isGateway": (bridge_conf(isGateway=True), "", _expect_v4_gw),
    "v4-isDefaultGateway": (bridge_conf(isDefaultGateway=True), "", _expect_v4_defgw),
    "v6-isDefaultGateway": (bridge_conf(ranges=[V6], isDefaultGateway=True), "", _expect_v6_defgw),
    "dual-isDefaultGateway-ipMasq": (
        bridge_conf(ranges=DUAL, isDefaultGateway=True, ipMasq=True),
        "",
        _expect_dual_masq,
    ),
    "mtu": (bridge_conf(isGateway=True, mtu=1400), "", _expect_mtu),
    "mtu-existing-bridge": (
        bridge_conf(isGateway=True, mtu=1400),
        f"ip link add {BRIDGE} type bridge",
        _expect_existing_bridge_mtu,
    ),
    "hairpinMode-dual": (
        bridge_conf(ranges=DUAL, isGateway=True, hairpinMode=True),
        "",
        _expect_hairpin,
    ),
    "promiscMode": (
        bridge_conf(ranges=DUAL, isGateway=True, promiscMode=True),
        "",
        _expect_promisc,
    ),
    "gateway-address-already-there": (
        bridge_conf(isGateway=True),
        f"ip link add {BRIDGE} type bridge && ip addr add 10.1.2.1/24 dev {BRIDGE}",
        _expect_gw_kept,
    ),
    "forceAddress-same-subnet": (
        bridge_conf(isGateway=True, forceAddress=True),
        f"ip link add {BRIDGE} type bridge && ip addr add 10.1.2.99/24 dev {BRIDGE}",
        _expect_forced,
    ),
    "ipam-gateway": (
        bridge_conf(
            ranges=[[{"subnet": "10.1.2.0/24", "gateway": "10.1.2.254"}]], isDefaultGateway=True
        ),
        "",
        _expect_custom_gw,
    ),
    "ipam-routes": (
        bridge_conf(
            ipam={"type": "host-local", "ranges": [V4], "routes": [{"dst": "192.168.0.0/16"}]},
            isGateway=True,
        ),
        "",
        _expect_ipam_routes,
    ),
    "ipam-default-route-with-gw": (
        bridge_conf(
            ipam={
                "type": "host-local",
                "ranges": [V4],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.254"}],
            },
            isDefaultGateway=True,
        ),
        "",
        _expect_ipam_default_gw,
    ),
}


@pytest.mark.parametrize("case", list(ADD_CASES))
def test_add_del_same_result_and_state(case):
    conf, pre, expect = ADD_CASES[case]
    runs = both(add_del_scenario(conf, pre))
    ref_result, ref_snap = runs[REF]["add"].ok().json, runs[REF]["snap"]
    expect(ref_result, ref_snap)  # what the scenario exercises, on the reference
    assert_same_add(runs)
    # dockline's host veth name is derived from the attachment
    assert (
        runs[DL]["add"].json["interfaces"][1]["name"] == Attachment(NETWORK, "c1", "eth0").host_veth
    )
    assert_clean_del(runs)

"""Differential tests: CHECK against the reference's: what it notices after
ADD, per version.

The method, and what differs by design: tests/helpers/bridge_diff.py."""

from __future__ import annotations

import pytest
from helpers.bridge_diff import (
    BRIDGE,
    DIFF_MARKS,
    DL,
    DUAL,
    REF,
    SIDES,
    both,
    bridge_conf,
)

pytestmark = DIFF_MARKS


CONTAINER_IP4 = "10.1.2.2"


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_check(version):
    conf = bridge_conf(version, DUAL, isDefaultGateway=True, ipMasq=True)

    def scenario(side):
        side.netns("c1")
        add = side.add(conf).ok().json
        out = {"ok": side.check(conf, add)}
        side.sh(f"ip -n c1 addr del {CONTAINER_IP4}/24 dev eth0")
        out["no_addr"] = side.check(conf, add)
        side.sh(
            f"ip -n c1 addr add {CONTAINER_IP4}/24 dev eth0 && "
            "ip -n c1 route add default via 10.1.2.1 dev eth0"
        )
        out["restored"] = side.check(conf, add)
        side.sh(f"ip link del {add['interfaces'][1]['name']}")
        out["no_veth"] = side.check(conf, add)
        return out

    runs = both(scenario)
    for side in SIDES:
        run = runs[side]
        assert run["ok"].code == 0, (side, run["ok"].stdout, run["ok"].stderr)
        assert run["restored"].code == 0, (side, run["restored"].stdout)
        assert run["no_veth"].code != 0, side
    # The reference (1.1.1) checks the addresses too
    assert runs[REF]["no_addr"].code != 0
    assert runs[DL]["no_addr"].code != 0, runs[DL]["no_addr"].stdout
    assert "10.1.2.2" in runs[DL]["no_addr"].json["msg"]


CHECK_MUTATIONS = {
    # what is changed after ADD: (script, the reference's error contains)
    "container-address": (f"ip -n c1 addr del {CONTAINER_IP4}/24 dev eth0", "10.1.2.2"),
    "default-route": ("ip -n c1 route del default", "Route"),
    "container-mac": ("ip -n c1 link set eth0 address 02:00:00:00:00:42", "Mac"),
    "container-veth": ("ip -n c1 link del eth0", "eth0"),
    # DROP-IN: the reference also checks the bridge against the config and
    # the prevResult: promiscuity and MAC.
    "bridge-promisc": (f"ip link set {BRIDGE} promisc on", "Promisc"),
    "bridge-mac": (f"ip link set {BRIDGE} address 02:00:00:00:00:43", "Mac"),
}


@pytest.mark.parametrize("mutation", list(CHECK_MUTATIONS))
def test_check_detects(mutation):
    script, ref_says = CHECK_MUTATIONS[mutation]
    conf = bridge_conf("1.0.0", isDefaultGateway=True)

    def scenario(side):
        side.netns("c1")
        add = side.add(conf).ok().json
        before = side.check(conf, add)
        side.sh(script)
        return before, side.check(conf, add)

    runs = both(scenario)
    for side in SIDES:
        runs[side][0].ok()
    ref = runs[REF][1]
    assert ref.code != 0 and ref_says in ref.json["msg"], ref.stdout
    dl = runs[DL][1]
    assert dl.code != 0, f"dockline CHECK passed after {mutation!r} (reference: {ref.json['msg']})"


def test_check_not_in_0_3_1():
    conf = bridge_conf("0.3.1", isGateway=True)

    def scenario(side):
        side.netns("c1")
        add = side.add(conf).ok().json
        return side.check(conf, add)

    runs = both(scenario)
    for side in SIDES:
        assert runs[side].code != 0, side
        # INCOMPATIBLE_VERSION, "config version does not allow CHECK"
        assert runs[side].json["code"] == 1, (side, runs[side].stdout)

"""Differential tests: failed ADDs against the reference's: the error, what is
left, and the DEL that follows.

The method, and what differs by design: tests/helpers/bridge_diff.py."""

from __future__ import annotations

import pytest
from helpers.bridge_diff import (
    BRIDGE,
    DIFF_MARKS,
    DL,
    REF,
    SIDES,
    both,
    bridge_conf,
    ip_json,
)

pytestmark = DIFF_MARKS


def _failed_add_scenario(conf, pre=""):
    def scenario(side):
        side.netns("c1")
        if pre:
            side.sh(pre)
        out = {"add": side.add(conf), "snap": side.snapshot()}
        out["del"] = side.delete(conf)
        out["snap_del"] = side.snapshot()
        return out

    return scenario


def test_promisc_and_hairpin_together_is_an_error():
    conf = bridge_conf(isGateway=True, promiscMode=True, hairpinMode=True)
    runs = both(_failed_add_scenario(conf))
    for side in SIDES:
        run = runs[side]
        assert run["add"].code != 0, side
        msg = run["add"].json["msg"].lower()
        assert "hairpin" in msg and "promisc" in msg, (side, msg)
        assert run["snap"]["bridge"] is None and run["snap"]["ipam"] == {}, side
        assert run["snap"]["containers"]["c1"]["links"] == {}, side
    assert runs[DL]["add"].json["code"] == 7  # INVALID_CONFIG, not the reference's catch-all
    assert runs[REF]["add"].json["code"] == 999
    # DROP-IN: the runtime's DEL after the failed ADD (same config) succeeds
    # with the reference (the check is ADD-only); a failing DEL is retried
    # by runtimes forever.
    runs[REF]["del"].ok()
    runs[DL]["del"].ok()


def test_gateway_conflict_same_subnet_without_forceAddress():
    """The bridge already has another address in the subnet: both fail and
    release the reservation; the reference leaves the veth pair until DEL,
    dockline leaves nothing."""
    conf = bridge_conf(isGateway=True)
    pre = f"ip link add {BRIDGE} type bridge && ip addr add 10.1.2.99/24 dev {BRIDGE}"
    runs = both(_failed_add_scenario(conf, pre))
    for side in SIDES:
        run = runs[side]
        assert run["add"].code != 0, side
        assert "already has an IP address different from 10.1.2.1/24" in run["add"].json["msg"], (
            side
        )
        assert run["snap"]["bridge"]["addrs"] == [("inet", "10.1.2.99", 24, "global", None)]
        assert run["snap"]["ipam"] == {}, side
        run["del"].ok()
        assert run["snap_del"]["ports"] == [] and run["snap_del"]["containers"]["c1"]["links"] == {}
    assert len(runs[REF]["snap"]["ports"]) == 1  # the reference's leftover
    assert "eth0" in runs[REF]["snap"]["containers"]["c1"]["links"]
    assert runs[DL]["snap"]["ports"] == []
    assert runs[DL]["snap"]["containers"]["c1"]["links"] == {}


@pytest.mark.parametrize("force", [False, True], ids=["no-forceAddress", "forceAddress"])
def test_bridge_with_address_in_other_ipv4_subnet(force):
    """DROP-IN: for IPv4 the reference treats *any* other address on the
    bridge as a conflict (not only one in the same subnet): without
    forceAddress ADD fails, with it the other address is replaced."""
    conf = bridge_conf(isGateway=True, forceAddress=force)
    pre = f"ip link add {BRIDGE} type bridge && ip addr add 192.168.5.1/24 dev {BRIDGE}"
    runs = both(_failed_add_scenario(conf, pre))
    ref = runs[REF]
    if force:
        ref["add"].ok()
        assert ref["snap"]["bridge"]["addrs"] == [("inet", "10.1.2.1", 24, "global", "10.1.2.255")]
    else:
        assert ref["add"].code != 0
        assert "already has an IP address different from 10.1.2.1/24" in ref["add"].json["msg"]
        assert ref["snap"]["bridge"]["addrs"] == [("inet", "192.168.5.1", 24, "global", None)]
        assert ref["snap"]["ipam"] == {}
    dl = runs[DL]
    assert (dl["add"].code == 0) == (ref["add"].code == 0), dl["add"].stdout
    assert dl["snap"]["bridge"]["addrs"] == ref["snap"]["bridge"]["addrs"]
    assert dl["snap"]["ipam"] == ref["snap"]["ipam"]


def test_ifname_already_in_netns():
    """Deliberate difference: ADD fails for both when CNI_IFNAME exists in the
    netns; the reference's DEL then deletes that pre-existing interface,
    dockline's leaves it alone.  (This kernel has no dummy links: the
    pre-existing eth0 is a bridge.)"""
    conf = bridge_conf(isGateway=True)
    runs = both(_failed_add_scenario(conf, "ip -n c1 link add eth0 type bridge"))
    for side in SIDES:
        run = runs[side]
        assert run["add"].code != 0, side
        assert "eth0" in run["add"].json["msg"] and "exist" in run["add"].json["msg"], side
        assert run["snap"]["ports"] == [] and run["snap"]["ipam"] == {}, side
        assert run["snap"]["containers"]["c1"]["links"]["eth0"]["kind"] == "bridge", side
        run["del"].ok()
        assert run["snap_del"]["ipam"] == {}, side
    assert runs[REF]["snap_del"]["containers"]["c1"]["links"] == {}  # reference deleted it
    assert runs[DL]["snap_del"]["containers"]["c1"]["links"]["eth0"]["kind"] == "bridge"
    assert runs[DL]["add"].json["code"] == 102  # ALREADY_EXISTS (reference: 999)


def test_del_after_failed_add_spares_other_containers():
    """DROP-IN: c2 is attached; c1's netns already has an eth0 that is a veth
    whose peer p0 is in c1 itself (ifindex 3 there, like c2's host veth on
    the host).  ADD c1 fails for both; DEL c1 must not touch c2.  The
    reference deletes c1's eth0 (and with it p0); dockline must leave c1's
    interfaces alone and, above all, must not take c1's peer ifindex for a
    host ifindex (deleting c2's host veth)."""
    conf = bridge_conf(isGateway=True)

    def scenario(side):
        side.netns("c1", "c2")
        out = {"add2": side.add(conf, ns="c2")}
        side.sh("ip -n c1 link add p0 type veth peer name eth0")
        out["snap_before"] = side.snapshot(("c1", "c2"))
        host_veth = out["snap_before"]["raw"]["host_veths"][0]
        out["premise"] = {
            "c1 eth0 peer": ip_json(side.sb, "ip", "-n", "c1", "-j", "link", "show", "p0")[0][
                "ifindex"
            ],
            "c2 host veth": ip_json(side.sb, "ip", "-j", "link", "show", host_veth)[0]["ifindex"],
        }
        out["add1"] = side.add(conf, ns="c1")
        out["del1"] = side.delete(conf, ns="c1")
        out["snap"] = side.snapshot(("c1", "c2"))
        return out

    runs = both(scenario)
    for side in SIDES:
        run = runs[side]
        run["add2"].ok()
        before = run["snap_before"]
        assert before["raw"]["host_veths"], side
        # the premise: c1's eth0 has its peer at the ifindex of c2's host veth
        assert run["premise"]["c1 eth0 peer"] == run["premise"]["c2 host veth"] == 3, run["premise"]
        assert run["add1"].code != 0, side
        run["del1"].ok()
        snap = run["snap"]
        assert len(snap["ports"]) == 1, (
            f"{side}: c2's host veth is gone: {snap['raw']['host_veths']}"
        )
        assert snap["raw"]["host_veths"] == before["raw"]["host_veths"], side
        assert snap["containers"]["c2"] == before["containers"]["c2"], side
        assert snap["ipam"] == {"net1/10.1.2.2": "c2\r\neth0"}, side
    assert runs[REF]["snap"]["containers"]["c1"]["links"] == {}
    assert sorted(runs[DL]["snap"]["containers"]["c1"]["links"]) == ["eth0", "p0"]


def test_ipam_exhausted_leaves_no_veth():
    """Deliberate difference: a /30 has one address for containers; the
    second ADD fails in IPAM for both; the reference leaves c2's veth pair
    until DEL, dockline leaves nothing.  c1 is untouched either way."""
    conf = bridge_conf(ranges=[[{"subnet": "10.1.2.0/30"}]], isGateway=True)

    def scenario(side):
        side.netns("c1", "c2")
        out = {"add1": side.add(conf, ns="c1"), "add2": side.add(conf, ns="c2")}
        out["snap"] = side.snapshot(("c1", "c2"))
        out["del2"] = side.delete(conf, ns="c2")
        out["snap_del"] = side.snapshot(("c1", "c2"))
        return out

    runs = both(scenario)
    for side in SIDES:
        run = runs[side]
        assert run["add1"].ok().json["ips"][0]["address"] == "10.1.2.2/30", side
        assert run["add2"].code != 0, side
        assert run["snap"]["ipam"] == {"net1/10.1.2.2": "c1\r\neth0"}, side
        assert run["snap"]["containers"]["c1"]["links"]["eth0"]["addrs"] == [
            ("inet", "10.1.2.2", 30, "global", "10.1.2.3")
        ], side
        run["del2"].ok()
        assert len(run["snap_del"]["ports"]) == 1, side  # c1's
        assert run["snap_del"]["containers"]["c2"]["links"] == {}, side
        assert run["snap_del"]["ipam"] == {"net1/10.1.2.2": "c1\r\neth0"}, side
    assert len(runs[REF]["snap"]["ports"]) == 2  # reference: c2's veth left behind
    assert "eth0" in runs[REF]["snap"]["containers"]["c2"]["links"]
    assert len(runs[DL]["snap"]["ports"]) == 1
    assert runs[DL]["snap"]["containers"]["c2"]["links"] == {}

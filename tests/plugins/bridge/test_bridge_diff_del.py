"""Differential tests: DEL against the reference's: after the netns is gone,
without CNI_NETNS, never added; and dockline's DEL of what the reference
added (veth pair, reservation, masquerade path).

The method, and what differs by design: tests/helpers/bridge_diff.py."""

from __future__ import annotations

import time

from helpers.bridge_diff import (
    DIFF_MARKS,
    DL,
    DUAL,
    REF,
    SIDES,
    Side,
    assert_same,
    both,
    bridge_conf,
    comparable,
    snapshot,
)
from helpers.paths import DOCKLINE_BIN

pytestmark = DIFF_MARKS


def test_del_after_netns_deleted():
    conf = bridge_conf(ranges=DUAL, isDefaultGateway=True, ipMasq=True)

    def scenario(side):
        side.netns("c1")
        out = {"add": side.add(conf)}
        out["snap"] = side.snapshot()
        side.sh("ip netns del c1")
        out["del"] = side.delete(conf)
        out["del2"] = side.delete(conf)
        # the kernel destroys the netns (and the veth pair with it)
        # asynchronously: give it a moment
        for _ in range(50):
            out["snap_del"] = side.snapshot()
            if not out["snap_del"]["ports"]:
                break
            time.sleep(0.05)
        return out

    runs = both(scenario)
    for side in SIDES:
        run = runs[side]
        run["add"].ok()
        assert len(run["snap"]["ports"]) == 1 and len(run["snap"]["ipam"]) == 2
        assert run["snap"]["masq_sources"] == ["10.1.2.2/32", "fd00:1::2/128"]
        run["del"].ok()
        run["del2"].ok()
        snap = run["snap_del"]
        assert snap["containers"]["c1"] is None
        assert snap["ports"] == [] and snap["ipam"] == {}, side
    # Difference: the reference finds the addresses to unmasquerade on the
    # container's interface, gone with the netns: its rules stay forever.
    assert runs[REF]["snap_del"]["masq_sources"] == ["10.1.2.2/32", "fd00:1::2/128"]
    assert runs[DL]["snap_del"]["masq_sources"] == []


def test_del_without_netns():
    """DEL without CNI_NETNS succeeds and releases the reservation for both.
    The reference leaves the veth pair and the masquerade rules (it can only
    find them through the netns); dockline removes both."""
    conf = bridge_conf(isGateway=True, ipMasq=True)

    def scenario(side):
        side.netns("c1")
        out = {"add": side.add(conf)}
        out["del"] = side.call("DEL", conf, ns=None, containerid="c1")
        out["del2"] = side.call("DEL", conf, ns=None, containerid="c1")
        out["snap_del"] = side.snapshot()
        return out

    runs = both(scenario)
    for side in SIDES:
        run = runs[side]
        run["add"].ok()
        run["del"].ok()
        run["del2"].ok()
        assert run["snap_del"]["ipam"] == {}, side
    assert runs[REF]["snap_del"]["masq_sources"] == ["10.1.2.2/32"]
    assert runs[DL]["snap_del"]["masq_sources"] == []
    assert len(runs[REF]["snap_del"]["ports"]) == 1
    assert "eth0" in runs[REF]["snap_del"]["containers"]["c1"]["links"]
    assert runs[DL]["snap_del"]["ports"] == []
    assert runs[DL]["snap_del"]["containers"]["c1"]["links"] == {}


def test_del_never_added():
    conf = bridge_conf(isGateway=True, ipMasq=True)

    def scenario(side):
        side.netns("c1")
        return side.delete(conf), side.snapshot()

    runs = both(scenario)
    for side in SIDES:
        runs[side][0].ok()
        assert runs[side][1]["ports"] == [] and runs[side][1]["ipam"] == {}
    assert_same(comparable(runs[REF][1]), comparable(runs[DL][1]), "state after DEL")


def test_interop_reference_add_dockline_del(sandbox):
    """A container attached by the reference is detached by dockline's DEL
    (same sandbox, same config): veth pair and reservation gone."""
    conf = bridge_conf(ranges=DUAL, isDefaultGateway=True)
    ref = Side(REF, sandbox)
    ref.netns("c1", "c2")
    ref.add(conf, ns="c1").ok()
    ref.add(conf, ns="c2").ok()
    before = snapshot(ref, ("c1", "c2"))
    assert len(before["ports"]) == 2 and len(before["ipam"]) == 4
    r = ref.delete(conf, ns="c1", bindir=DOCKLINE_BIN)
    r.ok()
    after = snapshot(ref, ("c1", "c2"))
    assert after["containers"]["c1"]["links"] == {}
    assert sorted(after["ipam"]) == ["net1/10.1.2.3", "net1/fd00:1::3"]
    assert len(after["ports"]) == 1  # c2's, untouched
    assert after["containers"]["c2"] == before["containers"]["c2"]
    ref.delete(conf, ns="c1", bindir=DOCKLINE_BIN).ok()


def test_interop_reference_add_dockline_del_ipmasq(sandbox):
    """DROP-IN: after dockline's DEL of a container the reference attached
    with ipMasq, no masquerade path remains for its address (the reference's
    CNI-… chain would otherwise stay forever)."""
    conf = bridge_conf(isGateway=True, ipMasq=True)
    ref = Side(REF, sandbox)
    ref.netns("c1")
    ref.add(conf).ok()
    assert snapshot(ref)["masq_sources"] == ["10.1.2.2/32"]
    ref.delete(conf, bindir=DOCKLINE_BIN).ok()
    after = snapshot(ref)
    assert after["ports"] == [] and after["ipam"] == {}
    assert after["masq_sources"] == [], sandbox.sh("iptables-save -t nat").stdout

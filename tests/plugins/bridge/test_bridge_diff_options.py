"""Differential tests: Options beyond the basics against the reference:
portIsolation and disableContainerInterface (newer than 1.1.1), vlan.

The method, and what differs by design: tests/helpers/bridge_diff.py."""

from __future__ import annotations

import pytest
from helpers.bridge_diff import (
    DIFF_MARKS,
    DL,
    REF,
    SIDES,
    add_del_scenario,
    assert_clean_del,
    assert_same,
    assert_same_add,
    both,
    bridge_conf,
    ip_json,
    normalize_result,
)

pytestmark = DIFF_MARKS


def test_port_isolation():
    """portIsolation (newer than 1.1.1): dockline isolates the port, the
    reference ignores the key."""
    conf = bridge_conf(isGateway=True, portIsolation=True)
    runs = both(add_del_scenario(conf))
    assert [p["isolated"] for p in runs[DL]["snap"]["ports"]] == [True]
    assert [p["isolated"] for p in runs[REF]["snap"]["ports"]] == [False]
    for side in SIDES:  # everything else the same
        for p in runs[side]["snap"]["ports"]:
            p["isolated"] = None
    assert_same_add(runs)
    assert_clean_del(runs)


def test_disable_container_interface():
    """disableContainerInterface (newer than 1.1.1): dockline leaves the
    container end down and refuses IPAM; the reference ignores the key."""
    l2 = bridge_conf(ranges=[], disableContainerInterface=True)
    with_ipam = bridge_conf(isGateway=True, disableContainerInterface=True)

    def scenario(side):
        side.netns("c1", "c2")
        out = {"l2": side.add(l2, ns="c1"), "ipam": side.add(with_ipam, ns="c2")}
        out["snap"] = side.snapshot(("c1", "c2"))
        out["del"] = side.delete(l2, ns="c1")
        out["snap_del"] = side.snapshot(("c1", "c2"))
        return out

    runs = both(scenario)
    dl, ref = runs[DL], runs[REF]
    assert "ips" not in dl["l2"].ok().json
    eth0 = dl["snap"]["containers"]["c1"]["links"]["eth0"]
    assert eth0["kind"] == "veth" and not eth0["up"] and eth0["addrs"] == []
    assert [p["up"] for p in dl["snap"]["ports"]] == [True]  # host end up, on the bridge
    assert (
        dl["ipam"].code != 0 and dl["ipam"].json["code"] == 7 and "IPAM" in dl["ipam"].json["msg"]
    )
    assert dl["snap"]["containers"]["c2"]["links"] == {} and dl["snap"]["ipam"] == {}
    dl["del"].ok()
    assert dl["snap_del"]["ports"] == [] and dl["snap_del"]["containers"]["c1"]["links"] == {}
    # the reference: key ignored
    assert ref["l2"].ok() and ref["snap"]["containers"]["c1"]["links"]["eth0"]["up"]
    assert ref["ipam"].ok().json["ips"][0]["address"] == "10.1.2.2/24"


_VLAN_SUPPORT: list[bool] = []


def _vlan_supported() -> bool:
    if not _VLAN_SUPPORT:
        from sandbox import Sandbox

        with Sandbox() as sb:
            _VLAN_SUPPORT.append(
                sb.sh("ip link add vtest type bridge vlan_filtering 1", check=False).returncode == 0
            )
    return _VLAN_SUPPORT[0]


@pytest.mark.parametrize("gateway", [False, True], ids=["l2", "isGateway"])
def test_vlan(gateway):
    """vlan: a vlan_filtering bridge, the container's port an untagged PVID
    member of the VLAN.  The reference 1.1.1 keeps the port in the default
    VLAN 1 and, with isGateway, puts the gateway address on a ``br0.<vlan>``
    veth (a 4th result interface) instead of the bridge."""
    if not _vlan_supported():
        pytest.skip(
            "kernel without CONFIG_BRIDGE_VLAN_FILTERING "
            "(EOPNOTSUPP creating a vlan_filtering bridge)"
        )
    conf = bridge_conf(isGateway=gateway, vlan=100)

    def scenario(side):
        side.netns("c1")
        out = {"add": side.add(conf), "snap": side.snapshot()}
        out["vlans"] = {
            entry["ifname"]: {v["vlan"]: sorted(v.get("flags", [])) for v in entry["vlans"]}
            for entry in ip_json(side.sb, "bridge", "-j", "vlan", "show")
        }
        return out

    runs = both(scenario)
    for side in SIDES:
        run = runs[side]
        assert run["snap"]["bridge"]["vlan_filtering"] == 1, side
        port = run["add"].ok().json["interfaces"][1]["name"]
        assert run["vlans"][port][100] == ["Egress Untagged", "PVID"], (side, run["vlans"])
    ref_port = runs[REF]["add"].json["interfaces"][1]["name"]
    dl_port = runs[DL]["add"].json["interfaces"][1]["name"]
    assert_same(runs[REF]["vlans"][ref_port], runs[DL]["vlans"][dl_port], "VLANs of the port")
    assert_same(
        normalize_result(runs[REF]["add"].json, REF),
        normalize_result(runs[DL]["add"].json, DL),
        "ADD result",
    )
    assert_same(runs[REF]["snap"]["bridge"], runs[DL]["snap"]["bridge"], "bridge")
    assert_same(runs[REF]["snap"]["host_links"], runs[DL]["snap"]["host_links"], "other host links")

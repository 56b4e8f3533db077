"""Differential tests: MAC addresses against the reference: the bridge's stays
put, a requested one is used, macspoofchk drops frames with another source
MAC.

The method, and what differs by design: tests/helpers/bridge_diff.py."""

from __future__ import annotations

import json

import pytest
from helpers.bridge_diff import (
    BRIDGE,
    DIFF_MARKS,
    DL,
    REF,
    SIDES,
    add_del_scenario,
    assert_clean_del,
    assert_same_add,
    both,
    bridge_conf,
    ip_json,
)

pytestmark = DIFF_MARKS


@pytest.mark.parametrize("gateway", [True, False], ids=["isGateway", "l2"])
def test_bridge_mac_stays_when_ports_change(gateway):
    """A bridge whose MAC is not set explicitly takes the lowest port MAC,
    changing under the containers' ARP caches.  The reference pins the MAC
    when it adds the gateway address; dockline pins it always (difference:
    without isGateway the reference's bridge MAC follows its ports)."""
    conf = bridge_conf(isGateway=gateway)

    def scenario(side):
        side.netns("c1")
        side.sh(f"ip link add {BRIDGE} type bridge")  # pre-existing, MAC not pinned
        mac = side.add(conf).ok().json["interfaces"][0]["mac"]
        side.sh(
            f"ip link add vx type veth peer name vy && ip link set vx address 02:00:00:00:00:01 "
            f"&& ip link set vx master {BRIDGE} && ip link set vx up"
        )
        return mac, ip_json(side.sb, "ip", "-j", "link", "show", BRIDGE)[0]["address"]

    runs = both(scenario)
    reported, now = runs[DL]
    assert now == reported
    reported, now = runs[REF]
    assert (now == reported) if gateway else (now == "02:00:00:00:00:01")


MAC_RT, MAC_ARGS, MAC_ENV = "02:00:00:aa:00:01", "02:00:00:aa:00:02", "02:00:00:aa:00:03"


@pytest.mark.parametrize("source", ["runtimeConfig", "args.cni", "CNI_ARGS", "all-three"])
def test_requested_mac(source):
    conf = bridge_conf(isGateway=True)
    env = None
    if source in ("runtimeConfig", "all-three"):
        conf["runtimeConfig"] = {"mac": MAC_RT}
    if source in ("args.cni", "all-three"):
        conf["args"] = {"cni": {"mac": MAC_ARGS}}
    if source in ("CNI_ARGS", "all-three"):
        env = f"IgnoreUnknown=1;MAC={MAC_ENV}"
    expected = {
        "runtimeConfig": MAC_RT,
        "args.cni": MAC_ARGS,
        "CNI_ARGS": MAC_ENV,
        "all-three": MAC_RT,
    }[source]
    runs = both(add_del_scenario(conf, add_kw={"args": env}))
    for side in SIDES:
        assert runs[side]["add"].ok().json["interfaces"][2]["mac"] == expected, side
        assert runs[side]["snap"]["raw"]["macs"]["c1/eth0"] == expected, side
    assert_same_add(runs, requested_macs={"eth0": expected})
    assert_clean_del(runs)


def _macspoof_rules(side) -> list[str]:
    # The bridge family, where both implement it (dockline's isolation
    # between networks is constant inet rules).  dockline's RA guard and
    # spoof check are constant rules over sets of ports: what an attachment
    # adds there are the sets' elements, listed here as "element" lines.
    text = side.sh("nft list ruleset bridge 2>/dev/null || true").stdout
    out = []
    for line in (raw.strip() for raw in text.splitlines()):
        if "nd-router-advert" in line or "@allowed" in line:
            continue
        if "ether saddr" in line or "drop" in line:
            out.append(line)
    if "dockline_macspoof" in text:
        allowed = side.sh("nft -j list set bridge dockline_macspoof allowed").stdout
        for elem in json.loads(allowed)["nftables"][1]["set"].get("elem", []):
            port, mac = elem["concat"]
            out.append(f"element {port} ether saddr {mac} drop otherwise")
    return out


def test_macspoofchk():
    """DROP-IN: macspoofchk (in 1.1.1) installs nftables rules in the bridge
    family that drop frames from the container's port whose source MAC is
    not the container's; DEL removes them."""
    conf = bridge_conf(isGateway=True, macspoofchk=True)

    def scenario(side):
        side.netns("c1")
        out = {"add": side.add(conf)}
        out["rules"] = _macspoof_rules(side)
        out["del"] = side.delete(conf)
        out["rules_del"] = _macspoof_rules(side)
        return out

    runs = both(scenario)
    for side in SIDES:
        run = runs[side]
        mac = run["add"].ok().json["interfaces"][2]["mac"]
        # The reference writes "ether saddr MAC return" then "drop";
        # dockline one rule "iifname PORT ether saddr != MAC drop".
        assert any(
            f"ether saddr {mac}" in r or f"ether saddr != {mac}" in r for r in run["rules"]
        ), (side, run["rules"])
        assert any("drop" in r for r in run["rules"]), (side, run["rules"])
        run["del"].ok()
        assert run["rules_del"] == [], side

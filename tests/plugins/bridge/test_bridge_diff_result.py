"""Differential tests: The ADD result against the reference's: dns, IPAM's
routes, each result version.

The method, and what differs by design: tests/helpers/bridge_diff.py."""

from __future__ import annotations

import pytest
from helpers.bridge_diff import (
    DIFF_MARKS,
    DL,
    DUAL,
    REF,
    SIDES,
    V4,
    add_del_scenario,
    assert_clean_del,
    assert_same,
    assert_same_add,
    both,
    bridge_conf,
    c1_of,
    eth0_of,
    ip_json,
    normalize_result,
    result_matches_kernel,
)
from helpers.cni import call_plugin

pytestmark = DIFF_MARKS


RESOLV = "/etc/cni/net.d/resolv.conf"


RESOLV_TEXT = "nameserver 192.0.2.53\\nsearch ipam.test\\noptions ndots:3\\n"


WRITE_RESOLV = f"printf '{RESOLV_TEXT}' > {RESOLV}"


def test_dns():
    """dns in the config overrides IPAM's.  Difference: without dns in the
    config the reference 1.1.1 still replaces IPAM's dns with the config's
    (i.e. returns none); dockline keeps IPAM's.  A dns block with only empty
    fields: no dns from either."""
    ipam = {"type": "host-local", "ranges": [V4], "resolvConf": RESOLV}
    ipam_dns = {"nameservers": ["192.0.2.53"], "search": ["ipam.test"], "options": ["ndots:3"]}
    confs = {
        "c1": bridge_conf(ipam=ipam, dns={"nameservers": ["198.51.100.1"], "domain": "conf.test"}),
        "c2": bridge_conf(ipam=ipam),
        "c3": bridge_conf(ipam=ipam, dns={"nameservers": [], "search": []}),
    }

    def scenario(side):
        side.netns(*confs)
        side.sh(WRITE_RESOLV)
        hl_conf = {
            **bridge_conf(ipam=dict(ipam, dataDir="/var/lib/cni/standalone")),
            "type": "host-local",
        }
        ipam_alone = call_plugin(
            side.sb,
            side.bindir / "host-local",
            "ADD",
            hl_conf,
            containerid="x",
            netns="/run/netns/c1",
            ifname="eth9",
            path=str(side.bindir),
        )
        out = {"ipam": ipam_alone.ok().json}
        for ns, conf in confs.items():
            out[ns] = side.add(conf, ns=ns).ok().json["dns"]
        return out

    runs = both(scenario)
    for side in SIDES:
        assert runs[side]["ipam"]["dns"] == ipam_dns, side  # host-local does read resolvConf
        assert runs[side]["c1"] == {"nameservers": ["198.51.100.1"], "domain": "conf.test"}, side
    assert runs[REF]["c2"] == {}
    assert runs[DL]["c2"] == ipam_dns
    assert runs[REF]["c3"] == runs[DL]["c3"] == {}


def test_ipam_default_route_without_gateway_and_isDefaultGateway():
    """Difference (reference bug): IPAM returns a default route without gw
    and isDefaultGateway is set: the reference adds its own default route
    next to IPAM's and fails with "file exists"; dockline replaces IPAM's
    gateway-less default route with one via the gateway."""
    conf = bridge_conf(
        ipam={"type": "host-local", "ranges": [V4], "routes": [{"dst": "0.0.0.0/0"}]},
        isDefaultGateway=True,
    )
    runs = both(add_del_scenario(conf))
    ref = runs[REF]["add"]
    assert ref.code != 0 and "file exists" in ref.json["msg"]
    dl = runs[DL]["add"].ok().json
    assert dl["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}]
    assert [r for r in c1_of(runs[DL]["snap"])["routes4"] if r["dst"] == "default"] == [
        {"dst": "default", "gateway": "10.1.2.1", "dev": "eth0"}
    ]
    runs[DL]["del"].ok()
    assert runs[DL]["snap_del"]["ports"] == [] and runs[DL]["snap_del"]["ipam"] == {}


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_result_per_version(version):
    conf = bridge_conf(version, DUAL, isDefaultGateway=True)
    runs = both(add_del_scenario(conf))
    ref = runs[REF]["add"].ok().json
    assert ref["cniVersion"] == version
    assert len(ref["interfaces"]) == 3 and ref["interfaces"][2]["sandbox"] == "/run/netns/c1"
    ips = [
        {"interface": 2, "address": "10.1.2.2/24", "gateway": "10.1.2.1"},
        {"interface": 2, "address": "fd00:1::2/64", "gateway": "fd00:1::1"},
    ]
    if version != "1.0.0":
        ips[0]["version"], ips[1]["version"] = "4", "6"
    assert ref["ips"] == ips
    assert ref["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "10.1.2.1"},
        {"dst": "::/0", "gw": "fd00:1::1"},
    ]
    assert ref["dns"] == {}
    assert_same_add(runs)
    assert_clean_del(runs)


def test_result_1_1_0_dockline_only():
    """The reference stops at 1.0.0; dockline's 1.1.0 result is the
    reference's 1.0.0 one plus the container interface's mtu (an mtu on the
    host-side interfaces is optional, the real one if given)."""
    conf = bridge_conf("1.0.0", DUAL, isDefaultGateway=True, mtu=1450)
    conf11 = dict(conf, cniVersion="1.1.0")

    def scenario(side):
        side.netns("c1")
        out = {"add": side.add(conf if side.name == REF else conf11)}
        out["snap"] = side.snapshot()
        if side.name == DL:
            out["check"] = side.check(conf11, out["add"].json)
            out["links"] = {l["ifname"]: l for l in ip_json(side.sb, "ip", "-j", "link", "show")}
        return out

    runs = both(scenario)
    ref, dl = runs[REF]["add"].ok().json, runs[DL]["add"].ok().json
    result_matches_kernel(dl, runs[DL]["snap"])
    assert dl["cniVersion"] == "1.1.0"
    assert dl["interfaces"][2]["mtu"] == 1450 == eth0_of(runs[DL]["snap"])["mtu"]
    for iface in dl["interfaces"][:2]:
        if "mtu" in iface:
            assert iface["mtu"] == runs[DL]["links"][iface["name"]]["mtu"], iface
    assert all("mtu" not in i for i in ref["interfaces"])
    as_1_0 = {
        **dl,
        "cniVersion": "1.0.0",
        "interfaces": [{k: v for k, v in i.items() if k != "mtu"} for i in dl["interfaces"]],
    }
    assert_same(normalize_result(ref, REF), normalize_result(as_1_0, DL), "result")
    runs[DL]["check"].ok()

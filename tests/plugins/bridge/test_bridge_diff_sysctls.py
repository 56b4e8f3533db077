"""Differential tests: Sysctls against the reference: the container's per
address family, the bridge's accept_ra, DAD.

The method, and what differs by design: tests/helpers/bridge_diff.py."""

from __future__ import annotations

import pytest
from helpers.bridge_diff import (
    BRIDGE,
    DIFF_MARKS,
    DL,
    REF,
    SIDES,
    V4,
    V6,
    add_del_scenario,
    assert_clean_del,
    assert_same,
    assert_same_add,
    both,
    bridge_conf,
    eth0_of,
)

pytestmark = DIFF_MARKS


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_container_sysctls_single_family(family):
    """DROP-IN: with IPAM the reference sets accept_dad=0 (unless enabledad)
    and arp_notify=1 on the container interface whatever the address
    families; dockline only touches the sysctl of the family it configures,
    so an IPv4-only container keeps DAD on its IPv6 link-local address and an
    IPv6-only one keeps arp_notify=0."""
    conf = bridge_conf(ranges=[V4] if family == "v4" else [V6], isGateway=True)
    runs = both(add_del_scenario(conf))
    ref = eth0_of(runs[REF]["snap"])["sysctl"]
    assert ref == {"net/ipv6/conf/eth0/accept_dad": "0", "net/ipv4/conf/eth0/arp_notify": "1"}
    assert_same(ref, eth0_of(runs[DL]["snap"])["sysctl"], "container sysctls")


@pytest.mark.parametrize("pre", ["", f"ip link add {BRIDGE} type bridge"], ids=["new", "existing"])
def test_bridge_accept_ra(pre):
    """DROP-IN: the reference sets net.ipv6.conf.<bridge>.accept_ra=0 ("we
    want to own the routes for this interface"), so router advertisements
    sent by a container do not configure the host; dockline leaves the
    default (1)."""
    conf = bridge_conf(isGateway=True)

    def scenario(side):
        side.netns("c1")
        if pre:
            side.sh(pre)
        side.add(conf).ok()
        return side.sh(f"cat /proc/sys/net/ipv6/conf/{BRIDGE}/accept_ra").stdout.strip()

    runs = both(scenario)
    assert runs[REF] == "0"
    assert runs[DL] == runs[REF]


def test_enabledad_ipv6():
    """enabledad: accept_dad stays on, and the address has finished DAD when
    ADD returns (the reference waits for it to settle)."""
    conf = bridge_conf(ranges=[V6], isGateway=True, enabledad=True)
    runs = both(add_del_scenario(conf))
    for side in SIDES:
        eth0 = eth0_of(runs[side]["snap"])
        assert eth0["sysctl"]["net/ipv6/conf/eth0/accept_dad"] == "1", side
        assert eth0["addrs"] == [("inet6", "fd00:1::2", 64, "global", None)], side
        # DROP-IN: the reference returns only once fd00:1::2 is usable
        assert eth0["tentative"] == [], f"{side}: {eth0['tentative']} still tentative after ADD"
    assert_same_add(runs)
    assert_clean_del(runs)

"""dockline's static IPAM against the reference (/usr/lib/cni/static 1.1.1).

Reference behaviour the tests pin down (1.1.1):
- CNI_ARGS IP=<cidr>[,<cidr>] is *appended* to the configured addresses;
  GATEWAY=<ip>[,<ip>] applies only to those CNI_ARGS addresses whose subnet
  contains it;
- args.cni.ips replaces the configured and CNI_ARGS addresses (gateways
  dropped); runtimeConfig.ips replaces everything (it wins over both);
- every address must be in CIDR notation;
- DEL does nothing; CHECK needs prevResult and fails only when a
  configured address is present there with another gateway.
"""

from __future__ import annotations

import copy

import pytest
from helpers import ipam as H
from helpers.cni import call_plugin
from helpers.paths import REFERENCE_BIN

Call, differential = H.Call, H.differential
VERSIONS = ["0.3.1", "0.4.0", "1.0.0"]

FULL_IPAM = {
    "type": "static",
    "addresses": [
        {"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
        {"address": "3ffe:ffff:0:01ff::1/64", "gateway": "3ffe:ffff:0::1"},
    ],
    "routes": [
        {"dst": "0.0.0.0/0"},
        {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
        {"dst": "3ffe:ffff:0:01ff::/64", "gw": "3ffe:ffff:0::FE"},
    ],
    "dns": {
        "nameservers": ["8.8.8.8", "2001:4860:4860::8888"],
        "domain": "example.com",
        "search": ["example.com", "corp.example.com"],
        "options": ["ndots:2", "rotate"],
    },
}
IPAMS = {
    "full": FULL_IPAM,
    "minimal": {"type": "static", "addresses": [{"address": "10.10.0.1/24"}]},
    "no-gateways": {
        "type": "static",
        "addresses": [{"address": "10.10.0.1/24"}, {"address": "fd00::1/64"}],
    },
    "several-per-family": {
        "type": "static",
        "addresses": [
            {"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
            {"address": "10.20.0.1/16"},
            {"address": "fd00::1/64"},
            {"address": "fd01::1/64", "gateway": "fd01::fe"},
        ],
    },
    "host-address-32": {"type": "static", "addresses": [{"address": "10.10.0.1/32"}]},
    "non-canonical-v6": {
        "type": "static",
        "addresses": [{"address": "FD00:0000:0000::0001/64", "gateway": "FD00::00FE"}],
    },
    "gateway-outside-subnet": {
        "type": "static",
        "addresses": [{"address": "10.10.0.1/24", "gateway": "10.99.0.1"}],
    },
    "no-addresses": {"type": "static", "addresses": [], "routes": [{"dst": "0.0.0.0/0"}]},
    "dns-only": {"type": "static", "dns": {"nameservers": ["192.0.2.53"]}},
}


def conf(version="1.0.0", ipam=None, **top):
    c = {
        "cniVersion": version,
        "name": "net1",
        "type": "bridge",
        "ipam": copy.deepcopy(ipam if ipam is not None else FULL_IPAM),
    }
    c.update(top)
    return c


def reference_add(sb, config, args=None):
    return call_plugin(sb, REFERENCE_BIN / "static", "ADD", config, args=args).ok().json


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", sorted(IPAMS))
def test_add_del_check(sandbox, dockline_bin, version, kind):
    c = conf(version, IPAMS[kind])
    prev = reference_add(sandbox, c)
    checked = dict(c, prevResult=prev)
    calls = [Call("ADD", c), Call("DEL", c), Call("DEL", c, netns=None), Call("CHECK", checked)]
    ref, dl = differential(dockline_bin, "static", calls)
    assert ref[0].result == prev and ref[0].result["cniVersion"] == version
    assert [o.ok for o in ref] == [True, True, True, version != "0.3.1"]
    assert ref[-1].snap.files == {}


def test_full_result_values(dockline_bin):
    ref, dl = differential(dockline_bin, "static", [Call("ADD", conf())])
    expected = {
        "cniVersion": "1.0.0",
        "ips": [
            {"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
            {"address": "3ffe:ffff:0:1ff::1/64", "gateway": "3ffe:ffff::1"},
        ],
        "routes": [
            {"dst": "0.0.0.0/0"},
            {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
            {"dst": "3ffe:ffff:0:1ff::/64", "gw": "3ffe:ffff::fe"},
        ],
        "dns": FULL_IPAM["dns"],
    }
    assert ref[0].result == expected
    assert dl[0].result == expected


def test_route_dst_with_host_bits(dockline_bin):
    """The upstream README's own example has a route to
    3ffe:ffff:0:01ff::1/64; the reference accepts it and keeps the host
    bits (canonicalised) in the result."""
    ipam = dict(
        IPAMS["minimal"], routes=[{"dst": "3ffe:ffff:0:01ff::1/64"}, {"dst": "10.10.7.9/24"}]
    )
    ref, dl = differential(dockline_bin, "static", [Call("ADD", conf("1.0.0", ipam))])
    assert ref[0].result["routes"] == [{"dst": "3ffe:ffff:0:1ff::1/64"}, {"dst": "10.10.7.9/24"}]


# ------------------------------------------------------------------ overrides
OVERRIDES = {
    # name: (top-level config keys, CNI_ARGS)
    "cni-args-appended": ({}, "IP=10.10.0.50/24;GATEWAY=10.10.0.9"),
    "cni-args-podman": (
        {},
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=x;"
        "IP=10.10.0.50/24,fd00::5/64;GATEWAY=10.10.0.9,fd00::1",
    ),
    "cni-args-gateway-matches-nothing": ({}, "IP=10.10.0.50/24;GATEWAY=192.0.2.1"),
    "cni-args-ip-only": ({}, "IP=10.30.0.5/16"),
    "args-cni-ips": ({"args": {"cni": {"ips": ["10.10.0.60/24", "fd00::60/64"]}}}, None),
    "args-cni-ips-beat-cni-args": (
        {"args": {"cni": {"ips": ["10.10.0.60/24"]}}},
        "IP=10.10.0.50/24;GATEWAY=10.10.0.9",
    ),
    "runtime-config-ips": ({"runtimeConfig": {"ips": ["10.10.0.70/24"]}}, None),
    "runtime-config-beats-all": (
        {
            "runtimeConfig": {"ips": ["10.10.0.70/24", "fd00::70/64"]},
            "args": {"cni": {"ips": ["10.10.0.60/24"]}},
        },
        "IP=10.10.0.50/24;GATEWAY=10.10.0.9",
    ),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(OVERRIDES))
def test_overrides(dockline_bin, version, case):
    top, args = OVERRIDES[case]
    c = conf(version, **copy.deepcopy(top))
    ref, dl = differential(dockline_bin, "static", [Call("ADD", c, args=args)])
    addrs = ref[0].ips()
    if case.startswith("runtime-config"):
        assert addrs == top["runtimeConfig"]["ips"]
    elif case.startswith("args-cni-ips"):
        assert addrs == top["args"]["cni"]["ips"]
    else:
        assert addrs[:2] == ["10.10.0.1/24", "3ffe:ffff:0:1ff::1/64"] and len(addrs) > 2


def test_cni_args_gateways(dockline_bin):
    c = conf("1.0.0", IPAMS["minimal"])
    ref, dl = differential(
        dockline_bin,
        "static",
        [Call("ADD", c, args="IP=10.10.0.50/24,fd00::5/64;GATEWAY=fd00::1,10.10.0.9")],
    )
    assert ref[0].result["ips"] == [
        {"address": "10.10.0.1/24"},
        {"address": "10.10.0.50/24", "gateway": "10.10.0.9"},
        {"address": "fd00::5/64", "gateway": "fd00::1"},
    ]


def test_cni_args_without_configured_addresses(dockline_bin):
    c = conf("1.0.0", {"type": "static"})
    ref, dl = differential(
        dockline_bin, "static", [Call("ADD", c, args="IP=10.10.0.50/24;GATEWAY=10.10.0.9")]
    )
    assert ref[0].result["ips"] == [{"address": "10.10.0.50/24", "gateway": "10.10.0.9"}]


# ------------------------------------------------------------------ CHECK
CHECK_PREV = {
    "matches": (
        [
            {"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
            {"address": "3ffe:ffff:0:1ff::1/64", "gateway": "3ffe:ffff::1"},
        ],
        True,
    ),
    "other-gateway": ([{"address": "10.10.0.1/24", "gateway": "10.10.0.9"}], False),
    "no-gateway-in-prev": ([{"address": "10.10.0.1/24"}], False),
}


@pytest.mark.parametrize("case", sorted(CHECK_PREV))
def test_check(dockline_bin, case):
    ips, ok = CHECK_PREV[case]
    c = conf("1.0.0", prevResult={"cniVersion": "1.0.0", "ips": ips})
    ref, dl = differential(dockline_bin, "static", [Call("CHECK", c)])
    assert ref[0].ok == ok


def test_check_address_missing(dockline_bin):
    """Deliberate: the reference's CHECK passes when a configured address is
    absent from the cached result (it only compares gateways of addresses it
    finds); dockline's fails with code 101."""
    c = conf("1.0.0", prevResult={"cniVersion": "1.0.0", "ips": [{"address": "10.10.0.99/24"}]})
    ref, dl = H.pair(dockline_bin, "static", [Call("CHECK", c)])
    assert ref[0].ok
    assert H.assert_cni_error(dl[0].run)["code"] == 101


def test_check_without_prev_result(dockline_bin):
    ref, dl = differential(dockline_bin, "static", [Call("CHECK", conf("1.0.0"))])
    assert not ref[0].ok


# ------------------------------------------------------------------ errors
ERRORS = {
    "cni-args-ip-without-prefix": (conf(), "IP=10.10.0.50"),
    "cni-args-bad-gateway": (conf(), "IP=10.10.0.50/24;GATEWAY=foo"),
    "cni-args-unknown-key": (conf(), "FOO=bar;IP=10.10.0.50/24"),
    "runtime-config-without-prefix": (conf(runtimeConfig={"ips": ["10.10.0.70"]}), None),
    "args-cni-ips-bad": (conf(args={"cni": {"ips": ["nonsense"]}}), None),
    "address-without-prefix": (
        conf("1.0.0", {"type": "static", "addresses": [{"address": "10.10.0.1"}]}),
        None,
    ),
    "bad-address": (
        conf("1.0.0", {"type": "static", "addresses": [{"address": "10.10.0.300/24"}]}),
        None,
    ),
    "two-v4-at-0.2.0": (conf("0.2.0", IPAMS["several-per-family"]), None),
    "unknown-version": (conf("9.9.9"), None),
    "malformed-json": ("{bad", None),
    "no-name": ({"cniVersion": "1.0.0", "type": "bridge", "ipam": FULL_IPAM}, None),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors(dockline_bin, case):
    c, args = ERRORS[case]
    ref, dl = differential(dockline_bin, "static", [Call("ADD", c, args=args)])
    assert not ref[0].ok


IPAM_LEVEL_ERRORS = [
    "cni-args-ip-without-prefix",
    "cni-args-bad-gateway",
    "cni-args-unknown-key",
    "runtime-config-without-prefix",
    "bad-address",
    "two-v4-at-0.2.0",
]


@pytest.mark.parametrize("case", IPAM_LEVEL_ERRORS)
def test_del_ignores_ipam_config(dockline_bin, case):
    """The reference's static DEL has nothing to release and does not look
    at the ipam section: DEL succeeds even where ADD fails."""
    c, args = ERRORS[case]
    ref, dl = differential(dockline_bin, "static", [Call("DEL", c, args=args)])
    assert ref[0].ok and ref[0].run.stdout == ""


@pytest.mark.parametrize("var", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"])
def test_missing_environment(dockline_bin, var):
    kw = {"CNI_CONTAINERID": "containerid", "CNI_IFNAME": "ifname", "CNI_NETNS": "netns"}[var]
    call = Call("ADD", conf())
    setattr(call, kw, None)
    ref, dl = differential(dockline_bin, "static", [call])
    err = H.assert_cni_error(dl[0].run, 4, msg_contains=var)
    assert not ref[0].ok and err


# ------------------------------------------------------------------ versions
def test_version(sandbox, dockline_bin):
    out = (
        call_plugin(
            sandbox,
            dockline_bin / "static",
            "VERSION",
            '{"cniVersion":"1.0.0"}',
            containerid=None,
            ifname=None,
            netns=None,
        )
        .ok()
        .json
    )
    assert out["supportedVersions"][:6] == H.REF_VERSIONS
    assert set(out["supportedVersions"]) <= set(H.DOCKLINE_VERSIONS)


def test_1_1_0_answers_like_1_0_0(sandbox, dockline_bin):
    """If dockline's static claims 1.1.0, it answers like 1.0.0 there."""
    out = (
        call_plugin(
            sandbox,
            dockline_bin / "static",
            "VERSION",
            '{"cniVersion":"1.1.0"}',
            containerid=None,
            ifname=None,
            netns=None,
        )
        .ok()
        .json
    )
    if "1.1.0" not in out["supportedVersions"]:
        pytest.skip("dockline static does not claim 1.1.0")
    calls = [
        Call("ADD", conf("1.0.0")),
        Call("ADD", conf("1.0.0", runtimeConfig={"ips": ["10.10.0.70/24"]})),
        Call("DEL", conf("1.0.0")),
    ]
    ref, dl = differential(dockline_bin, "static", calls, dockline_version="1.1.0")
    assert dl[0].result["cniVersion"] == "1.1.0"
    assert dl[1].result["ips"] == [{"address": "10.10.0.70/24"}]

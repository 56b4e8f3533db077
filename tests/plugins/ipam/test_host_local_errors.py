"""dockline host-local: error paths, GC and STATUS.

Every failing call must print a CNI error object on stdout ({cniVersion?,
code, msg, details?}, no traceback), exit non-zero, use a spec code (or one
dockline documents in lib/dockline/cni/errors.py, never the catch-all 999)
and leave the store exactly as it was.  The expected codes follow the
reference where it uses a spec code (4 for the environment, 6 for
undecodable input, 1 for versions, 7 for the network name) and the spec's
"invalid network configuration" (7) for configs the reference rejects with
its catch-all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ipam as H
from helpers.cni import call_plugin
from helpers.paths import REFERENCE_BIN

hl_conf = H.hl_conf
NET1 = "/var/lib/cni/networks/net1/"
SEED = {
    NET1 + "10.1.2.2": b"c0\r\neth0",
    NET1 + "last_reserved_ip.0": b"10.1.2.2",
    NET1 + "lock": b"",
}


@pytest.fixture
def hl(dockline_bin):
    return dockline_bin / "host-local"


@pytest.fixture
def seeded(sandbox):
    """A store holding one reservation (c0/eth0 -> 10.1.2.2)."""
    H.write_files(sandbox, SEED)
    return sandbox


def is_reference(binary) -> bool:
    return Path(binary).parent.resolve() == REFERENCE_BIN.resolve()


def expect_error(sb, binary, command, conf, code=None, *, msg_contains=None, **kw):
    before = H.snapshot(sb)
    run = call_plugin(sb, binary, command, conf, **kw)
    if is_reference(binary):
        # self-test (DOCKLINE_CNI_BIN=/usr/lib/cni): the reference may use 999
        err = H.assert_cni_error(run)
        if err["code"] != 999:
            H.assert_cni_error(run, code, msg_contains=msg_contains)
    else:
        err = H.assert_cni_error(run, code, msg_contains=msg_contains)
        H.assert_not_catchall(err)
    after = H.snapshot(sb)
    assert after == before, (
        f"store changed by a failed {command}:\nbefore {before.files}\nafter  {after.files}"
    )
    return err


# ------------------------------------------------------------------ decoding, versions, name
@pytest.mark.parametrize(
    "stdin", ["{bad", "", "not json", "[1, 2]", '"string"', '{"cniVersion": "1.0.0",}']
)
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_malformed_json(seeded, hl, command, stdin):
    expect_error(seeded, hl, command, stdin, 6)


@pytest.mark.parametrize("version", ["9.9.9", "0.5.0", "1.2.0", "2.0.0", "1.0"])
@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_unknown_cni_version(seeded, hl, command, version):
    expect_error(seeded, hl, command, hl_conf(version), 1)


@pytest.mark.parametrize("version", ["9.9.9", "1.0"])
def test_del_with_unknown_cni_version_still_releases(seeded, hl, version):
    """Deliberate (the reference answers 1): DEL cleans up whatever the
    config's version, or the runtime leaks the attachment for good."""
    if is_reference(hl):
        pytest.skip("dockline's documented difference")
    call_plugin(seeded, hl, "DEL", hl_conf(version), containerid="c0").ok()
    assert H.snapshot(seeded).reservations() == {}


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_missing_name(seeded, hl, command):
    conf = hl_conf()
    del conf["name"]
    expect_error(seeded, hl, command, conf, 7)
    expect_error(seeded, hl, command, dict(conf, name=""), 7)


@pytest.mark.parametrize("name", ["../evil", "a/b", ".", "..", "-net", "net 1"])
@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_hostile_network_name(seeded, hl, command, name):
    expect_error(seeded, hl, command, hl_conf(name=name), 7)


def test_overlong_network_name(seeded, hl):
    """Valid characters, but longer than a file name may be (the reference
    fails in mkdir with its catch-all)."""
    expect_error(seeded, hl, "ADD", hl_conf(name="n" * 300))


# ------------------------------------------------------------------ environment
@pytest.mark.parametrize(
    "command,var",
    [
        ("ADD", "CNI_CONTAINERID"),
        ("ADD", "CNI_IFNAME"),
        ("ADD", "CNI_NETNS"),
        ("DEL", "CNI_CONTAINERID"),
        ("DEL", "CNI_IFNAME"),
        ("CHECK", "CNI_CONTAINERID"),
        ("CHECK", "CNI_IFNAME"),
        ("CHECK", "CNI_NETNS"),
    ],
)
def test_missing_environment(seeded, hl, command, var):
    kw = {"CNI_CONTAINERID": "containerid", "CNI_IFNAME": "ifname", "CNI_NETNS": "netns"}
    expect_error(seeded, hl, command, hl_conf(), 4, msg_contains=var, **{kw[var]: None})


@pytest.mark.parametrize(
    "cid", ["../x", "a/b", "", "-x", ".x", "_x", "x y", "x\ny", "c0/../c0", "x;y"]
)
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_hostile_container_id(seeded, hl, command, cid):
    expect_error(seeded, hl, command, hl_conf(), 4, containerid=cid)


@pytest.mark.parametrize("ifname", ["a/b", "..", ".", "a" * 16, "a b", "a:b", "a\tb", ""])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_hostile_ifname(seeded, hl, command, ifname):
    expect_error(seeded, hl, command, hl_conf(), 4, ifname=ifname)


def test_ifname_of_15_chars_is_fine(seeded, hl):
    run = call_plugin(seeded, hl, "ADD", hl_conf(), ifname="a" * 15).ok()
    assert run.json["ips"][0]["address"] == "10.1.2.3/24"


def test_unknown_command(seeded, hl):
    expect_error(seeded, hl, "FROB", hl_conf(), 4)


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.3.1"])
def test_check_before_0_4_0(seeded, hl, version):
    expect_error(seeded, hl, "CHECK", hl_conf(version), 1, containerid="c0")


# ------------------------------------------------------------------ range configuration
BAD_RANGES = {
    "v4-31": [[{"subnet": "10.1.2.0/31"}]],
    "v4-32": [[{"subnet": "10.1.2.0/32"}]],
    "v6-127": [[{"subnet": "fd00::/127"}]],
    "v6-128": [[{"subnet": "fd00::/128"}]],
    "overlapping-sets": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.2.128/25"}]],
    "overlapping-in-set": [[{"subnet": "10.1.2.0/24"}, {"subnet": "10.1.2.0/25"}]],
    "overlapping-v6-sets": [[{"subnet": "fd00::/64"}], [{"subnet": "fd00::/48"}]],
    "mixed-family-set": [[{"subnet": "10.1.2.0/24"}, {"subnet": "fd00::/64"}]],
    "range-start-outside": [[{"subnet": "10.1.2.0/24", "rangeStart": "10.1.3.5"}]],
    "range-end-outside": [[{"subnet": "10.1.2.0/24", "rangeEnd": "10.1.3.5"}]],
    "range-start-after-end": [
        [{"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.20", "rangeEnd": "10.1.2.10"}]
    ],
    "range-start-other-family": [[{"subnet": "10.1.2.0/24", "rangeStart": "fd00::5"}]],
    "host-bits-set": [[{"subnet": "10.1.2.5/24"}]],
    "not-a-subnet": [[{"subnet": "nonsense"}]],
    "no-subnet": [[{"rangeStart": "10.1.2.5"}]],
    "empty-set": [[]],
    "no-sets": [],
}


@pytest.mark.parametrize("case", sorted(BAD_RANGES))
def test_bad_ranges(seeded, hl, case):
    expect_error(seeded, hl, "ADD", hl_conf(ranges=BAD_RANGES[case]), 7, containerid="c0")


@pytest.mark.parametrize("case", sorted(BAD_RANGES))
def test_del_with_bad_ranges_still_releases(seeded, hl, case):
    """Deliberate (the reference fails): DEL does not read the ranges, so a
    config that went bad after ADD still frees the attachment's address."""
    if is_reference(hl):
        pytest.skip("dockline's documented difference")
    before = H.snapshot(seeded)
    call_plugin(seeded, hl, "DEL", hl_conf(ranges=BAD_RANGES[case]), containerid="c0").ok()
    after = H.snapshot(seeded)
    assert after.reservations() == {}
    assert after.under("networks/net1") == {
        k: v for k, v in before.under("networks/net1").items() if k != "10.1.2.2"
    }


@pytest.mark.parametrize("ipam", [None, "host-local", ["x"]])
def test_bad_ipam_section(seeded, hl, ipam):
    conf = {"cniVersion": "1.0.0", "name": "net1", "type": "bridge"}
    if ipam is not None:
        conf["ipam"] = ipam
    expect_error(seeded, hl, "ADD", conf, 7)


def test_legacy_subnet_too_small(seeded, hl):
    conf = hl_conf(subnet="10.1.2.0/31")
    expect_error(seeded, hl, "ADD", conf, 7)


def test_bad_route(seeded, hl):
    expect_error(seeded, hl, "ADD", hl_conf(routes=[{"dst": "nonsense"}]), 7)


def test_gateway_outside_subnet_is_an_error(seeded, hl):
    """As upstream host-local (Debian's 1.1.1 still accepted it): a gateway
    must lie in its subnet."""
    conf = hl_conf(ranges=[[{"subnet": "10.1.2.0/29", "gateway": "192.0.2.1"}]])
    expect_error(seeded, hl, "ADD", conf)


def test_resolv_conf_missing(seeded, hl):
    expect_error(seeded, hl, "ADD", hl_conf(resolvConf="/etc/cni/net.d/absent"))


def test_two_addresses_per_family_before_0_3_0(seeded, hl):
    conf = hl_conf("0.2.0", ranges=[[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}]])
    expect_error(seeded, hl, "ADD", conf)


# ------------------------------------------------------------------ allocation failures
@pytest.mark.parametrize(
    "args",
    [
        "IP=10.9.9.9",
        "IP=fd00::9",
        "IP=10.1.2.1",
        "IP=10.1.2.255",
        "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.2.0",
    ],
)
def test_requested_ip_outside_every_range(seeded, hl, args):
    """Nothing is kept.  (The reference still advances last_reserved_ip for
    the range it allocated from before noticing; test_host_local_diff
    holds dockline to that, so only reservations are compared here.)"""
    before = H.snapshot(seeded)
    run = call_plugin(seeded, hl, "ADD", hl_conf(), args=args)
    err = H.assert_cni_error(run)
    if not is_reference(hl):
        H.assert_not_catchall(err)
    assert H.snapshot(seeded).reservations() == before.reservations()


def test_requested_ip_taken(seeded, hl):
    expect_error(seeded, hl, "ADD", hl_conf(), args="IP=10.1.2.2")


@pytest.mark.parametrize("args", ["IP=foo", "IP=10.1.2.300", "IP=10.1.2.5/33"])
def test_requested_ip_unparsable(seeded, hl, args):
    expect_error(seeded, hl, "ADD", hl_conf(), args=args)


def test_requested_ip_unparsable_in_runtime_config(seeded, hl):
    expect_error(seeded, hl, "ADD", dict(hl_conf(), runtimeConfig={"ips": ["10.1.2.300/24"]}))


def test_exhausted_range(sandbox, hl):
    conf = hl_conf(
        ranges=[[{"subnet": "10.1.2.0/29", "rangeStart": "10.1.2.2", "rangeEnd": "10.1.2.3"}]]
    )
    call_plugin(sandbox, hl, "ADD", conf, containerid="a").ok()
    call_plugin(sandbox, hl, "ADD", conf, containerid="b").ok()
    err = expect_error(sandbox, hl, "ADD", conf, containerid="c")
    assert err["code"] not in (1, 4, 6, 7), f"exhaustion is not a config/env error: {err}"


def test_duplicate_allocation(seeded, hl):
    expect_error(seeded, hl, "ADD", hl_conf(), containerid="c0")


def test_check_without_reservation(seeded, hl):
    expect_error(seeded, hl, "CHECK", hl_conf(), containerid="nobody")


@pytest.mark.parametrize(
    "args", ["FOO=bar", "IP=10.1.2.50;FOO=bar", "IgnoreUnknown=0;FOO=bar", "K8S_POD_NAME=x"]
)
def test_unknown_cni_args_key(seeded, hl, args):
    expect_error(seeded, hl, "ADD", hl_conf(), args=args)


@pytest.mark.parametrize("args", ["FOO", "=x", "IP"])
def test_malformed_cni_args(seeded, hl, args):
    expect_error(seeded, hl, "ADD", hl_conf(), args=args)


@pytest.mark.parametrize("ignore", ["1", "true", "True"])
def test_ignore_unknown_accepts_unknown_keys(seeded, hl, ignore):
    run = call_plugin(
        seeded,
        hl,
        "ADD",
        hl_conf(),
        args=f"IgnoreUnknown={ignore};K8S_POD_NAME=x;K8S_POD_INFRA_CONTAINER_ID=y",
    ).ok()
    assert run.json["ips"][0]["address"] == "10.1.2.3/24"


# ------------------------------------------------------------------ GC (1.1.0)
def gc_conf(attachments, **ipam):
    conf = hl_conf("1.1.0", **ipam)
    if attachments is not None:
        conf["cni.dev/valid-attachments"] = [
            {"containerID": c, "ifname": i} for c, i in attachments
        ]
    return conf


GC_STORE = {
    NET1 + "10.1.2.2": b"keep\r\neth0",
    NET1 + "10.1.2.3": b"gone\r\neth0",
    NET1 + "10.1.2.4": b"keep\r\neth1",  # same container, other interface
    NET1 + "10.1.2.5": b"legacy",  # pre-ifname format, container still valid
    NET1 + "10.1.2.6": b"stale-legacy",  # pre-ifname format, container gone
    NET1 + "fd00:1:2::2": b"keep\r\neth0",
    NET1 + "fd00:1:2::3": b"gone\r\neth0",
    NET1 + "last_reserved_ip.0": b"10.1.2.6",
    NET1 + "last_reserved_ip.1": b"fd00:1:2::3",
    NET1 + "lock": b"",
    "/var/lib/cni/networks/net2/10.1.2.7": b"gone\r\neth0",  # another network: untouched
    "/var/lib/cni/networks/net2/lock": b"",
}
DUAL = [[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00:1:2::/64"}]]


def gc(sb, hl, conf):
    return call_plugin(sb, hl, "GC", conf, containerid=None, ifname=None, netns=None)


def test_gc_releases_unlisted(sandbox, hl):
    H.write_files(sandbox, GC_STORE)
    run = gc(sandbox, hl, gc_conf([("keep", "eth0"), ("legacy", "eth0")], ranges=DUAL))
    assert run.code == 0, run
    assert run.stdout.strip() == ""
    snap = H.snapshot(sandbox)
    assert snap.under("networks/net1") == {
        "10.1.2.2": b"keep\r\neth0",
        "fd00:1:2::2": b"keep\r\neth0",
        "10.1.2.5": b"legacy",
        "last_reserved_ip.0": b"10.1.2.6",
        "last_reserved_ip.1": b"fd00:1:2::3",
        "lock": b"",
    }
    assert snap.under("networks/net2") == {"10.1.2.7": b"gone\r\neth0", "lock": b""}


def test_gc_empty_list_releases_everything(sandbox, hl):
    H.write_files(sandbox, GC_STORE)
    gc(sandbox, hl, gc_conf([], ranges=DUAL)).ok()
    assert H.snapshot(sandbox).under("networks/net1") == {
        "last_reserved_ip.0": b"10.1.2.6",
        "last_reserved_ip.1": b"fd00:1:2::3",
        "lock": b"",
    }


def test_gc_then_add_reuses_and_keeps_round_robin(sandbox, hl):
    conf = hl_conf("1.1.0", ranges=[[{"subnet": "10.1.2.0/29"}]])
    for cid in ("a", "b", "c", "d", "e"):
        call_plugin(sandbox, hl, "ADD", conf, containerid=cid).ok()
    H.assert_cni_error(call_plugin(sandbox, hl, "ADD", conf, containerid="f"))
    gc(
        sandbox,
        hl,
        gc_conf(
            [("a", "eth0"), ("c", "eth0"), ("e", "eth0")], ranges=[[{"subnet": "10.1.2.0/29"}]]
        ),
    ).ok()
    got = [
        call_plugin(sandbox, hl, "ADD", conf, containerid=c).ok().json["ips"][0]["address"]
        for c in ("f", "g")
    ]
    assert got == ["10.1.2.3/29", "10.1.2.5/29"]


def test_gc_custom_data_dir(sandbox, hl):
    d = "/var/lib/cni/custom/net1/"
    H.write_files(
        sandbox,
        {
            d + "10.1.2.2": b"gone\r\neth0",
            d + "10.1.2.3": b"keep\r\neth0",
            d + "lock": b"",
            NET1 + "10.1.2.2": b"gone\r\neth0",
        },
    )
    gc(sandbox, hl, gc_conf([("keep", "eth0")], dataDir="/var/lib/cni/custom")).ok()
    snap = H.snapshot(sandbox)
    assert snap.under("custom/net1") == {"10.1.2.3": b"keep\r\neth0", "lock": b""}
    assert snap.under("networks/net1") == {"10.1.2.2": b"gone\r\neth0"}


def test_gc_without_store(sandbox, hl):
    """Nothing to collect; like the reference's DEL, creating the empty
    network directory and its lock is allowed, nothing else."""
    gc(sandbox, hl, gc_conf([("keep", "eth0")])).ok()
    assert set(H.snapshot(sandbox).files) <= {"networks/net1/lock"}


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_gc_needs_1_1_0(seeded, hl, version):
    conf = gc_conf([], ranges=DUAL)
    conf["cniVersion"] = version
    expect_error(seeded, hl, "GC", conf, 1, containerid=None, ifname=None, netns=None)


@pytest.mark.parametrize(
    "bad",
    [
        {"containerID": "c0", "ifname": "eth0"},
        "x",
        [{"containerID": 5, "ifname": "eth0"}],
        [{"containerID": "c0", "ifname": ["eth0"]}],
        ["c0"],
    ],
    ids=["object", "string", "int-id", "list-ifname", "string-entry"],
)
def test_gc_malformed_attachments(seeded, hl, bad):
    """A list the plugin cannot read must not be taken as "nothing is
    valid": that would release every reservation."""
    conf = hl_conf("1.1.0")
    conf["cni.dev/valid-attachments"] = bad
    expect_error(seeded, hl, "GC", conf, containerid=None, ifname=None, netns=None)


def test_gc_bad_ranges_still_collects(seeded, hl):
    """GC reads only the valid-attachments list and dataDir: garbage
    elsewhere in the config must not keep stale reservations forever."""
    gc(seeded, hl, gc_conf([], ranges=[[{"subnet": "10.1.2.0/31"}]])).ok()
    assert H.snapshot(seeded).reservations() == {}


def test_gc_bad_data_dir_releases_nothing(seeded, hl):
    """A dataDir that is set but invalid cannot be where ADD wrote."""
    before = H.snapshot(seeded)
    gc(seeded, hl, gc_conf([], dataDir="relative/dir")).ok()
    assert H.snapshot(seeded) == before


# ------------------------------------------------------------------ STATUS (1.1.0)
def status(sb, hl, conf):
    return call_plugin(sb, hl, "STATUS", conf, containerid=None, ifname=None, netns=None)


def test_status_ok_with_writable_store(seeded, hl):
    before = H.snapshot(seeded)
    run = status(seeded, hl, hl_conf("1.1.0"))
    assert run.code == 0, run
    assert run.stdout.strip() == ""
    assert H.snapshot(seeded).reservations() == before.reservations()


def test_status_ok_before_first_add(sandbox, hl):
    status(sandbox, hl, hl_conf("1.1.0", dataDir="/var/lib/cni/not-yet")).ok()


def test_status_unwritable_store(sandbox, hl):
    sandbox.sh("mkdir -p /var/lib/cni/ro && mount -t tmpfs -o ro dockline-ro /var/lib/cni/ro")
    expect_error(
        sandbox,
        hl,
        "STATUS",
        hl_conf("1.1.0", dataDir="/var/lib/cni/ro"),
        50,
        containerid=None,
        ifname=None,
        netns=None,
    )


def test_add_to_unwritable_store(sandbox, hl):
    sandbox.sh("mkdir -p /var/lib/cni/ro && mount -t tmpfs -o ro dockline-ro /var/lib/cni/ro")
    expect_error(sandbox, hl, "ADD", hl_conf(dataDir="/var/lib/cni/ro"))


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_status_needs_1_1_0(seeded, hl, version):
    expect_error(
        seeded, hl, "STATUS", hl_conf(version), 1, containerid=None, ifname=None, netns=None
    )


def test_status_bad_config(seeded, hl):
    expect_error(
        seeded,
        hl,
        "STATUS",
        hl_conf("1.1.0", ranges=[[{"subnet": "10.1.2.0/31"}]]),
        7,
        containerid=None,
        ifname=None,
        netns=None,
    )

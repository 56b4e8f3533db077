"""host-local and static against hostile or odd input: scope ids in every
position an address enters, Go's spelling of keys, a store with planted
FIFOs and symlinks, bad dataDirs, and DEL/GC on configs that went bad.

Every refused call must leave /var/lib/cni exactly as it was (files,
bytes, directories); every call runs under a timeout, so a hang is a
failure, not a stuck suite.
"""

from __future__ import annotations

import json

import pytest
from helpers import ipam as H
from helpers.cni import PluginRun

hl_conf = H.hl_conf
NET1 = "/var/lib/cni/networks/net1/"
SEED = {
    NET1 + "10.1.2.2": b"c0\r\neth0",
    NET1 + "last_reserved_ip.0": b"10.1.2.2",
    NET1 + "lock": b"",
}
V6 = [[{"subnet": "fd00:1:2::/64"}]]
DUAL = [[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00:1:2::/64"}]]
TIMEOUT = 15


@pytest.fixture
def hl(dockline_bin):
    return dockline_bin / "host-local"


@pytest.fixture
def static(dockline_bin):
    return dockline_bin / "static"


@pytest.fixture
def seeded(sandbox):
    H.write_files(sandbox, SEED)
    return sandbox


def run(
    sb,
    binary,
    command,
    config,
    *,
    cid="c1",
    ifname="eth0",
    args=None,
    netns="/run/netns/none",
    cwd="/",
) -> PluginRun:
    """call_plugin with a deadline and a chosen working directory."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_PATH": str(binary.parent),
    }
    for key, value in (
        ("CNI_CONTAINERID", cid),
        ("CNI_IFNAME", ifname),
        ("CNI_ARGS", args),
        ("CNI_NETNS", netns),
    ):
        if value is not None:
            env[key] = value
    stdin = config if isinstance(config, (str, bytes)) else json.dumps(config)
    proc = sb.run(
        [
            "sh",
            "-c",
            'cd "$1" && exec timeout -k 2 "$2" "$3"',
            "sh",
            cwd,
            str(TIMEOUT),
            str(binary),
        ],
        input=stdin,
        env=env,
        timeout=TIMEOUT + 10,
    )
    assert proc.returncode != 124, f"{command} hung (killed after {TIMEOUT}s)"
    return PluginRun(proc.returncode, proc.stdout, proc.stderr)


def refused(sb, binary, command, config, code, **kw):
    before = H.snapshot(sb)
    err = H.assert_cni_error(run(sb, binary, command, config, **kw), code)
    H.assert_not_catchall(err)
    after = H.snapshot(sb)
    assert after == before and after.modes == before.modes, (
        f"a refused {command} changed the store:\nbefore {before.files} {sorted(before.dirs)}"
        f"\nafter  {after.files} {sorted(after.dirs)}"
    )
    return err


# ------------------------------------------------------------------ scope ids
ZONES = ["%y", "%eth0", "%y\nx", "%1", "%"]
HL_ZONE_CONFIGS = {
    "subnet": lambda z: hl_conf(ranges=[[{"subnet": f"fd00:1:2::{z}/64"}]]),
    "subnet-zone-after-prefix": lambda z: hl_conf(ranges=[[{"subnet": f"fd00:1:2::/64{z}"}]]),
    "rangeStart": lambda z: hl_conf(
        ranges=[[{"subnet": "fd00:1:2::/64", "rangeStart": f"fd00:1:2::5{z}"}]]
    ),
    "rangeEnd": lambda z: hl_conf(
        ranges=[[{"subnet": "fd00:1:2::/64", "rangeEnd": f"fd00:1:2::9{z}"}]]
    ),
    "gateway": lambda z: hl_conf(
        ranges=[[{"subnet": "fd00:1:2::/64", "gateway": f"fd00:1:2::1{z}"}]]
    ),
    "legacy-subnet": lambda z: hl_conf(subnet=f"fd00:1:2::{z}/64"),
    "legacy-gateway": lambda z: hl_conf(subnet="fd00:1:2::/64", gateway=f"fd00:1:2::1{z}"),
    "route-dst": lambda z: hl_conf(ranges=V6, routes=[{"dst": f"fd99::{z}/64"}]),
    "route-gw": lambda z: hl_conf(ranges=V6, routes=[{"dst": "::/0", "gw": f"fd00:1:2::1{z}"}]),
    "args-cni-ips": lambda z: hl_conf(
        ranges=V6, top={"args": {"cni": {"ips": [f"fd00:1:2::7{z}"]}}}
    ),
    "runtime-ips": lambda z: hl_conf(
        ranges=V6, top={"runtimeConfig": {"ips": [f"fd00:1:2::7{z}"]}}
    ),
    "runtime-ips-prefix": lambda z: hl_conf(
        ranges=V6, top={"runtimeConfig": {"ips": [f"fd00:1:2::7{z}/64"]}}
    ),
    "ip-ranges": lambda z: hl_conf(
        ranges=V6,
        top={
            "runtimeConfig": {
                "ipRanges": [[{"subnet": "fd00:9::/64", "rangeStart": f"fd00:9::5{z}"}]]
            }
        },
    ),
}


@pytest.mark.parametrize("zone", ZONES, ids=repr)
@pytest.mark.parametrize("where", sorted(HL_ZONE_CONFIGS))
def test_host_local_refuses_scope_ids(seeded, hl, where, zone):
    refused(seeded, hl, "ADD", HL_ZONE_CONFIGS[where](zone), 7)


@pytest.mark.parametrize(
    "arg",
    [
        "IP=fd00:1:2::7%y",
        "IP=fd00:1:2::7%eth0/64",
        "IgnoreUnknown=1;IP=fd00:1:2::7%25y",
        "IP=fd00:1:2::8,fd00:1:2::7%y",
    ],
)
def test_host_local_refuses_scope_ids_in_cni_args(seeded, hl, arg):
    refused(seeded, hl, "ADD", hl_conf(ranges=V6), 4, args=arg)


def test_zone_id_does_not_reserve_a_second_name_for_an_address(sandbox, hl):
    """The original bug: fd78::7%y was reserved beside fd78::7, under a
    file named with the zone."""
    conf = hl_conf(ranges=[[{"subnet": "fd78::/64"}]])
    assert run(sandbox, hl, "ADD", conf, cid="a", args="IP=fd78::7").code == 0
    refused(sandbox, hl, "ADD", dict(conf, runtimeConfig={"ips": ["fd78::7%y"]}), 7, cid="b")
    assert sorted(H.snapshot(sandbox).reservations()) == ["fd78::7"]


def test_resolv_conf_nameserver_with_scope_id(seeded, hl):
    H.write_files(seeded, {"/etc/cni/net.d/resolv.conf": "nameserver fe80::1%eth0\n"})
    refused(seeded, hl, "ADD", hl_conf(resolvConf="/etc/cni/net.d/resolv.conf"), 7)


@pytest.mark.parametrize(
    "content",
    [b"nameserver 10.0.0.\xff\n", b"domain a\x00b\n", b"nameserver not-an-address\n"],
    ids=["utf8", "nul", "garbage"],
)
def test_resolv_conf_bad_content(seeded, hl, content):
    H.write_files(seeded, {"/etc/cni/net.d/resolv.conf": content})
    refused(seeded, hl, "ADD", hl_conf(resolvConf="/etc/cni/net.d/resolv.conf"), 7)


def test_resolv_conf_fifo_does_not_hang(seeded, hl):
    seeded.sh("mkfifo /etc/cni/net.d/resolv.conf")
    refused(seeded, hl, "ADD", hl_conf(resolvConf="/etc/cni/net.d/resolv.conf"), 7)


def static_conf(ipam=None, **top):
    conf = {
        "cniVersion": "1.0.0",
        "name": "net1",
        "type": "bridge",
        "ipam": ipam or {"type": "static", "addresses": [{"address": "10.10.0.5/24"}]},
    }
    conf.update(top)
    return conf


STATIC_ZONE_CONFIGS = {
    "address": lambda z: static_conf(
        {"type": "static", "addresses": [{"address": f"fd00::5{z}/64"}]}
    ),
    "gateway": lambda z: static_conf(
        {"type": "static", "addresses": [{"address": "fd00::5/64", "gateway": f"fd00::1{z}"}]}
    ),
    "route-dst": lambda z: static_conf({"type": "static", "routes": [{"dst": f"fd00::{z}/64"}]}),
    "route-gw": lambda z: static_conf(
        {"type": "static", "routes": [{"dst": "::/0", "gw": f"fd00::1{z}"}]}
    ),
    "dns": lambda z: static_conf({"type": "static", "dns": {"nameservers": [f"fe80::1{z}"]}}),
    "args-cni-ips": lambda z: static_conf(args={"cni": {"ips": [f"fd00::5{z}/64"]}}),
    "runtime-ips": lambda z: static_conf(runtimeConfig={"ips": [f"fd00::5{z}/64"]}),
}


@pytest.mark.parametrize("zone", ZONES[:3], ids=repr)
@pytest.mark.parametrize("where", sorted(STATIC_ZONE_CONFIGS))
def test_static_refuses_scope_ids(sandbox, static, where, zone):
    refused(sandbox, static, "ADD", STATIC_ZONE_CONFIGS[where](zone), 7)


@pytest.mark.parametrize("arg", ["IP=fd00::5%y/64", "IP=fd00::5/64;GATEWAY=fd00::1%y"])
def test_static_refuses_scope_ids_in_cni_args(sandbox, static, arg):
    refused(sandbox, static, "ADD", static_conf(), 4, args=arg)


PREV_ZONES = {
    "address": {"ips": [{"address": "10.10.0.5/24"}, {"address": "fd00::5%y/64"}]},
    "gateway": {
        "ips": [{"address": "10.10.0.5/24"}, {"address": "fd00::5/64", "gateway": "fd00::1%y"}]
    },
    "route-dst": {"ips": [{"address": "10.10.0.5/24"}], "routes": [{"dst": "fd00::%y/64"}]},
    "route-gw": {
        "ips": [{"address": "10.10.0.5/24"}],
        "routes": [{"dst": "::/0", "gw": "fe80::1%eth0"}],
    },
    "dns": {"ips": [{"address": "10.10.0.5/24"}], "dns": {"nameservers": ["fe80::1%eth0"]}},
    "020": {"cniVersion": "0.2.0", "ip4": {"ip": "10.10.0.5/24"}, "ip6": {"ip": "fd00::5%1/64"}},
}


@pytest.mark.parametrize("where", sorted(PREV_ZONES))
def test_prev_result_refuses_scope_ids(sandbox, static, where):
    prev = dict({"cniVersion": "1.0.0"}, **PREV_ZONES[where])
    refused(sandbox, static, "CHECK", static_conf(prevResult=prev), 7)


# ------------------------------------------------------------------ types and numbers
BAD_VALUES = {
    "route-priority-huge": f'{{"dst": "0.0.0.0/0", "priority": {2**70}}}',
    "route-priority-bool": '{"dst": "0.0.0.0/0", "priority": true}',
    "route-priority-float": '{"dst": "0.0.0.0/0", "priority": 1.5}',
    "route-priority-negative": '{"dst": "0.0.0.0/0", "priority": -1}',
    "route-mtu-1e999": '{"dst": "0.0.0.0/0", "mtu": 1e999}',
    "route-table-string": '{"dst": "0.0.0.0/0", "table": "5"}',
    "route-scope-256": '{"dst": "0.0.0.0/0", "scope": 256}',
    "route-dst-int": '{"dst": 167772160}',
    "route-dst-netmask": '{"dst": "10.0.0.0/255.0.0.0"}',
    "route-not-object": '"0.0.0.0/0"',
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_route_values(seeded, hl, case):
    text = json.dumps(hl_conf()).replace(
        '"type": "host-local"', f'"type": "host-local", "routes": [{BAD_VALUES[case]}]'
    )
    # 1e999 is refused while decoding the JSON (6), like Go's decoder does
    err = refused(seeded, hl, "ADD", text, None)
    assert err["code"] == (6 if "1e999" in case else 7), err


@pytest.mark.parametrize(
    "ipam",
    [
        {"ranges": [[{"subnet": 10}]]},
        {"ranges": [[{"subnet": True}]]},
        {"ranges": [[{"subnet": "10.1.2.0/24", "rangeStart": ["10.1.2.5"]}]]},
        {"ranges": [[{"subnet": "10.1.2.0/24", "gateway": 3.5}]]},
        {"ranges": "10.1.2.0/24"},
        {"ranges": [["10.1.2.0/24"]]},
        {"ranges": [[{"subnet": "010.1.2.0/24"}]]},
        {"ranges": [[{"subnet": "::ffff:10.1.2.0/120"}]]},
        {"dataDir": 5},
        {"dataDir": ["/x"]},
        {"resolvConf": 7},
        {"resolvConf": "/etc/a\u0000b"},
        {"routes": {"dst": "0.0.0.0/0"}},
    ],
    ids=repr,
)
def test_wrong_types_are_code_7(seeded, hl, ipam):
    refused(seeded, hl, "ADD", hl_conf(**ipam), 7)


PREV_BAD = {
    "interface-past-end": {
        "interfaces": [{"name": "eth0"}],
        "ips": [{"interface": 1, "address": "10.10.0.5/24"}],
    },
    "interface-no-interfaces": {"ips": [{"interface": 0, "address": "10.10.0.5/24"}]},
    "interface-bool": {
        "interfaces": [{"name": "eth0"}],
        "ips": [{"interface": True, "address": "10.10.0.5/24"}],
    },
    "interface-huge": {
        "interfaces": [{"name": "eth0"}],
        "ips": [{"interface": 2**70, "address": "10.10.0.5/24"}],
    },
    "address-int": {"ips": [{"address": 5}]},
    "address-no-prefix": {"ips": [{"address": "10.10.0.5"}]},
    "mtu-string": {
        "interfaces": [{"name": "eth0", "mtu": "1500"}],
        "ips": [{"address": "10.10.0.5/24"}],
    },
    "name-control-char": {"interfaces": [{"name": "eth\n0"}], "ips": [{"address": "10.10.0.5/24"}]},
    "route-priority-huge": {
        "ips": [{"address": "10.10.0.5/24"}],
        "routes": [{"dst": "0.0.0.0/0", "priority": 2**70}],
    },
    "dns-search-int": {"ips": [{"address": "10.10.0.5/24"}], "dns": {"search": [5]}},
    "cni-version-int": {"cniVersion": 1, "ips": [{"address": "10.10.0.5/24"}]},
}


@pytest.mark.parametrize("case", sorted(PREV_BAD))
def test_bad_prev_result_is_a_clean_error(sandbox, static, case):
    prev = dict({"cniVersion": "1.0.0"}, **PREV_BAD[case])
    err = refused(sandbox, static, "CHECK", static_conf(prevResult=prev), None)
    assert err["code"] in (6, 7), err


# ------------------------------------------------------------------ Go's spelling
def _add_ips(sb, binary, conf, **kw):
    result = run(sb, binary, "ADD", conf, **kw)
    assert result.code == 0, result
    return result


def test_go_spelled_capabilities_equal_canonical(sandbox, hl):
    """containerd's go-cni marshals capability structs with Go field names;
    the reference decodes them case-insensitively, so must we."""
    canonical = {
        "ipRanges": [
            [
                {
                    "subnet": "10.5.0.0/24",
                    "rangeStart": "10.5.0.10",
                    "rangeEnd": "10.5.0.20",
                    "gateway": "10.5.0.1",
                }
            ]
        ],
        "ips": ["10.5.0.15"],
    }
    go = {
        "IPRanges": [
            [
                {
                    "Subnet": "10.5.0.0/24",
                    "RangeStart": "10.5.0.10",
                    "RANGEEND": "10.5.0.20",
                    "Gateway": "10.5.0.1",
                }
            ]
        ],
        "IPs": ["10.5.0.15"],
    }
    a = _add_ips(sandbox, hl, hl_conf(name="neta", top={"runtimeConfig": canonical}))
    b = _add_ips(sandbox, hl, hl_conf(name="netb", top={"runtimeConfig": go}))
    assert a.json == b.json
    assert a.json["ips"][0] == {"address": "10.5.0.15/24", "gateway": "10.5.0.1"}
    snap = H.snapshot(sandbox)
    assert snap.under("networks/neta") == snap.under("networks/netb")


def test_go_spelled_ip_ranges_match_the_reference(dockline_bin):
    conf = hl_conf(
        top={
            "runtimeConfig": {"ipRanges": [[{"Subnet": "10.5.0.0/24", "RangeStart": "10.5.0.10"}]]}
        }
    )
    ref, dl = H.differential(dockline_bin, "host-local", [H.Call("ADD", conf)])
    assert ref[0].ips() == ["10.5.0.10/24", "10.1.2.2/24"]


def test_go_spelled_ipam_keys(sandbox, hl):
    conf = {
        "cniVersion": "1.0.0",
        "name": "net1",
        "type": "bridge",
        "ipam": {
            "type": "host-local",
            "Ranges": [[{"Subnet": "10.1.2.0/24"}]],
            "DataDir": "/var/lib/cni/custom",
            "Routes": [{"Dst": "0.0.0.0/0", "GW": "10.1.2.9"}],
        },
    }
    out = _add_ips(sandbox, hl, conf).json
    assert out["ips"] == [{"address": "10.1.2.2/24", "gateway": "10.1.2.1"}]
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.2.9"}]
    assert "10.1.2.2" in H.snapshot(sandbox).under("custom/net1")


def test_go_spelled_prev_result(sandbox, static):
    ipam = {
        "type": "static",
        "addresses": [
            {"address": "10.10.0.5/24", "gateway": "10.10.0.1"},
            {"address": "fd00::5/64"},
        ],
    }
    go_prev = {
        "CniVersion": "1.0.0",
        "Interfaces": [{"Name": "eth0", "Mac": "aa:bb:cc:dd:ee:ff", "Sandbox": "/run/netns/x"}],
        "IPs": [
            {"Interface": 0, "Address": "10.10.0.5/24", "Gateway": "10.10.0.1"},
            {"interface": 0, "ADDRESS": "FD00:0::5/64"},
        ],
        "Routes": [{"Dst": "0.0.0.0/0", "GW": "10.10.0.1"}],
        "DNS": {"Nameservers": ["10.10.0.1"]},
    }
    assert run(sandbox, static, "CHECK", static_conf(ipam, prevResult=go_prev)).code == 0
    wrong = json.loads(json.dumps(go_prev))
    wrong["IPs"][0]["Gateway"] = "10.10.0.9"
    H.assert_cni_error(run(sandbox, static, "CHECK", static_conf(ipam, prevResult=wrong)), 101)


# ------------------------------------------------------------------ canonical forms
def test_static_renders_canonical_forms(dockline_bin):
    """Addresses, gateways and routes come out as the reference prints them
    (an IPv4-mapped address/prefix is the IPv4 one with prefix - 96).
    Deliberate: nameservers are re-rendered too (the reference echoes them)."""
    ipam = {
        "type": "static",
        "addresses": [
            {"address": "::ffff:10.10.0.5/120", "gateway": "::ffff:10.10.0.1"},
            {"address": "FD00:0000::0005/064", "gateway": "FD00::1"},
        ],
        "routes": [{"dst": "FD99::0/64", "gw": "FD00::00FE"}, {"dst": "::ffff:10.9.0.0/112"}],
        "dns": {"nameservers": ["::FFFF:192.0.2.53", "2001:DB8::0035"]},
    }
    ref, dl = H.pair(dockline_bin, "static", [H.Call("ADD", static_conf(ipam))])
    out, expected = dl[0].result, ref[0].result
    assert (
        out["ips"]
        == expected["ips"]
        == [
            {"address": "10.10.0.5/24", "gateway": "10.10.0.1"},
            {"address": "fd00::5/64", "gateway": "fd00::1"},
        ]
    )
    assert (
        out["routes"]
        == expected["routes"]
        == [{"dst": "fd99::/64", "gw": "fd00::fe"}, {"dst": "10.9.0.0/16"}]
    )
    assert expected["dns"] == ipam["dns"]
    assert out["dns"] == {"nameservers": ["192.0.2.53", "2001:db8::35"]}


@pytest.mark.parametrize(
    "text",
    [
        "010.10.0.5/24",
        "10.10.0.5/24 ",
        "10.10.0.5/+24",
        "10.10.0.5/255.255.255.0",
        "١٠.10.0.5/24",  # noqa: RUF001  (Arabic-Indic digits, meant: not an address)
    ],
)
def test_static_refuses_odd_spellings(sandbox, static, text):
    refused(
        sandbox, static, "ADD", static_conf({"type": "static", "addresses": [{"address": text}]}), 7
    )


# ------------------------------------------------------------------ dataDir
@pytest.mark.parametrize(
    "data_dir",
    [
        "relative/dir",
        "./x",
        "x",
        "/var/lib/cni/../cni/x",
        "/var/lib/cni/a\nb",
        "/var/lib/cni/a\u0000b",
    ],
    ids=repr,
)
def test_invalid_data_dir(sandbox, hl, data_dir):
    sandbox.sh("mkdir -p /var/lib/cni/cwd")
    refused(sandbox, hl, "ADD", hl_conf(dataDir=data_dir), 7, cwd="/var/lib/cni/cwd")
    refused(
        sandbox,
        hl,
        "STATUS",
        hl_conf("1.1.0", dataDir=data_dir),
        7,
        cwd="/var/lib/cni/cwd",
        cid=None,
        ifname=None,
        netns=None,
    )


def test_data_dir_is_normalised(sandbox, hl):
    _add_ips(sandbox, hl, hl_conf(dataDir="//var/lib/cni//custom/./"))
    assert set(H.snapshot(sandbox).under("custom/net1")) == {
        "10.1.2.2",
        "last_reserved_ip.0",
        "lock",
    }


# ------------------------------------------------------------------ planted objects
def test_fifo_as_reservation_name_is_skipped(seeded, hl):
    """A FIFO under an address's name blocks that address: never opened for
    reading (which would hang under the lock), never removed."""
    seeded.sh(f"rm {NET1}10.1.2.2 {NET1}last_reserved_ip.0 && mkfifo {NET1}10.1.2.2")
    assert _add_ips(seeded, hl, hl_conf()).json["ips"][0]["address"] == "10.1.2.3/24"
    assert run(seeded, hl, "CHECK", hl_conf()).code == 0
    assert run(seeded, hl, "DEL", hl_conf()).code == 0
    conf = hl_conf("1.1.0")
    conf["cni.dev/valid-attachments"] = []
    assert run(seeded, hl, "GC", conf, cid=None, ifname=None, netns=None).code == 0
    assert H.snapshot(seeded).under("networks/net1")["10.1.2.2"] == ("non-regular", b"6")


def test_symlink_as_reservation_name_is_not_followed(seeded, hl):
    """A symlink named like an address, pointing at a file that looks like
    c1's reservation: not read (c1 holds nothing), not written, not removed."""
    H.write_files(seeded, {"/var/lib/cni/target": b"c1\r\neth0"})
    seeded.sh(
        f"rm {NET1}10.1.2.2 {NET1}last_reserved_ip.0 && ln -s /var/lib/cni/target {NET1}10.1.2.2"
        f" && ln -s /var/lib/cni/nonexistent {NET1}10.1.2.3"
    )
    H.assert_cni_error(run(seeded, hl, "CHECK", hl_conf()), 101)
    assert _add_ips(seeded, hl, hl_conf()).json["ips"][0]["address"] == "10.1.2.4/24"
    assert run(seeded, hl, "DEL", hl_conf()).code == 0
    snap = H.snapshot(seeded)
    assert snap.files["target"] == b"c1\r\neth0"
    assert "nonexistent" not in snap.files
    assert set(snap.under("networks/net1")) == {
        "10.1.2.2",
        "10.1.2.3",
        "last_reserved_ip.0",
        "lock",
    }


def test_fifo_as_last_reserved_ip(seeded, hl):
    """Not read (no hang): allocation starts at the range's start, and the
    cursor is written as a file again (rename replaces the FIFO's name)."""
    seeded.sh(f"rm {NET1}last_reserved_ip.0 && mkfifo {NET1}last_reserved_ip.0")
    assert _add_ips(seeded, hl, hl_conf()).json["ips"][0]["address"] == "10.1.2.3/24"
    assert H.snapshot(seeded).under("networks/net1")["last_reserved_ip.0"] == b"10.1.2.3"


def test_symlink_as_last_reserved_ip(seeded, hl):
    H.write_files(seeded, {"/var/lib/cni/cursor": b"10.1.2.100"})
    seeded.sh(f"rm {NET1}last_reserved_ip.0 && ln -s /var/lib/cni/cursor {NET1}last_reserved_ip.0")
    assert _add_ips(seeded, hl, hl_conf()).json["ips"][0]["address"] == "10.1.2.3/24"
    snap = H.snapshot(seeded)
    assert snap.files["cursor"] == b"10.1.2.100"
    assert snap.under("networks/net1")["last_reserved_ip.0"] == b"10.1.2.3"


@pytest.mark.parametrize(
    "plant",
    ["mkfifo {lock}", "ln -s /var/lib/cni/elsewhere {lock}", "mkdir {lock}"],
    ids=["fifo", "symlink", "dir"],
)
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_unusable_lock(seeded, hl, plant, command):
    """Without its lock the store cannot be changed safely: a clean I/O
    error, no hang, nothing created through the symlink."""
    seeded.sh(f"rm {NET1}lock && " + plant.format(lock=NET1 + "lock"))
    refused(seeded, hl, command, hl_conf(), 5, cid="c0")


def test_network_dir_symlink(seeded, hl):
    """The lock's directory is a symlink: never followed.  ADD and CHECK
    fail, STATUS reports the store unusable, DEL has nothing of ours to
    release there and succeeds without writing."""
    seeded.sh(
        "mkdir -p /var/lib/cni/elsewhere"
        " && mv /var/lib/cni/networks/net1/* /var/lib/cni/elsewhere/"
        " && rmdir /var/lib/cni/networks/net1"
        " && ln -s /var/lib/cni/elsewhere /var/lib/cni/networks/net1"
    )
    refused(seeded, hl, "ADD", hl_conf(), 5)
    refused(seeded, hl, "CHECK", hl_conf(), 5, cid="c0")
    refused(seeded, hl, "STATUS", hl_conf("1.1.0"), 50, cid=None, ifname=None, netns=None)
    before = H.snapshot(seeded)
    assert run(seeded, hl, "DEL", hl_conf(), cid="c0").code == 0
    assert H.snapshot(seeded) == before


@pytest.mark.parametrize(
    "setup",
    [
        # a symlink in a directory anyone may write (sticky, like /tmp)
        "mkdir -p /var/lib/cni/pub && chmod 1777 /var/lib/cni/pub"
        " && ln -s /var/lib/cni/real /var/lib/cni/pub/ln",
        # a symlink owned by an unprivileged user
        "mkdir -p /var/lib/cni/pub && ln -s /var/lib/cni/real /var/lib/cni/pub/ln"
        " && chown -h 1000 /var/lib/cni/pub/ln",
    ],
    ids=["world-writable-dir", "user-owned-link"],
)
def test_untrusted_symlink_in_data_dir_parent(sandbox, hl, setup):
    sandbox.sh("mkdir -p /var/lib/cni/real && " + setup)
    conf = hl_conf(dataDir="/var/lib/cni/pub/ln/store")
    refused(sandbox, hl, "ADD", conf, 5)
    before = H.snapshot(sandbox)
    assert run(sandbox, hl, "DEL", conf).code == 0
    assert H.snapshot(sandbox) == before


def test_system_symlink_in_data_dir_is_followed(sandbox, hl):
    """A root-made symlink in a root-only directory (the system's own
    /var/run -> /run) is followed."""
    sandbox.sh(
        "mkdir -p -m 755 /var/lib/cni/real /var/lib/cni/sys && chmod 755 /var/lib/cni/sys"
        " && ln -s ../real /var/lib/cni/sys/run"
    )
    _add_ips(sandbox, hl, hl_conf(dataDir="/var/lib/cni/sys/run/ipam"))
    assert "10.1.2.2" in H.snapshot(sandbox).under("real/ipam/net1")


# ------------------------------------------------------------------ nothing before validation
EARLY_ERRORS = {
    "outside-range": (hl_conf(ranges=DUAL), "IP=10.9.9.9", 7),
    "gateway": (hl_conf(ranges=DUAL), "IP=fd00:1:2::1", 7),
    "two-in-one-set": (
        hl_conf(ranges=DUAL, top={"runtimeConfig": {"ips": ["10.1.2.8"]}}),
        "IP=10.1.2.9",
        7,
    ),
    "second-set-bad": (hl_conf(ranges=DUAL), "IP=fd00:9::1", 7),
    "only-gateway-in-range": (
        hl_conf(
            ranges=[[{"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.1", "rangeEnd": "10.1.2.1"}]]
        ),
        None,
        11,
    ),
    "bad-resolv-conf": (hl_conf(resolvConf="/etc/cni/net.d/absent"), None, 7),
}


@pytest.mark.parametrize("case", sorted(EARLY_ERRORS))
@pytest.mark.parametrize("store", ["empty", "seeded"])
def test_refused_add_changes_nothing(sandbox, hl, case, store):
    """No directory, lock file or cursor move for a request that cannot
    succeed, whether or not a store exists."""
    if store == "seeded":
        H.write_files(sandbox, SEED)
    conf, args, code = EARLY_ERRORS[case]
    refused(sandbox, hl, "ADD", conf, code, args=args)


# ------------------------------------------------------------------ DEL and GC always clean up
GARBAGE = {
    "no-ipam": lambda c: {k: v for k, v in c.items() if k != "ipam"},
    "ipam-string": lambda c: dict(c, ipam="host-local"),
    "ranges-garbage": lambda c: dict(c, ipam=dict(c["ipam"], ranges="x")),
    "ranges-31": lambda c: dict(c, ipam=dict(c["ipam"], ranges=[[{"subnet": "10.1.2.0/31"}]])),
    "zone-subnet": lambda c: dict(c, ipam=dict(c["ipam"], ranges=[[{"subnet": "fd00::%y/64"}]])),
    "routes-garbage": lambda c: dict(c, ipam=dict(c["ipam"], routes=5)),
    "resolv-missing": lambda c: dict(c, ipam=dict(c["ipam"], resolvConf="/nonexistent")),
    "unknown-ipam-keys": lambda c: dict(c, ipam=dict(c["ipam"], foo={"bar": [1]})),
    "runtime-config-string": lambda c: dict(c, runtimeConfig="x"),
    "runtime-ips-garbage": lambda c: dict(c, runtimeConfig={"ips": "10.1.2.2", "ipRanges": 7}),
    "args-garbage": lambda c: dict(c, args={"cni": "x"}),
    "prev-result-garbage": lambda c: dict(c, prevResult={"ips": "x"}),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_del_with_garbage_config_releases(seeded, hl, case):
    conf = GARBAGE[case](hl_conf())
    result = run(seeded, hl, "DEL", conf, cid="c0")
    assert result.code == 0 and result.stdout == "", result
    assert H.snapshot(seeded).reservations() == {}


@pytest.mark.parametrize("args", ["FOO=bar", "garbage", "IP=fd00::1%y", "IP=nonsense"])
def test_del_ignores_cni_args(seeded, hl, args):
    assert run(seeded, hl, "DEL", hl_conf(), cid="c0", args=args).code == 0
    assert H.snapshot(seeded).reservations() == {}


def test_del_garbage_config_custom_data_dir(sandbox, hl):
    d = "/var/lib/cni/custom/net1/"
    H.write_files(
        sandbox, {d + "10.1.2.2": b"c0\r\neth0", d + "10.1.2.3": b"c9\r\neth0", d + "lock": b""}
    )
    conf = hl_conf(dataDir="/var/lib/cni/custom", ranges="garbage", routes=[{"dst": 1}])
    assert run(sandbox, hl, "DEL", conf, cid="c0").code == 0
    assert H.snapshot(sandbox).under("custom/net1") == {"10.1.2.3": b"c9\r\neth0", "lock": b""}


@pytest.mark.parametrize(
    "data_dir", ["relative", 5, ["/var/lib/cni/networks"], "/a/../b"], ids=repr
)
def test_del_with_invalid_data_dir_releases_nothing(seeded, hl, data_dir):
    seeded.sh("mkdir -p /var/lib/cni/cwd")
    before = H.snapshot(seeded)
    assert (
        run(seeded, hl, "DEL", hl_conf(dataDir=data_dir), cid="c0", cwd="/var/lib/cni/cwd").code
        == 0
    )
    assert H.snapshot(seeded) == before


@pytest.mark.parametrize(
    "env",
    [{"cid": None}, {"ifname": None}, {"cid": "../x"}, {"ifname": "a/b"}],
    ids=["no-cid", "no-ifname", "bad-cid", "bad-ifname"],
)
def test_del_still_needs_attachment_identity(seeded, hl, env):
    refused(seeded, hl, "DEL", hl_conf(), 4, **env)


@pytest.mark.parametrize(
    "conf",
    [
        {"cniVersion": "1.0.0", "name": "n"},
        static_conf(
            ipam={"type": "static", "addresses": "garbage", "dns": 5},
            runtimeConfig="x",
            prevResult=5,
        ),
        static_conf(ipam={"type": "static", "addresses": [{"address": "fd00::5%y/64"}]}),
    ],
    ids=["no-ipam", "garbage", "zone"],
)
def test_static_del_always_succeeds(sandbox, static, conf):
    result = run(sandbox, static, "DEL", conf, args="FOO=bar")
    assert result.code == 0 and result.stdout == "", result


def test_gc_garbage_config_collects(seeded, hl):
    conf = GARBAGE["ranges-garbage"](hl_conf("1.1.0"))
    conf["cni.dev/valid-attachments"] = []
    assert run(seeded, hl, "GC", conf, cid=None, ifname=None, netns=None).code == 0
    assert H.snapshot(seeded).reservations() == {}

"""Result conversion between spec versions, as libcni converts."""

import pytest
from dockline.cni import result
from dockline.cni.errors import CniError

FULL = {
    "interfaces": [
        {"name": "cni0", "mac": "aa:bb:cc:dd:ee:00"},
        {"name": "eth0", "mac": "aa:bb:cc:dd:ee:01", "mtu": 1400, "sandbox": "/run/netns/x"},
    ],
    "ips": [
        {"interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
        {"interface": 1, "address": "10.2.0.5/24"},
        {"interface": 1, "address": "fd00::5/64", "gateway": "fd00::1"},
    ],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1300, "priority": 5}, {"dst": "::/0"}],
    "dns": {"nameservers": ["10.1.0.1"], "search": ["example"]},
}


def test_render_1_1_keeps_new_fields():
    out = result.render(FULL, "1.1.0")
    assert out["interfaces"][1] == {
        "name": "eth0",
        "mac": "aa:bb:cc:dd:ee:01",
        "mtu": 1400,
        "sandbox": "/run/netns/x",
    }
    assert out["routes"][0] == {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1300, "priority": 5}
    assert all("version" not in ip for ip in out["ips"])


def test_render_1_0_drops_1_1_fields():
    out = result.render(FULL, "1.0.0")
    assert out["cniVersion"] == "1.0.0"
    assert "mtu" not in out["interfaces"][1]
    assert out["routes"][0] == {"dst": "0.0.0.0/0", "gw": "10.1.0.1"}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_render_0_3_and_0_4_carry_ip_version(version):
    out = result.render(FULL, version)
    assert [ip["version"] for ip in out["ips"]] == ["4", "4", "6"]
    assert out["ips"][0] == {
        "version": "4",
        "interface": 1,
        "address": "10.1.0.5/24",
        "gateway": "10.1.0.1",
    }
    assert out["dns"] == {"nameservers": ["10.1.0.1"], "search": ["example"]}


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_render_0_2_keeps_first_of_each_family(version):
    out = result.render(FULL, version)
    assert out == {
        "cniVersion": version,
        "ip4": {
            "ip": "10.1.0.5/24",
            "gateway": "10.1.0.1",
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        },
        "ip6": {"ip": "fd00::5/64", "gateway": "fd00::1", "routes": [{"dst": "::/0"}]},
        "dns": {"nameservers": ["10.1.0.1"], "search": ["example"]},
    }


def test_render_0_2_without_ips_is_an_error():
    with pytest.raises(CniError) as err:
        result.render({"interfaces": [{"name": "eth0"}], "ips": []}, "0.2.0")
    assert err.value.code == 1


def test_empty_dns_is_rendered_as_empty_object():
    assert result.render({"ips": [{"address": "10.0.0.2/24"}]}, "1.0.0")["dns"] == {}


@pytest.mark.parametrize("version", ["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_parse_inverts_render(version):
    rendered = result.render(FULL, version)
    back = result.parse(rendered, version)
    again = result.render(back, version)
    assert again == rendered


def test_parse_020_flattens_routes():
    parsed = result.parse(
        {
            "cniVersion": "0.2.0",
            "ip4": {"ip": "10.0.0.2/24", "routes": [{"dst": "10.9.0.0/16"}]},
            "ip6": {"ip": "fd::2/64", "gateway": "fd::1"},
        },
        "0.2.0",
    )
    assert parsed["ips"] == [
        {"address": "10.0.0.2/24"},
        {"address": "fd::2/64", "gateway": "fd::1"},
    ]
    assert parsed["routes"] == [{"dst": "10.9.0.0/16"}]


def test_parse_rejects_non_object_lists():
    with pytest.raises(CniError) as err:
        result.parse({"cniVersion": "1.0.0", "ips": ["10.0.0.1/24"]}, "1.0.0")
    assert err.value.code == 6


# ------------------------------------------------------------------ checked values
@pytest.mark.parametrize(
    "bad",
    [
        {"ips": [{"address": "fd00::5%eth0/64"}]},
        {"ips": [{"address": "fd00::5/64", "gateway": "fe80::1%y"}]},
        {"ips": [{"address": "fd00::5/64"}], "routes": [{"dst": "::/0", "gw": "fe80::1%1"}]},
        {"ips": [{"address": "fd00::5/64"}], "routes": [{"dst": "fd00::%y/64"}]},
        {"ips": [{"address": "fd00::5/64"}], "dns": {"nameservers": ["fe80::1%eth0"]}},
        {"ips": [{"address": "10.0.0.5/24", "interface": 0}]},
        {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.5/24", "interface": 1}]},
        {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.5/24", "interface": True}]},
        {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.5/24", "interface": -1}]},
        {"ips": [{"address": "10.0.0.5/24"}], "routes": [{"dst": "0.0.0.0/0", "priority": 2**70}]},
        {
            "ips": [{"address": "10.0.0.5/24"}],
            "routes": [{"dst": "0.0.0.0/0", "mtu": float("inf")}],
        },
        {"ips": [{"address": "10.0.0.5/24"}], "routes": [{"dst": "0.0.0.0/0", "table": False}]},
        {"interfaces": [{"name": "eth0", "mtu": 2**40}]},
        {"interfaces": [{"name": "eth\u0000"}]},
        {"ips": [{"address": "10.0.0.5"}]},
        {"ips": [{"gateway": "10.0.0.1"}]},
    ],
    ids=repr,
)
def test_parse_refuses_bad_values(bad):
    with pytest.raises(CniError) as err:
        result.parse(dict({"cniVersion": "1.0.0"}, **bad), "1.0.0")
    assert err.value.code == 7


def test_parse_reads_go_field_names():
    canonical = result.parse(FULL | {"cniVersion": "1.1.0"}, "1.1.0")
    go = {
        "CNIVersion": "1.1.0",
        "Interfaces": [
            {"Name": "cni0", "Mac": "aa:bb:cc:dd:ee:00"},
            {"NAME": "eth0", "mac": "aa:bb:cc:dd:ee:01", "Mtu": 1400, "Sandbox": "/run/netns/x"},
        ],
        "IPs": [
            {"Interface": 1, "Address": "10.1.0.5/24", "Gateway": "10.1.0.1"},
            {"interface": 1, "address": "10.2.0.5/24"},
            {"Interface": 1, "Address": "FD00::5/64", "Gateway": "fd00::1"},
        ],
        "Routes": [
            {"Dst": "0.0.0.0/0", "GW": "10.1.0.1", "MTU": 1300, "Priority": 5},
            {"DST": "::/0"},
        ],
        "DNS": {"Nameservers": ["10.1.0.1"], "Search": ["example"]},
    }
    assert result.parse(go, "1.1.0") == canonical


def test_parse_renders_canonical_forms():
    parsed = result.parse(
        {
            "cniVersion": "1.0.0",
            "ips": [
                {"address": "::ffff:10.0.0.5/120", "gateway": "::FFFF:10.0.0.1"},
                {"address": "FD00:0000::0005/064"},
            ],
            "routes": [{"dst": "FD99::1/64", "gw": "FD00::00FE"}],
        },
        "1.0.0",
    )
    assert parsed["ips"] == [
        {"address": "10.0.0.5/24", "gateway": "10.0.0.1"},
        {"address": "fd00::5/64"},
    ]
    assert parsed["routes"] == [{"dst": "fd99::1/64", "gw": "fd00::fe"}]


def test_parse_020_go_spelling():
    parsed = result.parse(
        {
            "CNIVersion": "0.2.0",
            "IP4": {"IP": "10.0.0.2/24", "Gateway": "10.0.0.1", "Routes": [{"Dst": "10.9.0.0/16"}]},
        },
        "0.2.0",
    )
    assert parsed["ips"] == [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}]
    assert parsed["routes"] == [{"dst": "10.9.0.0/16"}]

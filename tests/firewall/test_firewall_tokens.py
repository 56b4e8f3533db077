"""The validators every firewall script value goes through: hostile
strings are refused with code 7, good values come back re-rendered from
their parsed form, never as the input text."""

import pytest
from dockline.cni.errors import CniError
from dockline.firewall import check_lines, tokens
from dockline.portmap.config import Mapping

HOSTILE = [
    "x\n-A INPUT -j ACCEPT",
    "x\r",
    "x;flush ruleset",
    "x # c",
    'x"',
    "x'",
    "x\\",
    "x%y",
    "x }",
    "x {",
    "x$y",
    "x\0",
    "x\x0b",
    "é",
    "x\u2028y",
    "ｅｔｈ０",  # noqa: RUF001 (look-alikes on purpose)
    "x y",
    "",
    "x" * 300,
]


def refused(fn, *args):
    with pytest.raises(CniError) as err:
        fn(*args)
    assert err.value.code == 7
    return err.value


@pytest.mark.parametrize("value", HOSTILE + [".", "..", "a" * 16, "eth+", "eth*", 7, None])
def test_ifname_refuses(value):
    refused(tokens.ifname, value)


@pytest.mark.parametrize("value", ["eth0", "dockline0", "br-1.100", "a_b", "x" * 15])
def test_ifname_accepts(value):
    assert tokens.ifname(value) == value


@pytest.mark.parametrize("value", HOSTILE + ["x" * 29, "a.b", 5])
def test_chain_refuses(value):
    refused(tokens.chain, value)


def test_chain_accepts_up_to_28():
    assert tokens.chain("MY-MARK_CHAIN") == "MY-MARK_CHAIN"
    assert tokens.chain("X" * 28) == "X" * 28


@pytest.mark.parametrize("value", HOSTILE + ["ABC", "0x1f", "g"])
def test_hex_tag_refuses(value):
    refused(tokens.hex_tag, value)


@pytest.mark.parametrize(
    "value",
    [
        "fd00::1%x",
        "fd00::1%x\n-A INPUT -j ACCEPT",
        "fe80::1%eth0",
        "fd00::1%25",
        "1.2.3.4\n",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1.2.3.04",
        "1.2.3",
        "١.٢.٣.٤",  # noqa: RUF001 (look-alikes on purpose)
        "::ffff:1.2.3.4%x",
        "1.2.3.4/32",
        "x",
        "",
        16909060,
        b"\x01\x02\x03\x04",
        None,
        ["1.2.3.4"],
    ]
    + HOSTILE,
)
def test_address_refuses(value):
    refused(tokens.address, value)


@pytest.mark.parametrize(
    "value, rendered",
    [
        ("192.0.2.1", "192.0.2.1"),
        ("FD00:0:0::0001", "fd00::1"),
        ("::ffff:1.2.3.4", "::ffff:102:304"),
    ],
)
def test_address_rendered_from_the_parsed_value(value, rendered):
    assert str(tokens.address(value)) == rendered


@pytest.mark.parametrize(
    "value", ["fd00::1%x/64", "10.0.0.1", "10.0.0.1/33", "10.0.0.1/24\n", "10.0.0.1//24"] + HOSTILE
)
def test_interface_refuses(value):
    refused(tokens.interface, value)


def test_interface_and_network():
    iface = tokens.interface("10.1.2.3/24")
    assert (str(iface.ip), str(iface.network)) == ("10.1.2.3", "10.1.2.0/24")
    assert str(tokens.network("10.1.2.3/8")) == "10.0.0.0/8"
    refused(tokens.network, "fd00::%1/64")


@pytest.mark.parametrize("value", [0, 65536, -1, 80.0, "80", True, 2**64, None])
def test_port_refuses(value):
    refused(tokens.port, value)


@pytest.mark.parametrize("value", [-1, 32, 1.0, "13", False])
def test_mark_bit_refuses(value):
    refused(tokens.mark_bit, value)


def test_protocol():
    assert tokens.protocol("TCP") == "tcp" and tokens.protocol("Sctp") == "sctp"
    for bad in ["icmp", "tcp\n", "", None, 6]:
        refused(tokens.protocol, bad)


@pytest.mark.parametrize(
    "value", ["aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:fg", "aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:ff\n"]
)
def test_mac_refuses(value):
    refused(tokens.mac, value)


# --- iptables conditions -------------------------------------------------------


@pytest.mark.parametrize(
    "conditions, rendered",
    [
        (["-s 10.1.2.3/8"], ["-s", "10.0.0.0/8"]),
        (
            ["-s", "10.0.0.0/8", "! -d", "10.9.0.0/16"],
            ["-s", "10.0.0.0/8", "!", "-d", "10.9.0.0/16"],
        ),
        (["-p tcp --dport 80:90"], ["-p", "tcp", "--dport", "80:90"]),
        (
            ["-m multiport --dports 80,443,8000:8080"],
            ["-m", "multiport", "--dports", "80,443,8000:8080"],
        ),
        (["-m addrtype ! --src-type local"], ["-m", "addrtype", "!", "--src-type", "LOCAL"]),
        (["-m mark --mark 0x10/0xff"], ["-m", "mark", "--mark", "0x10/0xff"]),
        (
            ["-m conntrack --ctstate NEW,ESTABLISHED"],
            ["-m", "conntrack", "--ctstate", "NEW,ESTABLISHED"],
        ),
        (["-m set --match-set allowed src"], ["-m", "set", "--match-set", "allowed", "src"]),
        (
            ["-m iprange --src-range 10.0.0.1-10.0.0.9"],
            ["-m", "iprange", "--src-range", "10.0.0.1-10.0.0.9"],
        ),
        (["-i eth0\t-o", "eth1"], ["-i", "eth0", "-o", "eth1"]),
    ],
)
def test_iptables_conditions_accepted_and_rendered(conditions, rendered):
    assert tokens.iptables_conditions(conditions, family=4) == rendered


@pytest.mark.parametrize(
    "conditions",
    [
        ["-s 10.0.0.0/8\n-A INPUT -j ACCEPT"],
        ["-s 10.0.0.0/8", "-j ACCEPT"],
        ["-g OTHER"],
        ["-m comment --comment x"],
        ['-s "10.0.0.0/8"'],
        ["-s 10.0.0.0/8 #"],
        ["-s fd00::1%x"],
        ["--dport 80"],  # a tcp option without -p tcp / -m tcp
        ["-p tcp --dport 80;"],
        ["-p tcp --dport 0"],
        ["-p tcp --dport 70000"],
        ["-p gre"],
        ["-i eth+"],
        ["-i", "x" * 16],
        ["-m unknownmod"],
        ["-s"],
        ["!"],
        ["! !", "-s 1.2.3.4"],
        ["-s 1.2.3.4\\"],
        ["-m mark --mark 0x1ffffffff"],
        ["-m mark --mark -1"],
        ["-m conntrack --ctstate BOGUS"],
        ["-m set --match-set a;b src"],
        ["-s ١.2.3.4"],  # noqa: RUF001 (look-alikes on purpose)
        ["-s fd00::/8"],  # an IPv6 network in conditionsV4
        "-s 10.0.0.0/8",
        [5],
        {"-s": "x"},
    ],
)
def test_iptables_conditions_refused(conditions):
    refused(tokens.iptables_conditions, conditions, "conditionsV4", 4)


# --- nft conditions -------------------------------------------------------------


def test_nft_conditions_accepted():
    assert tokens.nft_conditions(["ip saddr 10.0.0.0/8", "ct state established,related"]) == [
        "ip",
        "saddr",
        "10.0.0.0/8",
        "ct",
        "state",
        "established,related",
    ]
    assert tokens.nft_conditions(["iifname != eth0", "ip saddr @allowed"])[-1] == "@allowed"


@pytest.mark.parametrize(
    "conditions",
    [
        ["ip saddr 10.0.0.0/8; flush ruleset"],
        ["ip saddr { 10.0.0.0/8 }"],
        ["ip saddr 10.0.0.0/8\nflush ruleset"],
        ["ip saddr 10.0.0.0/8 # x"],
        ['iifname "eth0"'],
        ["iifname 'eth0'"],
        ["ip saddr $net"],
        ["ip saddr 10.0.0.0/8 accept"],
        ["jump other"],
        ["meta mark set 1"],
        ["counter"],
        ["ip saddr 10.0.0.0/8 \\"],
        ["ip saddr fd00::1%x"],
        ["ip saddr é"],
        ["x" * 65],
        [None],
    ],
)
def test_nft_conditions_refused(conditions):
    refused(tokens.nft_conditions, conditions, "conditionsV4")


# --- mappings, as containerd and the reference's Go decoding read them ---------


def test_mapping_go_field_names_and_empty_host_ip():
    m = Mapping.from_config(
        {"HostPort": 18080, "ContainerPort": 80, "Protocol": "TCP", "HostIP": ""}
    )
    assert (m.host_port, m.container_port, m.protocol, m.host_ip) == (18080, 80, "tcp", None)
    m = Mapping.from_config({"hostport": 1, "containerPort": 2, "hostip": "::"})
    assert (m.protocol, m.host_ip) == ("tcp", None)


@pytest.mark.parametrize(
    "entry",
    [
        {"HostPort": None, "ContainerPort": 80},
        {"HostPort": 80.0, "ContainerPort": 80},
        {"HostPort": 80, "ContainerPort": True},
        {"HostPort": 10**30, "ContainerPort": 80},
        {"HostPort": 80, "ContainerPort": 80, "HostIP": 0},
        {"HostPort": 80, "ContainerPort": 80, "HostIP": []},
        {"HostPort": 80, "ContainerPort": 80, "HostIP": "fd00::1%x\n-A INPUT -j ACCEPT"},
        {"HostPort": 80, "ContainerPort": 80, "Protocol": "icmp"},
        "80:80",
        None,
    ],
)
def test_mapping_refused(entry):
    refused(Mapping.from_config, entry)


# --- the last line of defence ------------------------------------------------------


@pytest.mark.parametrize("line", ["add rule x\nflush ruleset", "-A X\r", "a\0b"])
def test_script_lines_with_line_breaks_never_reach_a_tool(line):
    with pytest.raises(CniError) as err:
        check_lines(["add table inet t", line])
    assert err.value.code == 999

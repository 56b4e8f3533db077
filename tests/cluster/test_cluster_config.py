"""The cluster object is checked strictly, before anything is touched."""

from __future__ import annotations

import pytest
from dockline.cluster import config
from dockline.cni.errors import CniError

GOOD = {"endpoints": ["http://127.0.0.1:2379"]}


def test_defaults():
    conf = config.parse(GOOD)
    assert [str(e) for e in conf.endpoints] == ["http://127.0.0.1:2379"]
    assert conf.prefix == "/dockline"
    assert conf.timeout == 5.0
    assert conf.block_prefix == 26 and conf.block_prefix6 == 122
    assert conf.tls is None


def test_everything_set():
    conf = config.parse(
        {
            "endpoints": ["https://etcd-1.example:2379", "https://[fd00::1]:2379/"],
            "prefix": "/clusters/a",
            "timeout": 0.5,
            "leaseTTL": 600,
            "blockPrefix": 28,
            "blockPrefix6": 120,
            "tls": {"ca": "/etc/ca.pem", "cert": "/etc/c.pem", "key": "/etc/k.pem"},
        }
    )
    assert [str(e) for e in conf.endpoints] == [
        "https://etcd-1.example:2379",
        "https://[fd00::1]:2379",
    ]
    assert conf.endpoints[1].host == "fd00::1"
    assert conf.tls.ca == "/etc/ca.pem"


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "not an object",
        {"endpoints": []},
        {"endpoints": "http://127.0.0.1:2379"},
        {"endpoints": ["127.0.0.1:2379"]},
        {"endpoints": ["unix:///run/etcd.sock"]},
        {"endpoints": ["http://127.0.0.1"]},
        {"endpoints": ["http://127.0.0.1:0"]},
        {"endpoints": ["http://127.0.0.1:65536"]},
        {"endpoints": ["http://127.0.0.1:2379/v3/kv"]},
        {"endpoints": ["http://user@host:2379"]},
        {"endpoints": ["http://host name:2379"]},
        {"endpoints": ["http://010.0.0.1:2379"]},
        {"endpoints": ["http://[10.0.0.1]:2379"]},
        {"endpoints": ["http://a\r\nHost: evil:2379"]},
        {"endpoints": ["http://127.0.0.1:2379", "https://127.0.0.2:2379"]},
        {"endpoints": ["http://127.0.0.1:2379"] * 17},
        {**GOOD, "prefix": "dockline"},
        {**GOOD, "prefix": "/a/../b"},
        {**GOOD, "prefix": "/a//b"},
        {**GOOD, "prefix": "/a b"},
        {**GOOD, "prefix": "/" + "a" * 200},
        {**GOOD, "timeout": 0},
        {**GOOD, "timeout": "5"},
        {**GOOD, "timeout": True},
        {**GOOD, "timeout": 1e9},
        {**GOOD, "leaseTTL": 5},
        {**GOOD, "leaseTTL": 60.5},
        {**GOOD, "blockPrefix": 31},
        {**GOOD, "blockPrefix6": 127},
        {**GOOD, "timout": 5},
        {**GOOD, "tls": {"ca": "/etc/ca.pem"}},  # TLS files with http:// endpoints
        {"endpoints": ["https://h:1"], "tls": {"ca": "relative.pem"}},
        {"endpoints": ["https://h:1"], "tls": {"ca": "/etc/../ca.pem"}},
        {"endpoints": ["https://h:1"], "tls": {"cert": "/c.pem"}},
        {"endpoints": ["https://h:1"], "tls": {"ca": "/c\n.pem"}},
        {"endpoints": ["https://h:1"], "tls": {"CA": "/c.pem"}},
        {"endpoints": ["https://h:1"], "tls": "/ca.pem"},
    ],
)
def test_refused_with_code_7(bad):
    with pytest.raises(CniError) as info:
        config.parse(bad)
    assert info.value.code == 7


def test_absent_means_single_host():
    assert config.from_network({"name": "n"}) is None

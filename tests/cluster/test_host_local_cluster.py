"""host-local in cluster mode, called as a runtime calls it, on two
simulated hosts (a network namespace and a dataDir each) sharing etcd over
an underlay."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from etcdrun import Etcd
from helpers.cni import PluginRun
from helpers.paths import DOCKLINE_BIN
from multihost import SUBNET, make_hosts

HOSTS = ("A", "B")


def conf(endpoints, host, **cluster):
    return {
        "cniVersion": "1.1.0",
        "name": "cnet",
        "cluster": {"endpoints": endpoints, "timeout": 2, **cluster},
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": SUBNET}], [{"subnet": "fd77::/64"}]],
            "dataDir": f"/var/lib/cni/host{host}",
        },
    }


def host_local(sandbox, host, command, config, cid="c1", args=None):
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/none",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(DOCKLINE_BIN),
    }
    if args:
        env["CNI_ARGS"] = args
    argv = ["ip", "netns", "exec", f"host{host}", str(DOCKLINE_BIN / "host-local")]
    proc = sandbox.run(argv, input=json.dumps(config), env=env)
    return PluginRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def hosts(sandbox):
    make_hosts(sandbox, HOSTS)
    yield


@pytest.fixture
def etcd_ul3(sandbox, hosts):
    """Three members on the underlay bridge's addresses."""
    sandbox.sh("ip addr add 10.200.0.2/24 dev ul0; ip addr add 10.200.0.3/24 dev ul0")
    etcd = Etcd(sandbox, addresses=["10.200.0.1", "10.200.0.2", "10.200.0.3"])
    try:
        yield etcd.start()
    finally:
        etcd.stop()


def reservations(sandbox, host):
    out = sandbox.sh(f"ls /var/lib/cni/host{host}/cnet 2>/dev/null", check=False).stdout
    return sorted(n for n in out.split() if n[0].isdigit() or ":" in n)


def test_2x32_parallel_adds_unique_with_a_member_stopped(sandbox, etcd_ul3):
    endpoints = etcd_ul3.endpoints

    def add(i):
        host = HOSTS[i % 2]
        return host_local(sandbox, host, "ADD", conf(endpoints, host, blockPrefix=29), f"c{i}")

    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(add, range(32)))
        etcd_ul3.members[0].stop()  # mid-run: the others keep serving
        rest = list(pool.map(add, range(32, 64)))
    results = [r.ok().json for r in first + rest]
    v4 = [r["ips"][0]["address"] for r in results]
    v6 = [r["ips"][1]["address"] for r in results]
    assert len(set(v4)) == 64 and len(set(v6)) == 64
    assert all(a.endswith("/16") for a in v4) and all(a.endswith("/64") for a in v6)
    assert len(reservations(sandbox, "A")) == len(reservations(sandbox, "B")) == 64
    # Every address lies in a block its host holds, and no block is held twice.
    held = {}
    for host in HOSTS:
        state = json.loads(
            sandbox.sh(f"cat /var/lib/cni/host{host}/cnet/.dockline-cluster.json").stdout
        )
        for block in state["blocks"]:
            assert block not in held
            held[block] = host
    for i, r in enumerate(results):
        import ipaddress

        ip = ipaddress.ip_interface(r["ips"][0]["address"]).ip
        assert any(ip in ipaddress.ip_network(b) and h == HOSTS[i % 2] for b, h in held.items())

    # DEL everything: every block goes back.
    def delete(i):
        host = HOSTS[i % 2]
        return host_local(sandbox, host, "DEL", conf(endpoints, host), f"c{i}").ok()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(delete, range(64)))
    for host in HOSTS:
        state = json.loads(
            sandbox.sh(f"cat /var/lib/cni/host{host}/cnet/.dockline-cluster.json").stdout
        )
        assert state["blocks"] == [] and reservations(sandbox, host) == []


def test_etcd_down_code_11_in_time_nothing_made_status_50(sandbox, hosts):
    etcd = Etcd(sandbox, addresses=["10.200.0.1"])
    etcd.start()
    try:
        endpoints = etcd.endpoints
        host_local(sandbox, "A", "ADD", conf(endpoints, "A"), "c1").ok()
        host_local(sandbox, "A", "STATUS", conf(endpoints, "A")).ok()
    finally:
        etcd.stop()
    # A's held blocks still serve (its lease is fresh by its own clock).
    assert host_local(sandbox, "A", "ADD", conf(endpoints, "A"), "c2").ok().json["ips"]
    before = reservations(sandbox, "B")
    t = time.monotonic()
    run = host_local(sandbox, "B", "ADD", conf(endpoints, "B"), "c3")
    took = time.monotonic() - t
    assert run.code != 0 and run.json["code"] == 11, run.stdout
    assert took < 2 + 1.5, took
    assert reservations(sandbox, "B") == before == []
    status = host_local(sandbox, "A", "STATUS", conf(endpoints, "A"))
    assert status.code != 0 and status.json["code"] == 50, status.stdout
    # DEL still succeeds (the block is returned by a later call).
    host_local(sandbox, "A", "DEL", conf(endpoints, "A"), "c1").ok()
    assert host_local(sandbox, "A", "DEL", conf(endpoints, "A"), "c2").ok()


def test_bad_cluster_config_is_code_7_before_anything(sandbox, hosts):
    bad = conf(["http://10.200.0.1:2379"], "A")
    bad["cluster"]["prefix"] = "../escape"
    run = host_local(sandbox, "A", "ADD", bad)
    assert run.json["code"] == 7
    assert sandbox.sh("ls -A /var/lib/cni", check=False).stdout.strip() == ""


def etcd_call(sandbox, path, body):
    out = sandbox.run(
        ["curl", "-s", "-X", "POST", "-d", json.dumps(body), f"http://10.200.0.1:2379/v3/{path}"]
    ).stdout
    return json.loads(out)


def block_leases(sandbox):
    import base64

    prefix = base64.b64encode(b"/dockline/cnet/blocks/").decode()
    end = base64.b64encode(b"/dockline/cnet/blocks0").decode()
    kvs = etcd_call(sandbox, "kv/range", {"key": prefix, "range_end": end}).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1]: kv.get("lease") for kv in kvs}


def test_lost_lease_is_renewed_and_a_vanished_host_frees_its_blocks(sandbox, hosts):
    etcd = Etcd(sandbox, addresses=["10.200.0.1"])
    etcd.start()
    try:
        endpoints = etcd.endpoints
        host_local(sandbox, "A", "ADD", conf(endpoints, "A"), "c1").ok()
        state = json.loads(sandbox.sh("cat /var/lib/cni/hostA/cnet/.dockline-cluster.json").stdout)
        assert block_leases(sandbox) == {
            "10.77.0.0_26": str(state["lease"]),
            "fd77::_122": str(state["lease"]),
        }
        # The lease runs out (revoked here, as expiry would): A's blocks are free...
        etcd_call(sandbox, "lease/revoke", {"ID": str(state["lease"])})
        assert block_leases(sandbox) == {}
        # ...until A's next call (STATUS) takes a new lease and its blocks back.
        host_local(sandbox, "A", "STATUS", conf(endpoints, "A")).ok()
        again = json.loads(sandbox.sh("cat /var/lib/cni/hostA/cnet/.dockline-cluster.json").stdout)
        assert again["lease"] != state["lease"] and again["blocks"] == state["blocks"]
        assert set(block_leases(sandbox).values()) == {str(again["lease"])}
        b = host_local(sandbox, "B", "ADD", conf(endpoints, "B"), "c2").ok().json
        assert b["ips"][0]["address"] == "10.77.0.64/16"
        # A vanishes for good: once its lease is gone, another host gets its block.
        etcd_call(sandbox, "lease/revoke", {"ID": str(again["lease"])})
        # (a third host: its own dataDir, run from B's namespace)
        c = host_local(sandbox, "B", "ADD", conf(endpoints, "C"), "c3").ok().json
        assert c["ips"][0]["address"] == "10.77.0.2/16"
    finally:
        etcd.stop()


def test_requested_address_claims_its_block(sandbox, hosts):
    etcd = Etcd(sandbox, addresses=["10.200.0.1"])
    etcd.start()
    try:
        endpoints = etcd.endpoints
        a = host_local(sandbox, "A", "ADD", conf(endpoints, "A"), "c1", args="IP=10.77.5.5")
        assert a.ok().json["ips"][0]["address"] == "10.77.5.5/16"
        assert "10.77.5.0_26" in block_leases(sandbox)
        # Another host may not take an address of A's block...
        b = host_local(sandbox, "B", "ADD", conf(endpoints, "B"), "c2", args="IP=10.77.5.6")
        assert b.code != 0 and b.json["code"] == 100, b.stdout
        assert reservations(sandbox, "B") == []
        # ...but A may, from the block it holds.
        a2 = host_local(sandbox, "A", "ADD", conf(endpoints, "A"), "c3", args="IP=10.77.5.6")
        assert a2.ok().json["ips"][0]["address"] == "10.77.5.6/16"
    finally:
        etcd.stop()

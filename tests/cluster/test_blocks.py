"""Cluster-wide allocation: blocks leased from etcd, addresses inside them
allocated locally (in-process, as host-local runs it)."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

from etcdrun import PYTHON, REPO, etcd1_fixture, etcd3_fixture  # noqa: F401 (fixtures)

DRIVER = os.path.join(os.path.dirname(__file__), "ipamdriver.py")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": os.path.join(REPO, "lib")}


def drive(sandbox, op, doc):
    proc = sandbox.run([PYTHON, DRIVER, op, json.dumps(doc)], env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def net(etcd, host, cid="c1", **cluster):
    return {
        "cluster": {"endpoints": etcd.endpoints, "timeout": 3, **cluster},
        "ranges": [[{"subnet": "10.77.0.0/16"}]],
        "network": "cnet",
        "dataDir": f"/var/lib/cni/{host}",
        "containerID": cid,
        "ifname": "eth0",
    }


def test_two_hosts_get_different_blocks(sandbox, etcd1):
    a = drive(sandbox, "add", net(etcd1, "hostA"))
    b = drive(sandbox, "add", net(etcd1, "hostB"))
    assert a["ips"][0]["address"] == "10.77.0.2/16"  # .1 is the gateway
    assert b["ips"][0]["address"] == "10.77.0.64/16"  # the next /26
    assert a["ips"][0]["gateway"] == b["ips"][0]["gateway"] == "10.77.0.1"
    drive(sandbox, "del", net(etcd1, "hostA"))
    state = json.loads(
        sandbox.run(["cat", "/var/lib/cni/hostA/cnet/.dockline-cluster.json"]).stdout
    )
    assert state["blocks"] == []  # returned once empty
    c = drive(sandbox, "add", net(etcd1, "hostB", cid="c2"))
    assert c["ips"][0]["address"] == "10.77.0.65/16"  # B serves from its block


def test_parallel_adds_on_two_hosts_are_unique(sandbox, etcd1):
    def add(i):
        return drive(sandbox, "add", net(etcd1, f"host{'AB'[i % 2]}", cid=f"c{i}"))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(add, range(64)))
    ips = [r["ips"][0]["address"] for r in results]
    assert len(set(ips)) == 64, ips


def test_one_of_three_members_stopped_mid_run(sandbox, etcd3):
    # Small blocks, so the run keeps claiming while a member is down.
    def add(i):
        return drive(sandbox, "add", net(etcd3, f"host{'AB'[i % 2]}", cid=f"c{i}", blockPrefix=29))

    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(add, range(16)))
        etcd3.members[0].stop()
        rest = list(pool.map(add, range(16, 48)))
    assert all("ips" in r for r in first + rest), [r for r in first + rest if "ips" not in r]
    ips = [r["ips"][0]["address"] for r in first + rest]
    assert len(set(ips)) == 48


def listing(sandbox, host):
    return sorted(sandbox.run(["ls", "-A", f"/var/lib/cni/{host}/cnet"]).stdout.split())


def test_etcd_gone_is_code_11_in_time_and_nothing_half_made(sandbox, etcd3):
    import time

    assert "ips" in drive(sandbox, "add", net(etcd3, "hostA", cid="held", blockPrefix=30))
    before = listing(sandbox, "hostA")
    state = sandbox.run(["cat", "/var/lib/cni/hostA/cnet/.dockline-cluster.json"]).stdout
    assert drive(sandbox, "status", net(etcd3, "hostA")) == {}
    etcd3.stop()
    # The held /30 (.1 gateway, .2 taken, .3) can still serve one ADD.
    served = drive(sandbox, "add", net(etcd3, "hostA", cid="c2", blockPrefix=30))
    assert served["ips"][0]["address"] == "10.77.0.3/16"
    after_served = listing(sandbox, "hostA")
    t = time.monotonic()
    failed = drive(sandbox, "add", net(etcd3, "hostA", cid="c3", blockPrefix=30))
    assert failed["code"] == 11, failed
    assert time.monotonic() - t < 3 + 2  # the timeout, plus the interpreter's start
    assert listing(sandbox, "hostA") == after_served == sorted(before + ["10.77.0.3"])
    after = sandbox.run(["cat", "/var/lib/cni/hostA/cnet/.dockline-cluster.json"]).stdout
    assert json.loads(after)["blocks"] == json.loads(state)["blocks"]
    status = drive(sandbox, "status", net(etcd3, "hostA"))
    assert status["code"] == 50, status
    # A fresh host cannot get anything either, and writes no reservation.
    fresh = drive(sandbox, "add", net(etcd3, "hostB"))
    assert fresh["code"] == 11
    assert [n for n in listing(sandbox, "hostB") if n[0].isdigit()] == []

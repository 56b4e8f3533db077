"""Two simulated hosts on one etcd: unique addresses cluster-wide,
containers reaching each other across hosts, and links across hosts."""

from __future__ import annotations

import json

import pytest
from etcdrun import Etcd
from multihost import (
    ETCD_ADDRESS,
    address,
    cni,
    fetch,
    install_conf,
    make_hosts,
    netconf,
    ok,
    ping,
    serve,
)


@pytest.fixture
def cluster(sandbox):
    make_hosts(sandbox)
    etcd = Etcd(sandbox, addresses=[ETCD_ADDRESS])
    try:
        etcd.start()
        for host in "AB":
            install_conf(sandbox, host, netconf(etcd.endpoints, host))
        yield etcd
    finally:
        etcd.stop()


def test_ping_and_tcp_from_a_container_on_A_to_one_on_B(sandbox, cluster):
    sandbox.sh("ip netns add web; ip netns add db")
    web = ok(cni(sandbox, "A", "add", "web", "A-web"))
    db = ok(cni(sandbox, "B", "add", "db", "B-db"))
    assert address(web) == "10.77.0.2" and address(db) == "10.77.0.64"  # one /26 each
    # A learnt B's block on its next call (STATUS, which runtimes repeat).
    ok(cni(sandbox, "A", "status", "web", "A-web"))
    routes = sandbox.sh("ip -n hostA route show proto 211").stdout
    assert "via 10.200.0.12" in routes, routes
    echo = ping(sandbox, "web", address(db))
    assert echo.returncode == 0, echo.stdout + echo.stderr
    serve(sandbox, "db")
    assert fetch(sandbox, "web", f"http://{address(db)}:8080/") == "db says hi"
    ok(cni(sandbox, "A", "del", "web", "A-web"))
    ok(cni(sandbox, "B", "del", "db", "B-db"))


def test_web_on_A_linked_to_db_on_B_follows_a_restart(sandbox, cluster):
    sandbox.sh("ip netns add web; ip netns add db")
    db = ok(cni(sandbox, "B", "add", "db", "B-db1", pod="db"))
    web = ok(cni(sandbox, "A", "add", "web", "A-web", pod="web", cap={"links": ["db:dbapp"]}))
    assert web
    hosts = sandbox.sh("ip netns exec web getent hosts dbapp").stdout.split()
    assert hosts[0] == address(db)
    # B added db before A held a block: B routes to it from its next call.
    ok(cni(sandbox, "B", "status", "db", "B-db1"))
    serve(sandbox, "db")
    assert fetch(sandbox, "web", "http://dbapp:8080/") == "db says hi"
    # db restarts on B as another container, with another address.
    ok(cni(sandbox, "B", "del", "db", "B-db1"))
    sandbox.sh("ip netns del db; ip netns add db")
    db2 = ok(cni(sandbox, "B", "add", "db", "B-db2", pod="db"))
    assert address(db2) != address(db)
    ok(cni(sandbox, "A", "status", "web", "A-web"))  # the next call on A
    hosts = sandbox.sh("ip netns exec web getent hosts dbapp").stdout.split()
    assert hosts[0] == address(db2)
    serve(sandbox, "db", "db again")
    assert fetch(sandbox, "web", "http://dbapp:8080/") == "db again"


def test_gc_returns_blocks_and_names(sandbox, cluster):
    sandbox.sh("ip netns add db")
    ok(cni(sandbox, "B", "add", "db", "B-db", pod="db"))
    keys = etcd_keys(sandbox)
    assert any("/cnet/blocks/" in k for k in keys) and any("/cnet/names/" in k for k in keys)
    sandbox.sh("rm -f /var/lib/cni/results/cnet-B-db-eth0; ip netns del db")
    ok(cni(sandbox, "B", "gc", "db", "B-gc"))
    assert etcd_keys(sandbox) == []


def etcd_keys(sandbox) -> list[str]:
    import base64

    body = json.dumps({"key": base64.b64encode(b"/").decode(), "range_end": "MA=="})
    out = sandbox.sh(f"curl -s -X POST -d '{body}' http://{ETCD_ADDRESS}:2379/v3/kv/range").stdout
    return sorted(base64.b64decode(kv["key"]).decode() for kv in json.loads(out).get("kvs", []))


def test_etcd_down_bridge(sandbox, cluster):
    """A held block still serves a pod-name-only ADD (its name published
    later); an ADD with a link needs etcd: 11, leaving nothing; STATUS 50."""
    sandbox.sh("ip netns add db; ip netns add web; ip netns add web2")
    ok(cni(sandbox, "B", "add", "db", "B-db", pod="db"))
    ok(cni(sandbox, "A", "add", "web", "A-web", pod="web"))
    cluster.members[0].stop()
    before = leftovers(sandbox, "A")
    run = cni(sandbox, "A", "add", "web2", "A-web2", pod="web2", cap={"links": ["db:dbapp"]})
    assert run.returncode != 0 and json.loads(run.stdout)["code"] == 11, run.stdout
    assert leftovers(sandbox, "A") == before
    served = ok(cni(sandbox, "A", "add", "web2", "A-web2", pod="web2"))
    assert address(served) == "10.77.0.65"  # A's block: B claimed first
    status = cni(sandbox, "A", "status", "web", "A-web")
    assert status.returncode != 0 and json.loads(status.stdout)["code"] == 50, status.stdout
    # etcd back: the next STATUS publishes web2's name, which B then resolves.
    cluster.members[0].start(state="existing")
    cluster.wait_healthy()
    ok(cni(sandbox, "A", "status", "web", "A-web"))
    assert any(k.endswith("/A-web2:eth0") for k in etcd_keys(sandbox))


def leftovers(sandbox, host):
    return sandbox.sh(
        f"ls -A /var/lib/cni/host{host}/cnet; ip -n host{host} -br link show master cbr0;"
        "cat /etc/netns/*/hosts 2>/dev/null; ls /var/lib/cni/results",
        check=False,
    ).stdout

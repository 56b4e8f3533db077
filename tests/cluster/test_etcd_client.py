"""The in-tree etcd v3 client against real etcd (3.4, JSON gateway)."""

from __future__ import annotations

import json
import time

from etcdrun import etcd1_fixture, etcd3_fixture, py  # noqa: F401 (fixtures)

CLIENT = """
import sys, time
from dockline.cluster import config, etcd
from dockline.cni import jsonio
conf = config.parse(jsonio.loads(sys.argv[1] if len(sys.argv) > 1 else %r))
c = etcd.Client(conf)
"""


def run(sandbox, cluster: dict, body: str, **kw):
    code = CLIENT % json.dumps(cluster) + body
    proc = py(sandbox, code, **kw)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_kv_txn_lease_round_trip(sandbox, etcd1):
    out = run(
        sandbox,
        {"endpoints": etcd1.endpoints},
        """
c.put(b"/t/a", b"1")
assert c.get(b"/t/a").value == b"1"
assert c.get(b"/t/missing") is None
assert c.create(b"/t/b", b"x") is True
assert c.create(b"/t/b", b"y") is False
assert c.get(b"/t/b").value == b"x"
assert [kv.key for kv in c.get_prefix(b"/t/")] == [b"/t/a", b"/t/b"]
assert c.delete_if_value(b"/t/b", b"nope") is False
assert c.delete_if_value(b"/t/b", b"x") is True
lease = c.grant(30)
assert c.create(b"/t/leased", b"v", lease)
assert c.get(b"/t/leased").lease == lease
assert 0 < c.keepalive(lease) <= 30
c.revoke(lease)
assert c.get(b"/t/leased") is None
assert c.keepalive(lease) == 0
assert c.delete(b"/t/a") == 1
print("local", c.local_address)
""",
    )
    assert "local 127.0.0.1" in out


def test_failover_to_a_live_member(sandbox, etcd3):
    etcd3.members[0].stop()
    out = run(
        sandbox,
        {"endpoints": etcd3.endpoints, "timeout": 5},
        """
t = time.monotonic()
c.put(b"/f/k", b"v")
assert c.get(b"/f/k").value == b"v"
print("took", time.monotonic() - t)
""",
    )
    assert float(out.split()[-1]) < 5


def test_unreachable_is_code_11_within_the_timeout(sandbox):
    # A blackholed address (no route answers) and a refused port: both fail
    # over, and the whole call ends by the deadline.
    sandbox.sh("ip route add blackhole 192.0.2.0/24")
    t = time.monotonic()
    out = run(
        sandbox,
        {"endpoints": ["http://192.0.2.1:2379", "http://127.0.0.1:1"], "timeout": 1},
        """
try:
    c.get(b"/x")
except etcd.EtcdUnavailable as exc:
    print("code", exc.code, exc.details)
""",
    )
    assert "code 11" in out
    assert time.monotonic() - t < 4

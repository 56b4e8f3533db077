"""The zygote's workers: a child that served a call cleanly serves the
next ones, keeps nothing of its callers between calls, and leaves when a
call changed what it cannot put back; calls beyond the pool wait for a
worker, or get a child of their own when every worker is stuck."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from helpers.cni import call_plugin
from helpers.zygote import (
    add_env,
    busy_children,
    idle_worker,
    live_children,
    wait_for,
    wait_for_zygote,
    zygote_work,
)

CONF = {
    "cniVersion": "1.0.0",
    "name": "net1",
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.3.0.0/24"}]]},
}


def _warm(sb, hl) -> tuple[int, int]:
    """(zygote pid, its one idle worker) after two calls."""
    call_plugin(sb, hl, "ADD", CONF, containerid="first").ok()  # starts the zygote
    zpid = wait_for_zygote(sb)
    call_plugin(sb, hl, "ADD", CONF, containerid="second").ok()  # makes a worker
    worker = wait_for(lambda: [p for p in live_children(zpid) if idle_worker(p)], "a worker")
    assert len(worker) == 1
    return zpid, worker[0]


def _launch(sb, hl, cid: str, shell: str = "", network: str = "net1") -> dict:
    """An ADD run as `sh -c "<shell>; exec <launcher>"`: its result."""
    env = dict(add_env(hl, cid), MARK_OF_THE_CALLER=cid)
    proc = sb.run(
        ["sh", "-c", f"{shell}\nexec {hl}"], env=env, input=json.dumps(dict(CONF, name=network))
    )
    assert proc.returncode == 0, proc
    assert "zygote at" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def test_one_worker_serves_call_after_call(sandbox, dockline_bin):
    hl = dockline_bin / "host-local"
    zpid, worker = _warm(sandbox, dockline_bin / "host-local")
    addresses = set()
    for i in range(5):
        before = zygote_work(zpid)
        result = _launch(sandbox, hl, f"c{i}")
        assert zygote_work(zpid) != before, "not served by the zygote"
        addresses.add(result["ips"][0]["address"])
        wait_for(lambda: idle_worker(worker), "the worker to be idle again")
        assert live_children(zpid) == [worker]
    assert len(addresses) == 5


def test_an_idle_worker_keeps_nothing_of_its_last_caller(sandbox, dockline_bin):
    """Between calls a worker holds none of the caller's stdio, directory
    or environment, and has the zygote's umask."""
    hl = dockline_bin / "host-local"
    zpid, worker = _warm(sandbox, hl)
    sandbox.sh("mkdir -p /var/lib/cni/callers-dir")
    _launch(sandbox, hl, "kept", "cd /var/lib/cni/callers-dir && umask 027")
    wait_for(lambda: idle_worker(worker), "the worker to be idle again")
    assert live_children(zpid) == [worker]
    assert os.readlink(f"/proc/{worker}/cwd") == "/"
    assert (
        Path(f"/proc/{worker}/environ").read_bytes() == Path(f"/proc/{zpid}/environ").read_bytes()
    )
    assert [os.readlink(f"/proc/{worker}/fd/{fd}") for fd in (0, 1, 2)] == ["/dev/null"] * 3
    status = Path(f"/proc/{worker}/status").read_text()
    assert "\nUmask:\t0077\n" in status
    # and the directory is free to go
    sandbox.sh("rmdir /var/lib/cni/callers-dir")


def test_a_worker_whose_caller_lowered_a_hard_limit_leaves(sandbox, dockline_bin):
    """`ulimit -n 512` lowers the hard limit too: the worker served that
    call with it, then exits, since it could not give the next caller a
    higher one; the next caller gets a fresh worker and its own limits."""
    hl = dockline_bin / "host-local"
    zpid, worker = _warm(sandbox, hl)
    _launch(sandbox, hl, "limited", "ulimit -n 512")
    wait_for(lambda: worker not in live_children(zpid), "the worker to exit")
    _launch(sandbox, hl, "unlimited")
    (fresh,) = wait_for(lambda: [p for p in live_children(zpid) if idle_worker(p)], "a worker")
    assert fresh != worker
    assert Path(f"/proc/{fresh}/limits").read_text() == Path(f"/proc/{zpid}/limits").read_text()


def test_a_worker_whose_client_was_killed_leaves(sandbox, dockline_bin):
    """A runtime that kills the executable mid-call: the call unwinds and
    the worker that served it exits rather than serve again."""
    hl = dockline_bin / "host-local"
    zpid, worker = _warm(sandbox, hl)
    lock = "/var/lib/cni/networks/net1/lock"
    holder = subprocess.Popen(sandbox.nsenter() + ["flock", "-o", lock, "sleep", "60"])
    try:
        wait_for(lambda: sandbox.sh(f"flock -n {lock} true", check=False).returncode, "the lock")
        env = add_env(hl, "killed")
        add = subprocess.Popen(
            sandbox.nsenter() + [str(hl)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        add.stdin.write(json.dumps(CONF).encode())
        add.stdin.close()
        wait_for(lambda: busy_children(zpid) == [worker], "the worker to take the call")
        add.kill()
        add.wait()
        wait_for(lambda: worker not in live_children(zpid), "the worker to exit")
    finally:
        holder.kill()
        holder.wait()
    assert "killed" not in sandbox.sh("cat /var/lib/cni/networks/net1/10.3.0.*").stdout
    assert _launch(sandbox, hl, "after")["ips"][0]["address"] == "10.3.0.4/24"


def test_calls_beyond_stuck_workers_get_children_of_their_own(sandbox, dockline_bin, tmp_path):
    """A zygote on one CPU has 4 workers.  Six ADDs all wait on the store's
    lock: four take the workers, and the two left waiting get a child
    each once no worker has come free for a moment; all six then finish."""
    hl = dockline_bin / "host-local"
    first = sandbox.run(
        ["taskset", "-c", "0", str(hl)],
        input=json.dumps(CONF),
        env=add_env(hl, "first"),
    )
    assert first.returncode == 0, first
    zpid = wait_for_zygote(sandbox)
    assert os.sched_getaffinity(zpid) == {0}
    lock = "/var/lib/cni/networks/net1/lock"
    holder = subprocess.Popen(sandbox.nsenter() + ["flock", "-o", lock, "sleep", "60"])
    calls = []
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps(CONF))
    try:
        wait_for(lambda: sandbox.sh(f"flock -n {lock} true", check=False).returncode, "the lock")
        for i in range(6):
            env = add_env(hl, f"w{i}")
            with conf.open("rb") as stdin:
                proc = subprocess.Popen(
                    sandbox.nsenter() + [str(hl)],
                    env=env,
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            calls.append(proc)
        wait_for(lambda: len(busy_children(zpid)) == 6, "six children serving", timeout=10)
        assert all(call.poll() is None for call in calls)  # all still waiting on the lock
    finally:
        holder.kill()
        holder.wait()
    for call in calls:
        out, err = call.communicate(timeout=20)
        assert call.returncode == 0, (out, err)
        assert b"zygote at" not in err, err
    wait_for(lambda: not busy_children(zpid), "the children to finish")
    assert len(live_children(zpid)) == 4  # the one-call children are gone, the workers stay


def test_a_stopped_zygote_takes_its_workers_along(sandbox, dockline_bin):
    hl = dockline_bin / "host-local"
    zpid, worker = _warm(sandbox, hl)
    os.kill(zpid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state in ("Z", "X"):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the worker outlived its zygote")

"""bridge DEL's best-effort steps: a step started in a thread (the veth's
deletion) is waited for until it returns or its effect is settled, and a
real DEL answers with the veth already gone from every listing."""

from __future__ import annotations

import threading
import time

from dockline.cni.errors import CniError
from dockline.plugins.bridge import _BestEffort
from helpers.cni import call_plugin


def test_finish_stops_waiting_once_a_started_step_is_settled():
    gate = threading.Event()
    finished = threading.Event()
    settled: list[bool] = []

    def step() -> None:
        gate.wait(10)
        finished.set()

    steps = _BestEffort()
    steps.start("slow", step, lambda: bool(settled))
    settled.append(True)
    start = time.monotonic()
    steps.finish()
    assert time.monotonic() - start < 2
    assert not finished.is_set()  # still in its call, as a veth deletion in the kernel
    gate.set()
    assert finished.wait(5)


def test_finish_waits_for_a_step_that_is_not_settled_and_reports_it():
    def step() -> None:
        time.sleep(0.2)
        raise CniError(7, "slow step failed")

    steps = _BestEffort()
    steps.start("slow", step, lambda: False)
    start = time.monotonic()
    steps.finish()
    assert time.monotonic() - start >= 0.2
    try:
        steps.raise_first()
    except CniError as err:
        assert err.msg == "slow step failed"
    else:
        raise AssertionError("the step's failure was not reported")


def test_del_answers_with_the_veth_gone(sandbox, dockline_bin):
    conf = {
        "cniVersion": "1.0.0",
        "name": "delnet",
        "type": "bridge",
        "bridge": "brdel",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.8.0.0/24"}]]},
    }
    br = dockline_bin / "bridge"
    for i in range(3):
        sandbox.sh(f"ip netns add d{i}")
        call_plugin(sandbox, br, "ADD", conf, containerid=f"d{i}", netns=f"/run/netns/d{i}").ok()
        assert "dl" in sandbox.sh("ip -o link show master brdel").stdout
        call_plugin(sandbox, br, "DEL", conf, containerid=f"d{i}", netns=f"/run/netns/d{i}").ok()
        # right after the answer: no port left on the bridge, no eth0 inside
        assert sandbox.sh("ip -o link show master brdel").stdout == ""
        assert "eth0" not in sandbox.sh(f"ip -n d{i} -o link show").stdout
        sandbox.sh(f"ip netns del d{i}")

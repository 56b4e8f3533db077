"""Churn: 64 workers ADD, CHECK and DEL containers on one small network for
a minute (DOCKLINE_CHURN_SECONDS), through the full chain a runtime runs:
bridge (ipMasq, a name, a link to ``db``) + host-local + portmap (one host
port per worker), with the warm zygote.

The range holds fewer addresses than there are workers, so ADDs run out
(code 11).  Invariants, checked while it runs: an ADD either gets an
address no other live attachment holds or fails with a clean code 11 (any
other answer fails the test with the plugin's output); a CHECK of a live
attachment passes.  At the end, with about half of the workers' containers
still live, the store, the host veths, the masquerade and port rules, the
name registry and every hosts file match the live set exactly; after
deleting the rest, nothing is left.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import reliability as state

SECONDS = float(os.environ.get("DOCKLINE_CHURN_SECONDS", "60"))
WORKERS = 64
NETWORK, BRIDGE = "churn", "churn0"
SUBNET = "10.77.0.0/26"
# 48 addresses for 64 workers (and db): the range runs out whenever most
# workers hold a container at once
RANGE = {"subnet": SUBNET, "rangeStart": "10.77.0.2", "rangeEnd": "10.77.0.49"}
BASE_PORT = 20000
EXHAUSTED = 11


def network() -> dict:
    net = state.load_conflist(bridge=BRIDGE)
    net["name"] = NETWORK
    net["plugins"][0]["ipam"] = {
        "type": "host-local",
        "ranges": [[RANGE]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    # The final check reads the iptables layout (chains per attachment);
    # the nftables default is covered by the crash suite and tests/firewall.
    net["plugins"][0]["ipMasqBackend"] = net["plugins"][1]["backend"] = "iptables"
    return net


def caps(worker: int, cid: str) -> dict:
    return {
        "aliases": [cid],
        "links": ["db:dbapp"],
        "portMappings": [{"hostPort": BASE_PORT + worker, "containerPort": 80, "protocol": "tcp"}],
    }


class Live:
    """The test's own record of live attachments: address -> (cid, state),
    state "live" until its DEL starts, "deleting" until it ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_ip: dict[str, list] = {}
        self.results: dict[str, tuple[int, dict]] = {}  # cid -> (worker, ADD result)
        self.violations: list[str] = []

    def added(self, worker: int, cid: str, result: dict) -> None:
        ip = result["ips"][0]["address"].split("/")[0]
        with self.lock:
            other = self.by_ip.get(ip)
            if other and other[1] == "live":
                self.violations.append(f"{cid} got {ip}, held by live {other[0]}")
            self.by_ip[ip] = [cid, "live"]
            self.results[cid] = (worker, result)

    def deleting(self, cid: str, ip: str) -> None:
        with self.lock:
            if self.by_ip.get(ip, [None])[0] == cid:
                self.by_ip[ip][1] = "deleting"

    def deleted(self, cid: str, ip: str) -> None:
        with self.lock:
            if self.by_ip.get(ip, [None])[0] == cid:
                del self.by_ip[ip]
            self.results.pop(cid, None)


class Churn:
    def __init__(self, sb, bindir, seed: int) -> None:
        self.sb, self.bindir, self.net = sb, bindir, network()
        self.seed = seed
        self.live = Live()
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.counts = {"ADD": 0, "ADD code 11": 0, "CHECK": 0, "DEL": 0, "plugin calls": 0}
        self.count_lock = threading.Lock()

    def count(self, what: str, calls: int) -> None:
        with self.count_lock:
            self.counts[what] += 1
            self.counts["plugin calls"] += calls

    def fail(self, text: str) -> None:
        self.failures.append(text)
        self.stop.set()

    def op(self, command: str, cid: str, worker: int, prev=None):
        netns = f"/run/netns/w{worker:02d}"
        ok, calls, result = state.chain(
            self.sb, self.bindir, self.net, command, cid, netns, caps(worker, cid), prev=prev
        )
        return ok, calls, result

    def worker(self, worker: int, deadline: float) -> None:
        rng = random.Random(f"{self.seed}/{worker}")
        cycle = 0
        while not self.stop.is_set():
            if time.monotonic() > deadline:
                return
            cid = f"w{worker:02d}-{cycle:05d}"
            cycle += 1
            ok, calls, result = self.op("ADD", cid, worker)
            if not ok:
                answer = calls[-1].json() or {}
                if calls[-1].exe.name == "bridge" and answer.get("code") == EXHAUSTED:
                    self.count("ADD code 11", len(calls))
                    # a runtime DELs after a failed ADD
                    ok, dels, _ = self.op("DEL", cid, worker)
                    self.count("DEL", len(dels))
                    if not ok:
                        self.fail(
                            f"DEL after code 11 of {cid}: " + " | ".join(c.describe() for c in dels)
                        )
                    time.sleep(rng.uniform(0.01, 0.1))
                    continue
                self.fail(f"ADD {cid}: " + " | ".join(c.describe() for c in calls))
                return
            self.count("ADD", len(calls))
            self.live.added(worker, cid, result)
            ok, checks, _ = self.op("CHECK", cid, worker, prev=result)
            self.count("CHECK", len(checks))
            if not ok:
                self.fail(f"CHECK {cid}: " + " | ".join(c.describe() for c in checks if c.code))
                return
            if time.monotonic() > deadline and worker % 2 == 0:
                return  # end with this one live
            ip = result["ips"][0]["address"].split("/")[0]
            self.live.deleting(cid, ip)
            ok, dels, _ = self.op("DEL", cid, worker, prev=result)
            self.count("DEL", len(dels))
            if not ok:
                self.fail(f"DEL {cid}: " + " | ".join(c.describe() for c in dels if c.code))
                return
            self.live.deleted(cid, ip)


def _expect_matches(st: state.State, live: Live, db: dict) -> list[str]:
    """Differences between the kernel and disk state and the live set."""
    from dockline.cni.attachment import Attachment

    problems = []
    results = dict(live.results)
    expected_ips = {cid: r["ips"][0]["address"].split("/")[0] for cid, (_, r) in results.items()}
    db_ip = db["ips"][0]["address"].split("/")[0]

    def compare(what, want, have):
        if want != have:
            extra = sorted(set(have) - set(want)) if isinstance(have, (set, dict)) else have
            missing = sorted(set(want) - set(have)) if isinstance(want, (set, dict)) else want
            problems.append(f"{what}: left {extra}, missing {missing}")

    compare(
        "reservations",
        {**{ip: f"{cid} eth0" for cid, ip in expected_ips.items()}, db_ip: "db eth0"},
        st.reservations,
    )
    want_veths = {r["interfaces"][1]["name"] for _, r in results.values()} | {
        db["interfaces"][1]["name"]
    }
    compare("host veths", want_veths, set(st.veths))
    compare("bridge ports", want_veths, set(st.bridge_ports))
    compare("registry", {f"{cid}:eth0" for cid in expected_ips} | {"db:eth0"}, set(st.registry))
    for cid, ip in expected_ips.items():
        if st.registry.get(f"{cid}:eth0", {}).get("ips") != [ip]:
            problems.append(
                f"registry entry of {cid}: {st.registry.get(f'{cid}:eth0')}, address {ip}"
            )
    # masquerade: one chain per attachment, entered for its address
    masq = {}
    for line in st.ipt:
        m = re.match(r"-A POSTROUTING -s ([0-9.]+)(?:/32)? .*-j (DL-\w+)$", line)
        if m:
            masq[m.group(2)] = m.group(1)
    compare(
        "masquerade rules",
        {
            "DL-" + Attachment(NETWORK, cid, "eth0").tag: ip
            for cid, ip in {**expected_ips, "db": db_ip}.items()
        },
        masq,
    )
    chains = {l.split()[0][1:] for l in st.ipt if l.startswith(":DL")}
    compare(
        "DL-/DLP- chains",
        {"DL-" + Attachment(NETWORK, c, "eth0").tag for c in list(expected_ips) + ["db"]}
        | {"DLP-" + Attachment(NETWORK, c, "eth0").tag for c in expected_ips},
        chains,
    )
    # published ports: host port of the worker -> the container's address
    dnat = {}
    for line in st.ipt:
        m = re.match(r"-A DLP-(\w+) .*--dport (\d+) .*-j DNAT --to-destination (\S+):80$", line)
        if m:
            dnat[int(m.group(2))] = m.group(3)
    compare(
        "published ports",
        {BASE_PORT + w: expected_ips[cid] for cid, (w, _) in results.items()},
        dnat,
    )
    # hosts files: the live container of a worker has its two link lines
    # (one per db address), everyone else none
    by_worker = {w: cid for cid, (w, _) in results.items()}
    have_lines: dict[str, list[str]] = {}
    for line in st.hosts_lines:
        path, _, text = line.partition(":")
        have_lines.setdefault(path, []).append(text)
    want_lines = {}
    for w, cid in by_worker.items():
        tag = Attachment(NETWORK, cid, "eth0").tag[8:]
        want_lines[f"/etc/netns/w{w:02d}/hosts"] = [f"{db_ip}\tdbapp db\t# dockline-link {tag}"]
    compare("hosts-file lines", want_lines, have_lines)
    # route_localnet on the bridge is held by each live container with a
    # published port (one name each, a link to .holders) and off once none
    # is left
    names = {
        f.rsplit("/", 1)[1]
        for f in st.state_files
        if f.startswith(f"{state.PLUGIN_STATE}/localnet/{BRIDGE}/")
    }
    holders = {n for n in names if not n.startswith(".")}
    compare(
        "route_localnet holders",
        {Attachment(NETWORK, cid, "eth0").tag for cid in expected_ips},
        holders,
    )
    compare("route_localnet count file", {".holders"} if holders else set(), names - holders)
    want_switch = f"{BRIDGE}={1 if expected_ips else 0}"
    if want_switch not in st.route_localnet:
        problems.append(f"route_localnet: want {want_switch}, have {st.route_localnet}")
    return problems


@pytest.mark.slow
def test_churn_64_workers_full_chain(sandbox, dockline_bin, crash_seed):
    churn = Churn(sandbox, dockline_bin, crash_seed)
    sandbox.sh("ip netns add db; " + "; ".join(f"ip netns add w{w:02d}" for w in range(WORKERS)))
    ok, calls, db = state.chain(
        sandbox, dockline_bin, churn.net, "ADD", "db", "/run/netns/db", {"aliases": ["db"]}
    )
    assert ok, [c.describe() for c in calls]
    state.wait_for_zygote(sandbox)
    start = time.monotonic()
    deadline = start + SECONDS
    threads = [threading.Thread(target=churn.worker, args=(w, deadline)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    c = churn.counts
    ops = c["ADD"] + c["ADD code 11"] + c["CHECK"] + c["DEL"]
    print(
        f"\nchurn: {WORKERS} workers, {elapsed:.1f} s, {ops} ops ({ops / elapsed:.1f} ops/s, "
        f"{c['plugin calls'] / elapsed:.1f} plugin calls/s): {c}; "
        f"{len(churn.live.results)} left live"
    )
    assert not churn.failures, "\n".join(churn.failures[:5])
    assert not churn.live.violations, churn.live.violations[:10]
    assert c["ADD"] > 0 and c["ADD code 11"] > 0, c  # both outcomes were exercised
    state.wait_quiet(sandbox)

    problems = _expect_matches(state.State(sandbox, NETWORK, BRIDGE), churn.live, db)
    assert not problems, "\n".join(problems)
    survivors = list(churn.live.results.items())
    assert survivors, "no container was left live to compare"

    def check_and_delete(item):
        cid, (worker, result) = item
        ok, calls, _ = churn.op("CHECK", cid, worker, prev=result)
        assert ok, [c.describe() for c in calls]
        ok, calls, _ = churn.op("DEL", cid, worker, prev=result)
        assert ok, [c.describe() for c in calls]
        churn.live.deleted(cid, result["ips"][0]["address"].split("/")[0])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check_and_delete, survivors))
    problems = _expect_matches(state.State(sandbox, NETWORK, BRIDGE), churn.live, db)
    assert not problems, "\n".join(problems)

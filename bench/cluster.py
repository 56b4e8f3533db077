"""Cluster mode's cost: dockline ADD and DEL with and without a ``cluster``
object, side by side, in one run.

    scripts/in-sandbox .venv/bin/python3 bench/cluster.py [--containers 100] [--rounds 30]

Inside the sandbox a one-member etcd (Debian's etcd-server) is started on
127.0.0.1 with its data on the sandbox's tmpfs.  Three networks, each with
its own bridge and subnet, are filled with ``--containers`` containers:
``single`` (no cluster object), ``cluster`` (blocks of /26: the fill leaves
a partly used block, so a timed ADD is served from it) and ``claim`` (empty,
blocks of /30 with 1 usable address each: every timed ADD claims a block
from etcd and every DEL returns it: the worst case).  Then ADD and DEL of
one more container are timed for ``--rounds`` rounds, the networks
alternating, medians in ms of the whole plugin process.  ``--ipam-only``
times host-local alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".build" / "cni-bin"
ETCD = "http://127.0.0.1:2379"
NETS = {
    "single": ("10.231.0.0/16", None),
    "cluster": ("10.232.0.0/16", {"endpoints": [ETCD]}),
    "claim": ("10.233.0.0/16", {"endpoints": [ETCD], "blockPrefix": 30}),
}


def config(name: str, ipam_only: bool) -> dict:
    subnet, cluster = NETS[name]
    conf: dict = {
        "cniVersion": "1.1.0",
        "name": f"bench-{name}",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]]},
    }
    if not ipam_only:
        conf.update(type="bridge", bridge=f"br-{name}", isGateway=True, ipMasq=True)
    if cluster:
        conf["cluster"] = cluster
    return conf


def call(conf: dict, command: str, cid: str, netns: str) -> float:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(BIN),
    }
    binary = BIN / conf.get("type", "host-local")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(binary)], input=json.dumps(conf).encode(), env=env, capture_output=True
    )
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        sys.exit(
            f"{conf['name']} {command} {cid} failed: {proc.stdout.decode()} {proc.stderr.decode()}"
        )
    return elapsed


def netns(name: str, ipam_only: bool) -> str:
    if ipam_only:
        return "/run/netns/none"
    subprocess.run(["ip", "netns", "add", name], check=True)
    return f"/run/netns/{name}"


def start_etcd() -> subprocess.Popen:
    os.makedirs("/var/lib/cni/etcd", mode=0o700, exist_ok=True)
    proc = subprocess.Popen(
        ["etcd", "--name", "bench", "--data-dir", "/var/lib/cni/etcd/bench",
         "--listen-client-urls", ETCD, "--advertise-client-urls", ETCD,
         "--listen-peer-urls", "http://127.0.0.1:2380",
         "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
         "--initial-cluster", "bench=http://127.0.0.1:2380",
         "--log-level", "error", "--logger", "zap"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        probe = subprocess.run(
            ["curl", "-s", "-m", "1", "-X", "POST", "-d", "{}", ETCD + "/v3/maintenance/status"],
            capture_output=True, text=True,
        )  # fmt: skip
        if '"leader"' in probe.stdout:
            return proc
        time.sleep(0.1)
    proc.kill()
    sys.exit("etcd did not start")


def main() -> None:
    if os.environ.get("DOCKLINE_IN_SANDBOX") != "1":
        sys.exit("run me in a sandbox: scripts/in-sandbox .venv/bin/python3 bench/cluster.py")
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--ipam-only", action="store_true", help="host-local alone, no bridge")
    args = ap.parse_args()
    etcd = start_etcd()
    try:
        confs = {name: config(name, args.ipam_only) for name in NETS}
        for name in ("single", "cluster"):
            for i in range(args.containers):
                cid = f"{name}-fill-{i}"
                call(confs[name], "ADD", cid, netns(cid, args.ipam_only))
        times = {n: {"ADD": [], "DEL": []} for n in NETS}
        for r in range(args.rounds):
            order = list(NETS) if r % 2 == 0 else list(reversed(NETS))
            for name in order:
                cid = f"{name}-bench-{r}"
                path = netns(cid, args.ipam_only)
                times[name]["ADD"].append(call(confs[name], "ADD", cid, path))
                times[name]["DEL"].append(call(confs[name], "DEL", cid, path))
        what = "host-local" if args.ipam_only else "bridge+host-local, ipMasq"
        print(f"{what}, {args.containers} containers filled, {args.rounds} rounds, median ms")
        print(f"| {'network':<40} | {'ADD':>6} | {'DEL':>6} |")
        labels = {
            "single": "single host (no cluster object)",
            "cluster": "cluster, served from a held block",
            "claim": "cluster, ADD claims / DEL returns a block",
        }
        for name in NETS:
            add = statistics.median(times[name]["ADD"])
            dele = statistics.median(times[name]["DEL"])
            print(f"| {labels[name]:<40} | {add:6.1f} | {dele:6.1f} |")
    finally:
        etcd.terminate()
        etcd.wait()


if __name__ == "__main__":
    main()

"""Side-by-side benchmark: dockline vs the reference plugins, in one run.

Run it through the sandbox so nothing touches the host's network:

    scripts/bench [--containers 100] [--rounds 30] [--no-masq]

For each implementation a network (own bridge, own subnet) is filled with
``--containers`` containers first; then ADD and DEL of one more container
are timed, alternating between the implementations round by round so both
see the same machine state. Reported: medians (ms) and dockline/reference.
Timings are of the whole plugin process, as a runtime sees them.
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
IMPLS = {"reference": Path("/usr/lib/cni"), "dockline": REPO / ".build" / "cni-bin"}
SUBNETS = {"reference": "10.210.0.0/16", "dockline": "10.220.0.0/16"}


def config(impl: str, masq: bool, ipam_only: bool) -> dict:
    ipam = {"type": "host-local", "ranges": [[{"subnet": SUBNETS[impl]}]]}
    if ipam_only:
        return {"cniVersion": "1.0.0", "name": f"bench-{impl}", "ipam": ipam}
    return {
        "cniVersion": "1.0.0",
        "name": f"bench-{impl}",
        "type": "bridge",
        "bridge": f"br-{impl[:3]}",
        "isGateway": True,
        "ipMasq": masq,
        "ipam": ipam,
    }


def portmap_config(impl: str, prev: dict | None, port: int) -> dict:
    conf = {
        "cniVersion": "1.0.0",
        "name": f"bench-{impl}",
        "type": "portmap",
        "snat": True,
        "runtimeConfig": {
            "portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]
        },
    }
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def chain(impl: str, command: str, confs: list[dict], cid: str, netns: str, port: int) -> float:
    """ADD through bridge then portmap (prevResult chained), DEL in reverse,
    as a runtime runs a conflist; the sum of the plugin processes' times."""
    if command == "ADD":
        total, out = call(impl, "ADD", confs[0], cid, netns, want_result=True)
        extra, _ = call(impl, "ADD", portmap_config(impl, out, port), cid, netns, want_result=True)
        RESULTS[(impl, cid)] = out
        return total + extra
    prev = RESULTS.pop((impl, cid))
    total, _ = call(impl, "DEL", portmap_config(impl, prev, port), cid, netns, want_result=True)
    extra, _ = call(impl, "DEL", dict(confs[0], prevResult=prev), cid, netns, want_result=True)
    return total + extra


RESULTS: dict = {}


def call(impl: str, command: str, conf: dict, cid: str, netns: str, want_result: bool = False):
    binary = IMPLS[impl] / ("host-local" if "type" not in conf else conf["type"])
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(IMPLS[impl]),
    }
    data = json.dumps(conf).encode()
    start = time.perf_counter()
    proc = subprocess.run([str(binary)], input=data, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{impl} {command} {cid} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    if want_result:
        out = proc.stdout.decode().strip()
        return elapsed * 1000, (json.loads(out) if out else None)
    return elapsed * 1000


def netns(name: str) -> str:
    subprocess.run(["ip", "netns", "add", name], check=True)
    return f"/run/netns/{name}"


def main() -> None:
    if os.environ.get("DOCKLINE_IN_SANDBOX") != "1":
        sys.exit("run me through scripts/bench (a private sandbox)")
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--no-masq", action="store_true")
    ap.add_argument("--ipam-only", action="store_true", help="host-local alone, no bridge")
    ap.add_argument(
        "--portmap",
        action="store_true",
        help="the chain bridge+portmap, one published port per container",
    )
    args = ap.parse_args()
    masq = not args.no_masq
    confs = {impl: config(impl, masq, args.ipam_only) for impl in IMPLS}
    ports = {impl: iter(range(20000 if impl == "reference" else 30000, 40000)) for impl in IMPLS}
    used_ports: dict = {}

    def run(impl, command, cid, path):
        if not args.portmap:
            return call(impl, command, confs[impl], cid, path)
        if command == "ADD":
            used_ports[(impl, cid)] = next(ports[impl])
        return chain(impl, command, [confs[impl]], cid, path, used_ports[(impl, cid)])

    for impl in IMPLS:
        for i in range(args.containers):
            cid = f"{impl[:3]}-fill-{i}"
            path = netns(cid) if not args.ipam_only else "/run/netns/none"
            run(impl, "ADD", cid, path)
    times: dict[str, dict[str, list[float]]] = {i: {"ADD": [], "DEL": []} for i in IMPLS}
    for r in range(args.rounds):
        order = list(IMPLS) if r % 2 == 0 else list(reversed(IMPLS))
        for impl in order:
            cid = f"{impl[:3]}-bench-{r}"
            path = netns(cid) if not args.ipam_only else "/run/netns/none"
            times[impl]["ADD"].append(run(impl, "ADD", cid, path))
        for impl in order:
            cid = f"{impl[:3]}-bench-{r}"
            path = f"/run/netns/{cid}" if not args.ipam_only else "/run/netns/none"
            times[impl]["DEL"].append(run(impl, "DEL", cid, path))
            if not args.ipam_only:
                subprocess.run(["ip", "netns", "del", cid], check=True)
    what = "host-local" if args.ipam_only else f"bridge+host-local, ipMasq={masq}"
    if args.portmap:
        what = f"bridge+host-local then portmap (1 port each), ipMasq={masq}"
    print(
        f"{what}; {args.containers} containers already on each network; "
        f"{args.rounds} rounds; medians in ms"
    )
    for command in ("ADD", "DEL"):
        ref = statistics.median(times["reference"][command])
        own = statistics.median(times["dockline"][command])
        print(f"  {command}: reference {ref:6.1f}   dockline {own:6.1f}   ratio {own / ref:4.2f}")


if __name__ == "__main__":
    main()

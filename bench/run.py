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
    return {"cniVersion": "1.0.0", "name": f"bench-{impl}", "type": "bridge",
            "bridge": f"br-{impl[:3]}", "isGateway": True, "ipMasq": masq, "ipam": ipam}


def call(impl: str, command: str, conf: dict, cid: str, netns: str) -> float:
    binary = IMPLS[impl] / ("host-local" if "type" not in conf else conf["type"])
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
           "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
           "CNI_PATH": str(IMPLS[impl])}
    data = json.dumps(conf).encode()
    start = time.perf_counter()
    proc = subprocess.run([str(binary)], input=data, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{impl} {command} {cid} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
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
    args = ap.parse_args()
    masq = not args.no_masq
    confs = {impl: config(impl, masq, args.ipam_only) for impl in IMPLS}
    for impl in IMPLS:
        for i in range(args.containers):
            cid = f"{impl[:3]}-fill-{i}"
            path = netns(cid) if not args.ipam_only else "/run/netns/none"
            call(impl, "ADD", confs[impl], cid, path)
    times: dict[str, dict[str, list[float]]] = {i: {"ADD": [], "DEL": []} for i in IMPLS}
    for r in range(args.rounds):
        order = list(IMPLS) if r % 2 == 0 else list(reversed(IMPLS))
        for impl in order:
            cid = f"{impl[:3]}-bench-{r}"
            path = netns(cid) if not args.ipam_only else "/run/netns/none"
            times[impl]["ADD"].append(call(impl, "ADD", confs[impl], cid, path))
        for impl in order:
            cid = f"{impl[:3]}-bench-{r}"
            path = f"/run/netns/{cid}" if not args.ipam_only else "/run/netns/none"
            times[impl]["DEL"].append(call(impl, "DEL", confs[impl], cid, path))
            if not args.ipam_only:
                subprocess.run(["ip", "netns", "del", cid], check=True)
    what = "host-local" if args.ipam_only else f"bridge+host-local, ipMasq={masq}"
    print(f"{what}; {args.containers} containers already on each network; "
          f"{args.rounds} rounds; medians in ms")
    for command in ("ADD", "DEL"):
        ref = statistics.median(times["reference"][command])
        own = statistics.median(times["dockline"][command])
        print(f"  {command}: reference {ref:6.1f}   dockline {own:6.1f}   ratio {own / ref:4.2f}")


if __name__ == "__main__":
    main()

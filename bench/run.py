"""Side-by-side benchmark: dockline against the reference plugins, in one run.

Run it through the sandbox so nothing touches the host's network:

    scripts/bench                                  # the full run (N = 0, 100, 500, 1000)
    scripts/bench --sizes 0,100 --reps 5           # a quick one while developing
    scripts/bench --json /tmp/bench.json           # also write every sample

Each config is measured in a fresh sandbox of its own (a nested
scripts/in-sandbox), so "N attached" means N containers on the host, made
by each implementation on its own network:

- ``conflist``: bridge (isGateway, ipMasq) + host-local, then portmap with
  one hostPort, cniVersion 1.0.0, run as a runtime runs a conflist (ADD in
  order with prevResult, DEL in reverse with the ADD's result);
- ``bridge``: bridge (isGateway, ipMasq) + host-local alone;
- ``host-local``: the IPAM plugin alone (not in the default run).

For every N in ``--sizes`` (ascending) both networks are filled up to N
background containers (in parallel, each by its own implementation, so
each side's state is what it would make), then ADD and DEL of one more
container are timed ``--reps`` times, the implementations alternating
round by round so both see the same machine.  At ``--parallel-at`` (default:
100, or the nearest size) ``--parallel`` ADDs are started at once, then as
many DELs; their wall times are compared.  A last sandbox ("extras")
measures a cold call (no zygote), VERSION against ``python3 -I -S -c pass``,
the zygote's RSS and the PSS of a call.

Times are of the whole plugin processes as a runtime sees them (stdin in,
result out), medians in ms; ratios are dockline / reference.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path("/usr/lib/cni")
DEFAULT_DOCKLINE = REPO / ".build" / "cni-bin"
PYTHON = "/usr/bin/python3"
CONFIGS = ("conflist", "bridge", "host-local")
DEFAULT_CONFIGS = ("conflist", "bridge")
DEFAULT_SIZES = (0, 100, 500, 1000)
# Each implementation's network: its own subnet, bridge and host ports.
SUBNET = {"reference": "10.210.0.0/16", "dockline": "10.220.0.0/16"}
PORT_BASE = {"reference": 10000, "dockline": 20000}
ENV_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SETTLE = 0.25  # s after deleting containers' netns, before the next timed call
QUIET_BUSY = 0.05  # after a fill, wait for the machine to be this idle...
QUIET_LIMIT = 30.0  # ...but no longer than this (s)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- configs ------------------------------------------------------------------


def bridge_conf(impl: str, masq: bool) -> dict[str, Any]:
    return {
        "type": "bridge",
        "bridge": f"bb-{impl[:3]}",
        "isGateway": True,
        "ipMasq": masq,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET[impl]}]]},
    }


def network(config: str, impl: str, masq: bool) -> dict[str, Any]:
    """The network as a conflist: name, version, plugins."""
    name = f"bench-{impl}"
    if config == "host-local":
        ipam = {"type": "host-local", "ranges": [[{"subnet": SUBNET[impl]}]]}
        plugins = [{"type": "host-local", "ipam": ipam}]
    elif config == "bridge":
        plugins = [bridge_conf(impl, masq)]
    else:
        plugins = [
            bridge_conf(impl, masq),
            {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
        ]
    return {"cniVersion": "1.0.0", "name": name, "plugins": plugins}


class Impl:
    """One implementation's network in this sandbox, and its calls."""

    def __init__(self, name: str, bindir: Path, config: str, masq: bool) -> None:
        self.name = name
        self.bindir = bindir
        self.config = config
        self.net = network(config, name, masq)
        self.results: dict[str, Any] = {}
        self.ports: dict[str, int] = {}
        self._next_port = PORT_BASE[name]
        self._lock = threading.Lock()
        self.count = 0  # background containers attached

    def port_for(self, cid: str) -> int:
        with self._lock:
            if cid not in self.ports:
                self.ports[cid] = self._next_port
                self._next_port += 1
            return self.ports[cid]

    def plugin_conf(self, plugin: dict[str, Any], cid: str, prev: Any) -> dict[str, Any]:
        conf = {k: v for k, v in plugin.items() if k != "capabilities"}
        conf["name"] = self.net["name"]
        conf["cniVersion"] = self.net["cniVersion"]
        if (plugin.get("capabilities") or {}).get("portMappings"):
            mapping = {"hostPort": self.port_for(cid), "containerPort": 80, "protocol": "tcp"}
            conf["runtimeConfig"] = {"portMappings": [mapping]}
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def chain(self, command: str, cid: str, netns: str, env: dict[str, str] | None = None) -> float:
        """ADD in order (prevResult passed on) or DEL in reverse (the ADD's
        result as prevResult), as libcni runs a list; returns the summed
        time of the plugin processes in ms."""
        plugins = self.net["plugins"]
        total = 0.0
        if command == "ADD":
            prev = None
            for plugin in plugins:
                ms, prev = self.call("ADD", self.plugin_conf(plugin, cid, prev), cid, netns, env)
                total += ms
            with self._lock:
                self.results[cid] = prev
            return total
        with self._lock:
            prev = self.results.pop(cid, None)
        for plugin in reversed(plugins):
            ms, _ = self.call("DEL", self.plugin_conf(plugin, cid, prev), cid, netns, env)
            total += ms
        return total

    def call(
        self,
        command: str,
        conf: dict[str, Any],
        cid: str,
        netns: str,
        extra_env: dict[str, str] | None = None,
    ) -> tuple[float, Any]:
        env = {
            "PATH": ENV_PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.bindir),
        }
        env.update(extra_env or {})
        data = json.dumps(conf).encode()
        start = time.perf_counter()
        proc = subprocess.run(
            [str(self.bindir / conf["type"])], input=data, env=env, capture_output=True
        )
        elapsed = (time.perf_counter() - start) * 1000
        if proc.returncode != 0:
            raise SystemExit(
                f"{self.name} {conf['type']} {command} {cid} failed: "
                f"{proc.stdout.decode()} {proc.stderr.decode()}"
            )
        out = proc.stdout.decode().strip()
        return elapsed, (json.loads(out) if out else None)


def netns_add(name: str) -> str:
    subprocess.run(["ip", "netns", "add", name], check=True)
    return f"/run/netns/{name}"


def netns_del(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], check=True)


def container(impl: Impl, cid: str) -> str:
    """A netns for the container (none for host-local alone)."""
    return "/run/netns/none" if impl.config == "host-local" else netns_add(cid)


def gone(impl: Impl, cid: str) -> None:
    if impl.config != "host-local":
        netns_del(cid)


def fill(impls: list[Impl], upto: int, workers: int) -> float:
    """Background containers, each ADDed by its own implementation, until
    every network has ``upto``; parallel, both implementations at once."""
    jobs = []
    for impl in impls:
        jobs += [(impl, f"{impl.name[:3]}-fill-{i}") for i in range(impl.count, upto)]
        impl.count = max(impl.count, upto)
    if not jobs:
        return 0.0
    # interleave the implementations, so both fill at the same pace
    jobs.sort(key=lambda j: int(j[1].rsplit("-", 1)[1]))
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for fut in [pool.submit(lambda j: j[0].chain("ADD", j[1], container(*j)), j) for j in jobs]:
            fut.result()
    return time.monotonic() - start


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def measure(impls: list[Impl], size: int, reps: int) -> dict[str, dict[str, list[float]]]:
    """ADD then DEL of one more container, ``reps`` rounds, implementations
    alternating (and which goes first alternating too)."""
    times: dict[str, dict[str, list[float]]] = {i.name: {"ADD": [], "DEL": []} for i in impls}
    for r in range(reps):
        order = impls if r % 2 == 0 else list(reversed(impls))
        for impl in order:
            cid = f"{impl.name[:3]}-n{size}-r{r}"
            times[impl.name]["ADD"].append(impl.chain("ADD", cid, container(impl, cid)))
        for impl in order:
            cid = f"{impl.name[:3]}-n{size}-r{r}"
            path = "/run/netns/none" if impl.config == "host-local" else f"/run/netns/{cid}"
            times[impl.name]["DEL"].append(impl.chain("DEL", cid, path))
        for impl in order:
            gone(impl, f"{impl.name[:3]}-n{size}-r{r}")
        settle()
    return times


def _busy_share(window: float) -> float:
    """The share of the machine's CPU time that was busy over ``window``."""

    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    total0, idle0 = ticks()
    time.sleep(window)
    total1, idle1 = ticks()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def quiet_kernel(limit: float = QUIET_LIMIT) -> float:
    """Wait until the machine is idle (under QUIET_BUSY busy over half a
    second), at most ``limit`` s; the seconds waited.  Creating N
    containers leaves the kernel working on their interfaces for seconds
    (IPv6 address configuration, duplicate address detection, router
    solicitations), which would slow the calls timed next."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if _busy_share(0.5) < QUIET_BUSY:
            break
    return time.monotonic() - start


def settle(seconds: float = SETTLE) -> None:
    """Deleting a netns leaves the kernel work in a workqueue (its devices,
    its sysctls, an RCU grace period), which would slow whichever call
    comes next: both implementations' calls start on a quiet kernel."""
    time.sleep(seconds)


def parallel(impls: list[Impl], count: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """``count`` ADDs started at once, waited for; then ``count`` DELs.
    Wall times in ms; implementations alternate."""
    out: dict[str, dict[str, list[float]]] = {i.name: {"ADD": [], "DEL": []} for i in impls}
    for r in range(rounds):
        order = impls if r % 2 == 0 else list(reversed(impls))
        for impl in order:
            cids = [f"{impl.name[:3]}-par{r}-{k}" for k in range(count)]
            paths = {c: container(impl, c) for c in cids}
            for command in ("ADD", "DEL"):
                with ThreadPoolExecutor(max_workers=count) as pool:
                    start = time.perf_counter()
                    futs = [pool.submit(impl.chain, command, c, paths[c]) for c in cids]
                    for fut in futs:
                        fut.result()
                    out[impl.name][command].append((time.perf_counter() - start) * 1000)
            for c in cids:
                gone(impl, c)
            settle(1.0)
    return out


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    config = args.phase
    impls = [
        Impl("reference", REFERENCE, config, not args.no_masq),
        Impl("dockline", Path(args.dockline_bin), config, not args.no_masq),
    ]
    sizes = sorted(set(args.sizes))
    par_at = min(sizes, key=lambda n: abs(n - args.parallel_at))
    report: dict[str, Any] = {"config": config, "sizes": {}, "fill_seconds": {}}
    # warm-up: one ADD/DEL each (dockline's zygote starts on its first call)
    measure(impls, -1, 1)
    for size in sizes:
        secs = fill(impls, size, args.fill_workers)
        report["fill_seconds"][str(size)] = round(secs, 1)
        waited = quiet_kernel()
        report.setdefault("quiet_seconds", {})[str(size)] = round(waited, 1)
        log(
            f"{config}: {size} containers on each network (filled in {secs:.0f} s, "
            f"then {waited:.0f} s for a quiet kernel)"
        )
        times = measure(impls, size, args.reps)
        report["sizes"][str(size)] = times
        ref, own = times["reference"], times["dockline"]
        log(
            f"{config} N={size}: ADD {median(ref['ADD']):.1f} / {median(own['ADD']):.1f}, "
            f"DEL {median(ref['DEL']):.1f} / {median(own['DEL']):.1f} ms (ref / dockline)"
        )
        if size == par_at and args.parallel:
            par = parallel(impls, args.parallel, args.parallel_rounds)
            report["parallel"] = {"at": size, "count": args.parallel, "wall_ms": par}
            log(f"{config}: {args.parallel} parallel at N={size}: {par}")
    return report


# --- extras: cold call, VERSION, memory ----------------------------------------


def timed(argv: list[str], env: dict[str, str], data: bytes = b"") -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, input=data, env=env, capture_output=True)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stdout!r} {proc.stderr!r}")
    return elapsed


def proc_cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def proc_kib(pid: int | str, field: str, name: str = "status") -> int:
    """A ``field: N kB`` line of /proc/<pid>/status or smaps_rollup."""
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(entry))
    return out


def run_extras(args: argparse.Namespace) -> dict[str, Any]:
    """Cold and warm calls, VERSION, the zygote's RSS and a call's PSS."""
    reps = max(args.reps, 5)
    dl = Impl("dockline", Path(args.dockline_bin), "bridge", True)
    ref = Impl("reference", REFERENCE, "bridge", True)
    out: dict[str, Any] = {}
    version_env = {"PATH": ENV_PATH, "CNI_COMMAND": "VERSION"}
    version_in = b'{"cniVersion": "1.0.0"}'
    samples: dict[str, list[float]] = {
        "python3 -I -S -c pass": [],
        "reference VERSION": [],
        "dockline VERSION": [],
        "dockline VERSION, no zygote": [],
    }
    for _ in range(reps * 2):
        samples["python3 -I -S -c pass"].append(
            timed([PYTHON, "-I", "-S", "-c", "pass"], {"PATH": ENV_PATH})
        )
        samples["reference VERSION"].append(
            timed([str(REFERENCE / "bridge")], version_env, version_in)
        )
        samples["dockline VERSION"].append(
            timed([str(dl.bindir / "bridge")], version_env, version_in)
        )
        samples["dockline VERSION, no zygote"].append(
            timed(
                [str(dl.bindir / "bridge")],
                dict(version_env, DOCKLINE_NO_ZYGOTE="1"),
                version_in,
            )
        )
    # bridge+host-local ADD/DEL: cold (no zygote) against warm, N = 0
    cold = {"ADD": [], "DEL": []}
    warm = {"ADD": [], "DEL": []}
    refs = {"ADD": [], "DEL": []}
    no_zygote = {"DOCKLINE_NO_ZYGOTE": "1"}
    warm_cid = "dl-warmup"
    dl.chain("ADD", warm_cid, container(dl, warm_cid))
    dl.chain("DEL", warm_cid, f"/run/netns/{warm_cid}")
    gone(dl, warm_cid)
    for r in range(reps):
        for label, impl, env, into in (
            ("c", dl, no_zygote, cold),
            ("w", dl, None, warm),
            ("r", ref, None, refs),
        ):
            cid = f"x{label}-{r}"
            into["ADD"].append(impl.chain("ADD", cid, container(impl, cid), env))
            into["DEL"].append(impl.chain("DEL", cid, f"/run/netns/{cid}", env))
            gone(impl, cid)
    out["calls_ms"] = {
        **samples,
        "reference bridge ADD": refs["ADD"],
        "reference bridge DEL": refs["DEL"],
        "dockline bridge ADD": warm["ADD"],
        "dockline bridge DEL": warm["DEL"],
        "dockline bridge ADD, no zygote": cold["ADD"],
        "dockline bridge DEL, no zygote": cold["DEL"],
    }
    out["memory_kib"] = memory(dl)
    return out


def _in_flock(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0] == "73"
    except (OSError, IndexError):
        return False


def memory(dl: Impl) -> dict[str, int]:
    """The zygote's RSS and PSS; and a call's PSS (the executable the
    runtime started plus the zygote's worker serving it, which has served
    the calls before), read while the call waits for the address store's
    lock, which we hold."""
    images = {
        int(p)
        for p in os.listdir("/proc")
        if p.isdigit() and "zygote_server.serve(" in proc_cmdline(p)
    }
    # its workers run the same image: the zygote is the one not their child
    zygotes = [p for p in images if not any(p in children(q) for q in images)]
    if len(zygotes) != 1:
        return {}
    zpid = zygotes[0]
    mem = {
        "zygote RSS": proc_kib(zpid, "VmRSS"),
        "zygote PSS": proc_kib(zpid, "Pss", "smaps_rollup"),
    }
    store = Path("/var/lib/cni/networks") / dl.net["name"]
    store.mkdir(parents=True, exist_ok=True)
    with open(store / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conf = {"cniVersion": "1.0.0", "name": dl.net["name"], "ipam": dl.net["plugins"][0]["ipam"]}
        env = {
            "PATH": ENV_PATH,
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "pss-probe",
            "CNI_NETNS": "/run/netns/none",
            "CNI_IFNAME": "eth0",
        }
        proc = subprocess.Popen(
            [str(dl.bindir / "host-local")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(conf).encode())
        proc.stdin.close()
        proc.stdin = None  # so communicate() leaves it alone
        child = None
        deadline = time.monotonic() + 5
        while child is None and time.monotonic() < deadline:
            time.sleep(0.05)
            kids = [k for k in children(zpid) if _in_flock(k)]
            child = kids[0] if kids else None
        time.sleep(0.2)
        try:
            mem["call: executable PSS"] = proc_kib(proc.pid, "Pss", "smaps_rollup")
            mem["call: executable RSS"] = proc_kib(proc.pid, "VmRSS")
            if child is not None:
                mem["call: zygote worker PSS"] = proc_kib(child, "Pss", "smaps_rollup")
                mem["call: zygote worker RSS"] = proc_kib(child, "VmRSS")
                mem["call: zygote worker private"] = proc_kib(
                    child, "Private_Dirty", "smaps_rollup"
                )
        except OSError:
            pass
        fcntl.flock(lock, fcntl.LOCK_UN)
    proc.communicate(timeout=30)
    return mem


# --- the orchestrator ------------------------------------------------------------


def run_phase(phase: str, args: argparse.Namespace) -> dict[str, Any]:
    """One phase in a fresh sandbox of its own (nested in ours)."""
    argv = [
        str(REPO / "scripts" / "in-sandbox"),
        sys.executable,
        str(Path(__file__).resolve()),
        "--phase",
        phase,
        "--sizes",
        ",".join(map(str, args.sizes)),
        "--reps",
        str(args.reps),
        "--parallel",
        str(args.parallel),
        "--parallel-at",
        str(args.parallel_at),
        "--parallel-rounds",
        str(args.parallel_rounds),
        "--fill-workers",
        str(args.fill_workers),
        "--dockline-bin",
        str(args.dockline_bin),
    ] + (["--no-masq"] if args.no_masq else [])
    env = {k: v for k, v in os.environ.items() if k != "DOCKLINE_IN_SANDBOX"}
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed (exit {proc.returncode})")
    return json.loads(proc.stdout)


TITLES = {
    "conflist": "conflist bridge+host-local+portmap (1 hostPort), ipMasq, cniVersion 1.0.0",
    "bridge": "bridge+host-local, ipMasq",
    "host-local": "host-local alone",
}


def ms(x: float) -> str:
    return f"{x:.1f}" if x < 20 else f"{x:.0f}"


def ratio(own: float, ref: float) -> str:
    return f"{own / ref:.2f}" if ref else "-"


def render(report: dict[str, Any]) -> str:
    lines = []
    for cfg in report["configs"]:
        data = report["configs"][cfg]
        lines += [
            "",
            f"### {TITLES[cfg]}",
            "",
            "| N attached | ADD ref | ADD dockline | ratio | DEL ref | DEL dockline | ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for size, times in data["sizes"].items():
            ra, da = median(times["reference"]["ADD"]), median(times["dockline"]["ADD"])
            rd, dd = median(times["reference"]["DEL"]), median(times["dockline"]["DEL"])
            lines.append(
                f"| {size} | {ms(ra)} | {ms(da)} | {ratio(da, ra)} "
                f"| {ms(rd)} | {ms(dd)} | {ratio(dd, rd)} |"
            )
        sizes = list(data["sizes"])
        if len(sizes) > 1:
            first, last = data["sizes"][sizes[0]], data["sizes"][sizes[-1]]
            growth = [
                f"{cmd} {median(last['dockline'][cmd]) / median(first['dockline'][cmd]):.2f}x"
                for cmd in ("ADD", "DEL")
            ]
            lines.append("")
            lines.append(f"dockline at N={sizes[-1]} against N={sizes[0]}: " + ", ".join(growth))
        par = data.get("parallel")
        if par:
            wall = par["wall_ms"]
            parts = []
            for cmd in ("ADD", "DEL"):
                ref, own = median(wall["reference"][cmd]), median(wall["dockline"][cmd])
                parts.append(f"{cmd} {ref:.0f} / {own:.0f} ms ({ratio(own, ref)})")
            lines.append(
                f"{par['count']} parallel at N={par['at']}, wall time ref / dockline: "
                + "; ".join(parts)
            )
    extras = report.get("extras")
    if extras:
        lines += ["", "### single calls (medians, ms) and memory", ""]
        lines += ["| what | ms |", "|---|---:|"]
        for what, xs in extras["calls_ms"].items():
            lines.append(f"| {what} | {median(xs):.1f} |")
        if extras.get("memory_kib"):
            lines += ["", "| memory | KiB |", "|---|---:|"]
            for what, kib in extras["memory_kib"].items():
                lines.append(f"| {what} | {kib} |")
    return "\n".join(lines)


def sizes_arg(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


def main() -> None:
    if os.environ.get("DOCKLINE_IN_SANDBOX") != "1":
        sys.exit("run me through scripts/bench (a private sandbox)")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=sizes_arg, default=list(DEFAULT_SIZES), help="0,100,500,1000")
    ap.add_argument("--reps", type=int, default=15, help="timed ADD+DEL rounds per size")
    ap.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help="comma list of conflist, bridge, host-local",
    )
    ap.add_argument("--parallel", type=int, default=32, help="parallel ADDs/DELs (0: none)")
    ap.add_argument("--parallel-at", type=int, default=100, help="at this N (or the nearest)")
    ap.add_argument("--parallel-rounds", type=int, default=3)
    ap.add_argument("--fill-workers", type=int, default=6)
    ap.add_argument("--no-masq", action="store_true", help="ipMasq false")
    ap.add_argument("--no-extras", action="store_true", help="skip cold call, VERSION, memory")
    ap.add_argument("--dockline-bin", default=str(DEFAULT_DOCKLINE), help="launchers to bench")
    ap.add_argument("--json", metavar="PATH", help="write the report (every sample) here")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "extras":
        json.dump(run_extras(args), sys.stdout)
        return
    if args.phase:
        json.dump(run_config(args), sys.stdout)
        return
    configs = [c for c in args.configs.split(",") if c]
    for cfg in configs:
        if cfg not in CONFIGS:
            sys.exit(f"unknown config {cfg!r} (one of {', '.join(CONFIGS)})")
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reference": str(REFERENCE),
        "dockline": args.dockline_bin,
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "reps": args.reps,
        "configs": {},
    }
    for cfg in configs:
        log(f"{cfg}: sizes {args.sizes}, {args.reps} rounds each")
        report["configs"][cfg] = run_phase(cfg, args)
    if not args.no_extras:
        log("extras: cold call, VERSION, memory")
        report["extras"] = run_phase("extras", args)
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()

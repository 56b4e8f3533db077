"""Helpers of the reliability tests: calling a conflist's plugins the way a
runtime does (each executable with a stripped environment, the config on
stdin, ADD in order with prevResult, DEL in reverse), finding the processes
of a call, and reading everything an attachment can leave behind in one
go (store, registry, veths, firewall, hosts files)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from sandbox import Sandbox

from helpers.paths import REPO
from helpers.zygote import idle_worker

CONFLIST = REPO / "conf" / "30-dockline-portmap.conflist"
DATA_DIR = "/var/lib/cni/networks"
MARKER = "# dockline-link "
# the plugins' other state (route_localnet holders, ...)
PLUGIN_STATE = "/var/lib/cni/dockline"
# Files of the address store that are not reservations (the registry's
# lock lives beside them, its directory too).
STORE_META = ("lock", ".dockline-names.lock")


def load_conflist(**bridge_overrides) -> dict:
    net = json.loads(CONFLIST.read_text())
    net["plugins"][0].update(bridge_overrides)
    return net


def plugin_conf(net: dict, plugin: dict, cap_args: dict, prev=None) -> dict:
    """What libcni gives one plugin of a list: the list's name and version,
    the capability args the plugin declares, the previous result."""
    conf = {k: v for k, v in plugin.items() if k != "capabilities"}
    conf["name"] = net["name"]
    conf["cniVersion"] = net["cniVersion"]
    runtime = {k: v for k, v in cap_args.items() if (plugin.get("capabilities") or {}).get(k)}
    if runtime:
        conf["runtimeConfig"] = runtime
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def plugin_env(
    command: str, cid: str, netns: str, bindir: Path, ifname: str = "eth0", args: str = ""
) -> dict:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(bindir),
    }
    if args:
        env["CNI_ARGS"] = args
    return env


class Call:
    """One plugin executable running inside the sandbox.  The Popen's pid
    is nsenter's (it forks the executable into the sandbox's PID
    namespace); killing it kills the executable too (see
    Sandbox.nsenter)."""

    def __init__(self, sb: Sandbox, exe: Path, env: dict, conf: dict) -> None:
        self.exe = exe
        self.proc = subprocess.Popen(
            sb.nsenter() + [str(exe)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.proc.stdin.write(json.dumps(conf).encode())
        self.proc.stdin.close()
        self.proc.stdin = None  # so communicate() does not touch it
        self.out = self.err = ""
        self.code: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def finish(self, timeout: float = 60) -> Call:
        """Wait for the exit and for stdout/stderr to close: like Go's
        exec.Cmd.Wait, this also waits for any process still holding them
        (a zygote's child serving the call)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=5)
            raise AssertionError(
                f"{self.exe.name}: its output was not closed within {timeout} s "
                "(a process serving the call hangs)"
            ) from None
        self.code = self.proc.returncode
        self.out, self.err = out.decode(errors="replace"), err.decode(errors="replace")
        return self

    def json(self):
        try:
            return json.loads(self.out) if self.out.strip() else None
        except ValueError:
            return None

    def describe(self) -> str:
        return f"{self.exe.name} exited {self.code}: stdout={self.out!r} stderr={self.err!r}"


def run_call(sb: Sandbox, exe: Path, env: dict, conf: dict) -> Call:
    return Call(sb, exe, env, conf).finish()


def chain(
    sb: Sandbox,
    bindir: Path,
    net: dict,
    command: str,
    cid: str,
    netns: str,
    cap_args: dict,
    args: str = "",
    prev=None,
) -> tuple[bool, list[Call], object]:
    """ADD/CHECK in order (each ADD gets the previous result), DEL in
    reverse; stops at the first failure for ADD/CHECK, runs every plugin
    for DEL.  Returns (all ok, calls, last ADD result)."""
    plugins = net["plugins"] if command != "DEL" else list(reversed(net["plugins"]))
    calls, ok, result = [], True, prev
    for plugin in plugins:
        conf = plugin_conf(net, plugin, cap_args, result if command == "ADD" else prev)
        call = run_call(
            sb, bindir / plugin["type"], plugin_env(command, cid, netns, bindir, args=args), conf
        )
        calls.append(call)
        if call.code != 0:
            ok = False
            if command != "DEL":
                break
        elif command == "ADD":
            result = call.json()
    return ok, calls, result


def gc(sb: Sandbox, bindir: Path, net: dict, valid: list[tuple[str, str]]) -> list[Call]:
    calls = []
    for plugin in net["plugins"]:
        conf = plugin_conf(net, plugin, {})
        conf["cniVersion"] = "1.1.0"
        conf["cni.dev/valid-attachments"] = [{"containerID": c, "ifname": i} for c, i in valid]
        env = plugin_env("GC", "", "", bindir)
        for key in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"):
            env.pop(key)
        calls.append(run_call(sb, bindir / plugin["type"], env, conf))
    return calls


# --- processes ---------------------------------------------------------------


def _netns_of(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _cmdline(pid: int | str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def sandbox_processes(sb: Sandbox) -> dict[int, bytes]:
    """pid -> cmdline of every process in the sandbox's network namespace
    but the sleeper that holds it and its unshare parent."""
    mine = _netns_of(sb.pid)
    skip = {str(sb.pid), str(sb._proc.pid)}
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry not in skip and _netns_of(entry) == mine:
            found[int(entry)] = _cmdline(entry)
    return found


def _is_zygote_image(cmdline: bytes) -> bool:
    return b"zygote_server.serve" in cmdline


def _session_leader(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[3]) == pid
    except (OSError, ValueError, IndexError):
        return False


def _zygote_pids(procs: dict[int, bytes]) -> set[int]:
    """The zygotes themselves: each is started in a session of its own, so
    it leads it; its forked children (serving calls, even orphaned when
    their zygote was killed) run the same image in that session."""
    return {pid for pid, cmd in procs.items() if _is_zygote_image(cmd) and _session_leader(pid)}


def zygotes(sb: Sandbox) -> list[int]:
    return sorted(_zygote_pids(sandbox_processes(sb)))


def children(pid: int) -> list[int]:
    """Children serving a call: live (the zygote reaps its dead ones only
    when it next wakes: zombies are not serving anything) and not idle
    workers waiting for their next call."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(p) for p in f.read().split()]
    except OSError:
        return []
    return [k for k in kids if not _zombie(k) and not idle_worker(k)]


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def wait_for_zygote(sb: Sandbox, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = zygotes(sb)
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError("no zygote started in the sandbox")


def _printable(cmdline: bytes) -> str:
    return cmdline.replace(b"\0", b" ")[:200].decode(errors="replace")


def wait_quiet(sb: Sandbox, timeout: float = 15) -> None:
    """Wait until no process but the zygote is left in the sandbox: the
    killed call's executable, the zygote's child serving it (or unwinding
    it), and whatever that child started (nft, iptables-restore) are all
    gone."""
    deadline = time.monotonic() + timeout
    while True:
        procs = sandbox_processes(sb)
        keep = _zygote_pids(procs)
        keep |= {p for p in procs if p not in keep and idle_worker(p) and _parent(p) in keep}
        others = {p: c for p, c in procs.items() if p not in keep}
        if not others:
            return
        if time.monotonic() > deadline:
            listing = "; ".join(f"{p}: {_printable(c)}" for p, c in others.items())
            raise AssertionError(
                f"processes of a killed call still run after {timeout} s: " + listing
            )
        time.sleep(0.005)


# --- what is left --------------------------------------------------------------

_SEP = "\n=====dockline-section=====\n"
_SNAPSHOT = f"""
ip -j -d link show
printf '{_SEP}'
for f in {DATA_DIR}/NET/* {DATA_DIR}/NET/.[!.]*; do [ -f "$f" ] && printf '%s\\t%s\\n' "${{f##*/}}" "$(head -c 200 "$f" | tr '\\r\\n' '  ')"; done
printf '{_SEP}'
for f in {DATA_DIR}/NET/.dockline-names/e-*; do [ -f "$f" ] && cat "$f" && echo; done
printf '{_SEP}'
nft -j list ruleset
printf '{_SEP}'
iptables-save -t nat 2>/dev/null
printf '{_SEP}'
ip6tables-save -t nat 2>/dev/null
printf '{_SEP}'
for f in /etc/netns/*/hosts; do [ -f "$f" ] && grep -H -- '{MARKER}' "$f"; done
printf '{_SEP}'
for n in $(ls /run/netns); do ip -n "$n" -o link show 2>/dev/null | grep -v ': lo:' | sed "s|^[0-9]*: |$n |; s|@.*||"; done
printf '{_SEP}'
find {PLUGIN_STATE} -mindepth 1 ! -name '*lock' 2>/dev/null
printf '{_SEP}'
grep -H . /proc/sys/net/ipv4/conf/*/route_localnet 2>/dev/null
true
"""  # noqa: E501 (shell one-liners read best whole)


class State:
    """Everything an attachment can leave behind, read in one shell run."""

    def __init__(self, sb: Sandbox, network: str, bridge: str) -> None:
        script = _SNAPSHOT.replace("NET", network)
        out = sb.sh(script).stdout
        (links, store, registry, nft, ipt4, ipt6, hosts, inside, files, localnet) = out.split(
            _SEP.strip("\n")
        )
        self.links = {l["ifname"]: l for l in json.loads(links)}
        bridge_link = self.links.get(bridge)
        # host veths: dl* ports of the bridge, and any dl* veth not on it
        self.veths = sorted(
            n
            for n, l in self.links.items()
            if n.startswith("dl")
            and n != bridge
            and (l.get("linkinfo") or {}).get("info_kind") == "veth"
        )
        self.bridge_ports = sorted(
            n for n, l in self.links.items() if bridge_link and l.get("master") == bridge
        )
        self.reservations: dict[str, str] = {}  # ip -> "cid ifname"
        self.last_reserved: dict[str, str] = {}
        self.stray_files: list[str] = []
        for line in store.strip("\n").splitlines():
            name, _, content = line.partition("\t")
            if name in STORE_META:
                continue
            if name.startswith("last_reserved_ip."):
                self.last_reserved[name] = content.strip()
            elif name.startswith("."):
                self.stray_files.append(name)  # e.g. a temp file a killed writer left
            else:
                self.reservations[name] = " ".join(content.split())
        docs = [json.loads(line) for line in registry.splitlines() if line.strip()]
        self.registry = {doc["key"]: doc["entry"] for doc in docs}
        self.nft = json.loads(nft).get("nftables", []) if nft.strip() else []
        self.ipt = [l for l in (ipt4 + "\n" + ipt6).splitlines() if l.startswith(("-A", ":"))]
        self.hosts_lines = [l for l in hosts.strip("\n").splitlines() if l]
        # "<netns> <ifname>" of every interface but lo in a named netns
        self.container_links = sorted(
            " ".join(l.split()[:2]).rstrip(":") for l in inside.splitlines() if l.strip()
        )
        self.state_files = sorted(l for l in files.splitlines() if l.strip())
        # "<ifname>=<0|1>" for every host interface but the host veths
        # (those are compared as veths)
        self.route_localnet = sorted(
            l.split("/")[-2] + "=" + l.rsplit(":", 1)[1]
            for l in localnet.splitlines()
            if l.strip() and not _host_veth(l.split("/")[-2])
        )

    # per-attachment objects, normalised so they can be compared with a
    # baseline (handles and counters differ from one snapshot to the next)

    def nft_objects(self) -> list[str]:
        out = []
        for item in self.nft:
            if "metainfo" in item:
                continue
            for kind, body in item.items():
                body = {k: v for k, v in body.items() if k not in ("handle", "counter")}
                if kind == "rule":
                    body["expr"] = [e for e in body.get("expr", []) if "counter" not in e]
                if "elem" in body:
                    body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body["elem"])
                out.append(kind + " " + json.dumps(body, sort_keys=True))
        return sorted(out)

    def ipt_objects(self) -> list[str]:
        out = []
        for line in self.ipt:
            if line.startswith(":"):
                line = line.split()[0]  # ':CHAIN POLICY [pkts:bytes]'
            out.append(line)
        return sorted(out)

    def mentions(self, needles: list[str]) -> list[str]:
        """Every firewall object, store entry, registry entry or hosts line
        that names one of ``needles`` (a tag, container ID, address)."""
        needles = [n for n in needles if n]
        found = []
        haystacks = (
            [("nft", o) for o in self.nft_objects()]
            + [("ipt", o) for o in self.ipt]
            + [("store", f"{ip} {who}") for ip, who in self.reservations.items()]
            + [("registry", f"{k} {json.dumps(v)}") for k, v in self.registry.items()]
            + [("hosts", l) for l in self.hosts_lines]
        )
        for where, text in haystacks:
            for n in needles:
                if _contains_token(text, n):
                    found.append(f"{where}: {text[:300]}")
                    break
        return found


def _host_veth(name: str) -> bool:
    return (
        len(name) == 15 and name.startswith("dl") and all(c in "0123456789abcdef" for c in name[2:])
    )


def _contains_token(text: str, needle: str) -> bool:
    """``needle`` occurs in ``text`` not as part of a longer address
    (10.89.0.2 must not match 10.89.0.23, fd89::2 not fd89::2a)."""
    start = 0
    ok = set("0123456789abcdefABCDEF.:")
    while True:
        i = text.find(needle, start)
        if i < 0:
            return False
        before = text[i - 1] if i > 0 else " "
        after = text[i + len(needle)] if i + len(needle) < len(text) else " "
        if before not in ok and after not in ok:
            return True
        start = i + 1


def diff(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    """(gone, new) between two sorted object lists, as multisets."""
    from collections import Counter

    b, a = Counter(before), Counter(after)
    return sorted((b - a).elements()), sorted((a - b).elements())


def leftovers(base: State, now: State) -> list[str]:
    """What ``now`` holds that ``base`` did not ("left"), and what it lost
    ("lost": another attachment's state removed by mistake)."""
    import ipaddress

    problems = []
    pairs = (
        ("host veth", base.veths, now.veths),
        ("bridge port", base.bridge_ports, now.bridge_ports),
        ("interface in a container", base.container_links, now.container_links),
        (
            "reservation",
            sorted(f"{k} held by {v}" for k, v in base.reservations.items()),
            sorted(f"{k} held by {v}" for k, v in now.reservations.items()),
        ),
        ("registry entry", sorted(base.registry), sorted(now.registry)),
        ("hosts-file line", sorted(base.hosts_lines), sorted(now.hosts_lines)),
        ("plugin state file", base.state_files, now.state_files),
        ("route_localnet", base.route_localnet, now.route_localnet),
        ("iptables", base.ipt_objects(), now.ipt_objects()),
        ("nftables", base.nft_objects(), now.nft_objects()),
    )
    for what, before, after in pairs:
        lost, new = diff(before, after)
        if what == "host veth":
            new = [f"{x} (master {now.links[x].get('master') or 'none'})" for x in new]
        problems += [f"left: {what}: {x[:400]}" for x in new]
        problems += [f"lost: {what}: {x[:400]}" for x in lost]
    problems += [f"left: stray file in the store: {f}" for f in now.stray_files]
    for name, value in now.last_reserved.items():
        try:
            ipaddress.ip_address(value)
        except ValueError:
            problems.append(f"store unreadable: {name} holds {value!r}")
    return problems

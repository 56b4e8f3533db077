"""Hostile-input harness: one sandbox per test with a realistic baseline
(two containers on a dockline bridge, a link, published ports on both
firewall backends), a snapshot of everything a refused call must leave
alone, and a runner that calls a plugin exactly as a runtime does.

tests/hostile is a package so that this conftest does not take the
module name ``conftest`` from tests/conftest.py (which other test files
import helpers from).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import subprocess
import time

import pytest
from helpers.cni import call_plugin
from helpers.paths import DOCKLINE_BIN, REPO
from sandbox import Sandbox

NETWORK = "dockline"
# The plugins' working directory: a relative path a buggy plugin might
# write to must land in the sandbox's tmpfs, never in the checkout or /.
CWD = "/var/lib/cni/hostile-cwd"
CALL_TIMEOUT = 20
# HOSTILE_NO_ZYGOTE=1: every call serves itself (slower; to tell a zygote
# problem from a plugin problem).
NO_ZYGOTE = bool(os.environ.get("HOSTILE_NO_ZYGOTE"))
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Container namespaces of the baseline: c1 (db) and c2 (web, linked to
# db) are attached; c3 is the empty target of hostile ADDs.
NAMESPACES = ("c1", "c2", "c3")
# Everything on disk a CNI call may touch in the sandbox (tmpfs).
STATE_DIRS = ("/var/lib/cni", "/etc/netns")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long property-based runs (thousands of plugin calls)")


# resolv.conf files a hostile resolvConf may name (made in CWD by the
# baseline): a scope id, injection after a nameserver, a FIFO, not UTF-8.
BAD_RESOLV_CONFS = {
    "zone.conf": b"nameserver fe80::1%eth0\n",
    "inject.conf": b"nameserver 10.0.0.1;reboot\n",
    "garbage.conf": b"nameserver not-an-address\n",
    "latin1.conf": b"search caf\xe9\nnameserver 10.0.0.1\n",
    "fifo": None,
}

BRIDGE = {
    "type": "bridge",
    "bridge": "dockline0",
    "isGateway": True,
    "ipMasq": True,
    "hairpinMode": True,
    "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.89.0.0/24"}], [{"subnet": "fd89::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    },
}


def plugin_conf(plugin: dict, **extra) -> dict:
    conf = {"cniVersion": "1.1.0", "name": NETWORK}
    conf.update(json.loads(json.dumps(plugin)))
    conf.update(extra)
    return conf


class Baseline:
    """What the sandbox holds before any hostile call."""

    def __init__(self, results: dict[str, dict]) -> None:
        self.results = results  # container -> final (bridge+portmap) ADD result


def _call(sb, plugin, command, conf, **kw):
    if NO_ZYGOTE:
        kw["extra_env"] = {"DOCKLINE_NO_ZYGOTE": "1"}
    return call_plugin(sb, DOCKLINE_BIN / plugin, command, conf, **kw)


def _ok(run, what: str) -> dict | None:
    assert run.code == 0, f"baseline {what} failed ({run.code}): {run.stdout} {run.stderr}"
    return run.json


def build_baseline(sb: Sandbox) -> Baseline:
    sb.sh(f"mkdir -p {CWD}; " + "; ".join(f"ip netns add {n}" for n in NAMESPACES))
    for name, body in BAD_RESOLV_CONFS.items():
        if body is None:
            sb.sh(f"mkfifo {CWD}/{name}")
        else:
            sb.run(["sh", "-c", f"cat > {CWD}/{name}"], input=body, check=True)
    results = {}
    # c1 "db": named db, port 8080 published with iptables.
    # c2 "web": linked to db as dbapp, port 8081 published with nftables.
    for cid, pod, caps, port, backend in (
        ("c1", "db", {"aliases": ["db"]}, 8080, "iptables"),
        ("c2", "web", {"links": ["db:dbapp"]}, 8081, "nftables"),
    ):
        env = dict(
            containerid=cid, netns=f"/run/netns/{cid}", args=f"IgnoreUnknown=1;K8S_POD_NAME={pod}"
        )
        res = _ok(
            _call(sb, "bridge", "ADD", plugin_conf(BRIDGE, runtimeConfig=caps), **env),
            f"{cid} bridge",
        )
        pm = {
            "type": "portmap",
            "snat": True,
            "backend": backend,
            "runtimeConfig": {
                "portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]
            },
            "prevResult": res,
        }
        results[cid] = _ok(_call(sb, "portmap", "ADD", plugin_conf(pm), **env), f"{cid} portmap")
    # Let IPv6 DAD of the new links finish: "tentative" must not flip
    # between two snapshots.
    sb.sh(
        "for i in $(seq 50); do ip -6 addr show tentative | grep -q inet6 || break; sleep 0.1;"
        " done;"
        "for n in c1 c2; do for i in $(seq 50); do ip -n $n -6 addr show tentative | grep -q inet6"
        " || break; sleep 0.1; done; done"
    )
    return Baseline(results)


# --- snapshots -------------------------------------------------------------

# One ``ip`` process per namespace (batch mode: links, addresses, routes),
# then the firewall: 7 processes per snapshot.
_IP_BATCH = "link show\naddr show\nroute show table all\n"
_IP_PARTS = ("link", "addr", "route")
_SNAP_CMDS = [("ip", f"printf '{_IP_BATCH}' | ip -j -d -b -")]
for _ns in NAMESPACES:
    _SNAP_CMDS.append((f"{_ns}.ip", f"printf '{_IP_BATCH}' | ip -n {_ns} -j -d -b -"))
_SNAP_CMDS += [
    ("nft", "nft -j list ruleset"),
    ("iptables", "iptables-save"),
    ("ip6tables", "ip6tables-save"),
]
_SEP = "@@dockline-snapshot@@"
SNAP_SCRIPT = "; ".join(f"echo '{_SEP} {name}'; {cmd} 2>&1" for name, cmd in _SNAP_CMDS)

_VOLATILE_KEYS = {
    "valid_life_time",
    "preferred_life_time",
    "tentative",
    "handle",
    "stats",
    "stats64",
    "expires",
}
_COUNTERS = re.compile(r"\[\d+:\d+\]")


def _scrub(obj):
    """Drop what changes without anyone changing the state: lifetimes,
    DAD progress, nft handles and counters."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in _VOLATILE_KEYS or k.endswith("_timer"):  # bridge STP/gc timers tick
                continue
            if k == "counter" and isinstance(v, dict):
                v = {}
            out[k] = _scrub(v)
        return out
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


def _json_values(text: str) -> list:
    """The JSON documents printed one after another (ip's batch mode)."""
    decoder, pos, out = json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        value, pos = decoder.raw_decode(text, pos)
        out.append(value)


def _sections(name: str, text: str) -> dict[str, str]:
    if name.endswith("ip"):
        prefix = name[:-2]
        try:
            values = _json_values(text)
        except ValueError:
            return {name: text}
        if len(values) != len(_IP_PARTS):
            return {name: text}
        return {
            prefix + part: json.dumps(_scrub(v), indent=1, sort_keys=True)
            for part, v in zip(_IP_PARTS, values, strict=True)
        }
    return {name: _normalise(name, text)}


def _normalise(name: str, text: str) -> str:
    if name == "nft":
        try:
            return json.dumps(_scrub(json.loads(text)), indent=1, sort_keys=True)
        except ValueError:
            return text
    if name.endswith("tables"):
        return "\n".join(
            _COUNTERS.sub("[0:0]", line) for line in text.splitlines() if not line.startswith("#")
        )
    return text


def _files(sb: Sandbox) -> dict[str, str]:
    """Every file under the state dirs, read through the sandbox's root."""
    root = f"/proc/{sb.pid}/root"
    out = {}
    for top in STATE_DIRS:
        for dirpath, _dirnames, filenames in os.walk(root + top):
            rel = dirpath[len(root) :]
            st = os.lstat(dirpath)
            out[rel + "/"] = f"dir {st.st_mode:o}"
            for name in filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if os.path.islink(path):
                    body = "-> " + os.readlink(path)
                elif not stat.S_ISREG(st.st_mode):
                    body = "(not a regular file)"
                else:
                    with open(path, "rb") as f:
                        body = repr(f.read())
                out[os.path.join(rel, name)] = f"{st.st_mode:o} {body}"
    return out


def snapshot(sb: Sandbox) -> dict[str, str]:
    proc = sb.run(["sh", "-c", SNAP_SCRIPT], timeout=CALL_TIMEOUT)
    sections: dict[str, str] = {}
    for chunk in proc.stdout.split(_SEP + " ")[1:]:
        name, _, body = chunk.partition("\n")
        sections.update(_sections(name, body))
    sections["netns"] = " ".join(sorted(os.listdir(f"/proc/{sb.pid}/root/run/netns")))
    for path, body in _files(sb).items():
        sections["file " + path] = body
    return sections


def diff(before: dict[str, str], after: dict[str, str], limit: int = 4000) -> str:
    lines: list[str] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if a is None or b is None:
            lines.append(f"{key}: {'appeared' if a is None else 'vanished'}: {(b or a)[:300]}")
            continue
        lines += [f"--- {key}"] + list(
            difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=1)
        )[2:]
    return "\n".join(lines)[:limit]


# --- calling a plugin --------------------------------------------------------


class Outcome:
    __slots__ = ("code", "seconds", "stderr", "stdout")

    def __init__(self, code: int, stdout: bytes, stderr: bytes, seconds: float) -> None:
        self.code, self.stdout, self.stderr, self.seconds = code, stdout, stderr, seconds


def invoke(sb: Sandbox, plugin: str, env: dict, stdin: bytes) -> Outcome:
    """Run the plugin in the sandbox with exactly ``env`` (str or bytes
    keys and values) and ``stdin``; working directory CWD."""
    argv = sb.nsenter() + ["env", "-C", CWD, str(DOCKLINE_BIN / plugin)]
    if NO_ZYGOTE:
        env = dict(env)
        env[
            b"DOCKLINE_NO_ZYGOTE"
            if any(isinstance(k, bytes) for k in env)
            else "DOCKLINE_NO_ZYGOTE"
        ] = "1" if not any(isinstance(k, bytes) for k in env) else b"1"
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=CALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{plugin} hung for more than {CALL_TIMEOUT} s")
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


class Harness:
    """A sandbox with its baseline, and the last snapshot taken of it."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.baseline = build_baseline(sb)
        self.state = snapshot(sb)
        self.calls = 0
        self.failures: list[str] = []
        self.plugin_seconds = 0.0
        self.snapshot_seconds = 0.0

    def run(self, plugin: str, env: dict, stdin: bytes) -> tuple[Outcome, str]:
        """Call the plugin; its outcome and what it changed ('' if nothing).
        The snapshot after one call is the snapshot before the next."""
        out = invoke(self.sb, plugin, env, stdin)
        self.calls += 1
        self.plugin_seconds += out.seconds
        start = time.monotonic()
        after = snapshot(self.sb)
        self.snapshot_seconds += time.monotonic() - start
        changed = diff(self.state, after)
        self.state = after
        return out, changed


@pytest.fixture
def harness():
    """One sandbox and baseline for a whole property (all its examples)."""
    with Sandbox() as sb:
        h = Harness(sb)
        yield h
        print(
            f"\n{h.calls} plugin calls, {h.plugin_seconds:.1f} s in plugins, "
            f"{h.snapshot_seconds:.1f} s in snapshots"
        )
        if h.failures:
            print(f"{len(h.failures)} failing cases:\n" + "\n\n".join(h.failures))


__all__ = ["BRIDGE", "NETWORK", "PATH", "REPO", "Harness", "plugin_conf"]

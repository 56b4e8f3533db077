"""Helpers for the IPAM tests: store snapshots taken inside the sandbox,
CNI error checks, and a differential runner that plays the same sequence of
calls against the reference plugin and dockline, each in its own sandbox."""

from __future__ import annotations

import copy
import io
import json
import re
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import Sandbox

from helpers.cni import PluginRun, call_plugin
from helpers.paths import REFERENCE_BIN, REPO

# Everything host-local writes by default lives below /var/lib/cni, which is
# a private tmpfs in the sandbox; snapshotting all of it also catches files
# written to the wrong place (e.g. the default dataDir when a custom one is set).
STATE_ROOT = "/var/lib/cni"
NETWORKS = "/var/lib/cni/networks"

REF_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
DOCKLINE_VERSIONS = REF_VERSIONS + ["1.1.0"]
ERROR_KEYS = {"cniVersion", "code", "msg", "details"}
# Codes the CNI spec defines (1-99 reserved for the spec; 999 is the Go
# libraries' catch-all that dockline must not copy).
SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 51}


def _documented_codes() -> set[int]:
    """Plugin-specific codes (>= 100) dockline documents in
    lib/dockline/cni/errors.py, read from the source (not imported)."""
    src = REPO / "lib" / "dockline" / "cni" / "errors.py"
    try:
        text = src.read_text()
    except OSError:
        return set()
    codes = {int(v) for v in re.findall(r"^[A-Z_]+\s*=\s*(\d+)", text, re.M)}
    return {c for c in codes if 100 <= c < 999}


DOCUMENTED_CODES = _documented_codes()


# ---------------------------------------------------------------- configs
def hl_ipam(**ipam) -> dict:
    out = {"type": "host-local"}
    out.update(ipam)
    return out


def hl_conf(
    version: str | None = "1.0.0", name: str = "net1", *, top: dict | None = None, **ipam
) -> dict:
    """A network config whose ipam section is host-local.  Without ranges or
    a legacy subnet the single range 10.1.2.0/24 is used."""
    if "ranges" not in ipam and "subnet" not in ipam:
        ipam["ranges"] = [[{"subnet": "10.1.2.0/24"}]]
    conf = {"name": name, "type": "bridge", "ipam": hl_ipam(**ipam)}
    if version is not None:
        conf = {"cniVersion": version, **conf}
    conf.update(top or {})
    return conf


def with_version(conf, version: str):
    if not isinstance(conf, dict):
        return conf
    conf = copy.deepcopy(conf)
    conf["cniVersion"] = version
    return conf


# ---------------------------------------------------------------- store
@dataclass
class Snap:
    """Contents of a directory tree: files (name -> bytes), dirs, modes."""

    files: dict = field(default_factory=dict)
    dirs: set = field(default_factory=set)
    modes: dict = field(default_factory=dict)

    def content(self):
        return (self.files, self.dirs)

    def under(self, prefix: str) -> dict:
        """Files below prefix (relative to the snapshot root), keyed by the
        rest of the path."""
        prefix = prefix.rstrip("/") + "/"
        return {k[len(prefix) :]: v for k, v in self.files.items() if k.startswith(prefix)}

    def reservations(self, prefix: str = "networks/net1") -> dict:
        """IP files only (no lock, no last_reserved_ip.*)."""
        return {
            k: v
            for k, v in self.under(prefix).items()
            if k != "lock" and not k.startswith("last_reserved_ip.")
        }

    def __eq__(self, other):
        return isinstance(other, Snap) and self.content() == other.content()


def snapshot(sb: Sandbox, root: str = STATE_ROOT) -> Snap:
    """Read the tree below root from inside the sandbox (tar, exact bytes)."""
    proc = sb.run(
        ["sh", "-c", 'test -d "$1" || exit 0; tar -C "$1" -cf - .', "sh", root], text=False
    )
    assert proc.returncode == 0, proc.stderr
    snap = Snap()
    if not proc.stdout:
        return snap
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        for member in tar.getmembers():
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name in ("", "."):
                continue
            snap.modes[name] = member.mode
            if member.isdir():
                snap.dirs.add(name)
            elif member.isfile():
                snap.files[name] = tar.extractfile(member).read()
            else:
                snap.files[name] = ("non-regular", member.type)
    return snap


def write_files(sb: Sandbox, files: dict[str, bytes | str], mode: str = "644") -> None:
    """Create files inside the sandbox (paths absolute, parents created)."""
    for path, data in files.items():
        if isinstance(data, str):
            data = data.encode()
        sb.run(
            [
                "sh",
                "-c",
                'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"',
                "sh",
                path,
                mode,
            ],
            input=data,
            check=True,
        )


def reservation(cid: str, ifname: str = "eth0") -> bytes:
    return f"{cid}\r\n{ifname}".encode()


# ---------------------------------------------------------------- errors
def assert_cni_error(run: PluginRun, code: int | None = None, *, msg_contains: str | None = None):
    """A failed call: non-zero exit, a CNI error object on stdout."""
    assert run.code != 0, f"expected failure, got success: {run.stdout!r}"
    assert "Traceback" not in run.stdout, run.stdout
    try:
        err = json.loads(run.stdout)
    except ValueError:
        raise AssertionError(
            f"stdout is not a JSON error object: {run.stdout!r} (stderr {run.stderr!r})"
        ) from None
    assert isinstance(err, dict), err
    assert set(err) <= ERROR_KEYS, f"unexpected keys in error: {sorted(set(err) - ERROR_KEYS)}"
    assert isinstance(err.get("code"), int) and not isinstance(err["code"], bool), err
    assert err["code"] > 0, err
    assert isinstance(err.get("msg"), str) and err["msg"], err
    if "details" in err:
        assert isinstance(err["details"], str), err
    if code is not None:
        assert err["code"] == code, f"expected code {code}, got {err}"
    if msg_contains is not None:
        text = err["msg"] + " " + err.get("details", "")
        assert msg_contains in text, f"{msg_contains!r} not in {err}"
    return err


def assert_not_catchall(err: dict):
    """dockline must not use the Go libraries' catch-all code 999."""
    assert err["code"] != 999, f"dockline used the catch-all code 999: {err}"
    assert err["code"] in SPEC_CODES | DOCUMENTED_CODES, (
        f"code {err['code']} is neither a spec code nor documented in dockline's errors.py: {err}"
    )


# ---------------------------------------------------------------- differential
@dataclass
class Call:
    command: str
    config: object
    containerid: str | None = "c1"
    ifname: str | None = "eth0"
    args: str | None = None
    netns: str | None = "/run/netns/none"


@dataclass
class Outcome:
    call: Call
    run: PluginRun
    snap: Snap | None

    @property
    def ok(self) -> bool:
        return self.run.code == 0

    @property
    def result(self):
        return self.run.json

    def ips(self) -> list[str]:
        """Addresses in the result, whatever its version."""
        res = self.run.json or {}
        if "ips" in res:
            return [ip["address"] for ip in res["ips"]]
        return [res[k]["ip"] for k in ("ip4", "ip6") if k in res]


def play(
    binary: Path,
    calls: list[Call],
    setup: Callable[[Sandbox], None] | None = None,
    snap: bool = True,
    root: str = STATE_ROOT,
) -> list[Outcome]:
    with Sandbox() as sb:
        if setup:
            setup(sb)
        out = []
        for c in calls:
            run = call_plugin(
                sb,
                binary,
                c.command,
                c.config,
                containerid=c.containerid,
                ifname=c.ifname,
                args=c.args,
                netns=c.netns,
            )
            out.append(Outcome(c, run, snapshot(sb, root) if snap else None))
        return out


_POOL = ThreadPoolExecutor(max_workers=4)


def pair(
    dockline_bin: Path,
    plugin: str,
    calls: list[Call],
    *,
    setup: Callable[[Sandbox], None] | None = None,
    root: str = STATE_ROOT,
):
    """Play calls against reference and dockline without comparing: for the
    documented, deliberate differences, whose tests assert each side."""
    f_ref = _POOL.submit(play, REFERENCE_BIN / plugin, calls, setup, True, root)
    f_dl = _POOL.submit(play, Path(dockline_bin) / plugin, calls, setup, True, root)
    return f_ref.result(), f_dl.result()


def differential(
    dockline_bin: Path,
    plugin: str,
    calls: list[Call],
    *,
    setup: Callable[[Sandbox], None] | None = None,
    dockline_version: str | None = None,
    compare_store: bool | list[bool] = True,
    root: str = STATE_ROOT,
):
    """Play calls against reference and dockline (parallel, separate
    sandboxes); assert both behave the same step by step.

    dockline_version: rewrite cniVersion for dockline's calls (reference
    gets the original) and expect dockline to echo it in results.
    Returns (reference outcomes, dockline outcomes)."""
    dl_calls = calls
    if dockline_version:
        dl_calls = [
            Call(
                c.command,
                with_version(c.config, dockline_version),
                c.containerid,
                c.ifname,
                c.args,
                c.netns,
            )
            for c in calls
        ]
    f_ref = _POOL.submit(play, REFERENCE_BIN / plugin, calls, setup, True, root)
    f_dl = _POOL.submit(play, Path(dockline_bin) / plugin, dl_calls, setup, True, root)
    ref, dl = f_ref.result(), f_dl.result()
    # DOCKLINE_CNI_BIN=/usr/lib/cni runs the suite reference-vs-reference, to
    # check the tests' expectations about the reference.
    self_test = Path(dockline_bin).resolve() == REFERENCE_BIN.resolve()
    for i, (r, d) in enumerate(zip(ref, dl, strict=False)):
        c = r.call
        where = f"step {i}: {c.command} cid={c.containerid} if={c.ifname} args={c.args}"
        assert r.ok == d.ok, (
            f"{where}: reference {'succeeded' if r.ok else 'failed'} "
            f"({r.run.stdout.strip()}), dockline "
            f"{'succeeded' if d.ok else 'failed'} "
            f"({d.run.stdout.strip()} {d.run.stderr.strip()[-500:]})"
        )
        if r.ok:
            rj, dj = r.run.json, d.run.json
            if dockline_version and isinstance(dj, dict) and "cniVersion" in dj:
                assert dj["cniVersion"] == dockline_version, f"{where}: {dj}"
                dj = dict(dj, cniVersion=rj.get("cniVersion") if isinstance(rj, dict) else None)
            assert dj == rj, f"{where}: result differs\nreference: {rj}\ndockline:  {dj}"
        else:
            rerr = json.loads(r.run.stdout)
            derr = assert_cni_error(d.run)
            if rerr["code"] != 999:
                assert derr["code"] == rerr["code"], f"{where}: reference {rerr}, dockline {derr}"
            elif not self_test:
                assert_not_catchall(derr)
        cmp = compare_store[i] if isinstance(compare_store, list) else compare_store
        if cmp:
            assert d.snap == r.snap, (
                f"{where}: store differs\nreference: {r.snap.files} dirs={sorted(r.snap.dirs)}"
                f"\ndockline:  {d.snap.files} dirs={sorted(d.snap.dirs)}"
            )
    return ref, dl

"""Shared fixtures: a private sandbox per test and a way to call plugins
exactly as a runtime does (stripped environment, config on stdin)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent
# Launchers written by install.sh; the test command runs it first.
DOCKLINE_BIN = Path(os.environ.get("DOCKLINE_CNI_BIN", REPO / ".build" / "cni-bin"))
REFERENCE_BIN = Path("/usr/lib/cni")
VENV_PYTHON = Path(os.environ.get("DOCKLINE_PYTHON", REPO / ".venv" / "bin" / "python3"))


@dataclass
class PluginRun:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout) if self.stdout.strip() else None

    def ok(self) -> PluginRun:
        assert self.code == 0, f"plugin failed ({self.code}): {self.stdout} {self.stderr}"
        return self


def call_plugin(
    sandbox: Sandbox,
    binary: Path | str,
    command: str,
    config,
    *,
    containerid: str | None = "c1",
    netns: str | None = "/run/netns/none",
    ifname: str | None = "eth0",
    args: str | None = None,
    path: str | None = None,
    extra_env: dict | None = None,
) -> PluginRun:
    """Invoke a CNI plugin inside the sandbox with only PATH and CNI_*."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command}
    for key, value in (
        ("CNI_CONTAINERID", containerid),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_ARGS", args),
    ):
        if value is not None:
            env[key] = value
    env["CNI_PATH"] = path if path is not None else str(Path(binary).parent)
    env.update(extra_env or {})
    stdin = config if isinstance(config, (str, bytes)) else json.dumps(config)
    proc = sandbox.run([str(binary)], input=stdin, env=env)
    out = proc.stdout.decode() if isinstance(proc.stdout, bytes) else proc.stdout
    err = proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr
    return PluginRun(proc.returncode, out, err)


@pytest.fixture
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def dockline_bin() -> Path:
    if not (DOCKLINE_BIN / "host-local").exists():
        pytest.fail(f"{DOCKLINE_BIN} has no launchers: run ./install.sh first")
    return DOCKLINE_BIN


HOOKS_BIN = REPO / ".build" / "cni-bin-hooks"


@pytest.fixture(scope="session")
def dockline_hooks_bin() -> Path:
    """Executables for the crash tests: every call served in-process, and
    DOCKLINE_CRASH_AT obeyed (the executables runtimes get ignore it)."""
    import subprocess

    subprocess.run(
        [str(VENV_PYTHON.parent / "dockline"), "install", "--test-hooks", "--json", str(HOOKS_BIN)],
        check=True,
        capture_output=True,
    )
    return HOOKS_BIN


@pytest.fixture(scope="session")
def crash_seed() -> int:
    """The seed of the reliability tests' random choices (kill moments,
    churn): DOCKLINE_CRASH_SEED replays a run; otherwise a fresh one,
    printed (pytest -s shows it, and every failure message names it)."""
    import random

    value = os.environ.get("DOCKLINE_CRASH_SEED")
    seed = int(value) if value else random.SystemRandom().randrange(1 << 32)
    print(f"\nDOCKLINE_CRASH_SEED={seed}")
    return seed

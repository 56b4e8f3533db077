"""Shared fixtures: a private sandbox per test, the launchers, a check that
the host is left as it was.  Plain helpers (calling a plugin as a runtime
does, the paths of what is tested) are in tests/helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.paths import DOCKLINE_BIN, HOOKS_BIN, VENV_PYTHON
from sandbox import PRIVATE_DIRS, Sandbox, SandboxLeak


@pytest.fixture
def sandbox():
    """A fresh sandbox (tests/sandbox.py); its teardown fails the test if a
    process of its network namespaces outlives it."""
    sb = Sandbox()
    leak = None
    try:
        yield sb
    finally:
        try:
            sb.close()
        except SandboxLeak as exc:
            leak = str(exc)
    if leak:
        pytest.fail(leak, pytrace=False)


# Host directories a test could leave something in by mistake (a path
# meant for the sandbox's tmpfs, a netns or hosts file, a socket, a
# launcher written to the default CNI_PATH).  Only these: each is one
# listdir, and none is written to by anything else on a test machine.
# /tmp is left out: pytest's own tmp_path lives there and other processes
# come and go in it, so new entries there say nothing about the test.
WATCHED_HOST_DIRS = (
    "/run",
    "/run/netns",
    "/run/dockline",
    "/etc/netns",
    "/etc/cni",
    "/etc/cni/net.d",
    "/var/lib/cni",
    "/opt/cni",
    "/opt/cni/bin",
)


def _host_entries() -> dict[str, set[str]]:
    entries = {}
    for d in WATCHED_HOST_DIRS:
        try:
            entries[d] = set(os.listdir(d))
        except OSError:
            entries[d] = set()
    return entries


def _sandbox_mount_point(path: str) -> bool:
    """A sandbox's tmpfs mount point (or a parent of one) that the first
    sandbox made on a fresh host: empty on the host side."""
    if not any(p == path or p.startswith(path + "/") for p in PRIVATE_DIRS):
        return False
    try:
        return os.path.isdir(path) and all(
            os.path.join(path, e) in PRIVATE_DIRS for e in os.listdir(path)
        )
    except OSError:
        return False


@pytest.fixture(autouse=True)
def host_untouched():
    """Fail a test after which something new is in a watched host
    directory (seen from the test's own, the host's, mount namespace)."""
    before = _host_entries()
    yield
    after = _host_entries()
    new = sorted(
        path
        for d in WATCHED_HOST_DIRS
        for path in (os.path.join(d, e) for e in after[d] - before[d])
        if not _sandbox_mount_point(path)
    )
    if new:
        pytest.fail(
            "new on the host during this test (the test, or another process of "
            f"the machine, made it): {', '.join(new)}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def dockline_bin() -> Path:
    if not (DOCKLINE_BIN / "host-local").exists():
        pytest.fail(
            f"{DOCKLINE_BIN} has no launchers: run DOCKLINE_EXTRAS=test ./install.sh "
            "(or scripts/test, which does) first"
        )
    return DOCKLINE_BIN


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

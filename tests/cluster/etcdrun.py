"""Real etcd members inside a test's sandbox.

Each member is Debian's ``etcd`` (etcd-server 3.4) started with nsenter in
the sandbox's network and mount namespaces, listening on a loopback (or
underlay) address there, with its data directory on the sandbox's tmpfs
(``/var/lib/cni/etcd/<name>``), which vanishes with the namespace.  Members
are stopped by their own process id when the test ends (the sandbox would
kill them too).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

import pytest

ETCD = "/usr/bin/etcd"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = os.path.join(REPO, ".venv", "bin", "python3")


class Member:
    def __init__(
        self, sandbox, name: str, address: str, initial_cluster: str, tls: dict | None = None
    ) -> None:
        self.tls = tls  # {"ca", "cert", "key"}: https for clients, client certificates required
        self.sandbox = sandbox
        self.name = name
        self.address = address
        self.initial_cluster = initial_cluster
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}:2379"

    def start(self, state: str = "new") -> None:
        data = f"/var/lib/cni/etcd/{self.name}"
        self.sandbox.run(["mkdir", "-p", data], check=True)
        self.sandbox.run(["chmod", "0700", data], check=True)
        argv = [
            ETCD,
            "--name", self.name,
            "--data-dir", data,
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", f"http://{self.address}:2380",
            "--initial-advertise-peer-urls", f"http://{self.address}:2380",
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-state", state,
            "--initial-cluster-token", "dockline-test",
            "--log-level", "warn",
            "--logger", "zap",
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
        ]  # fmt: skip
        if self.tls:
            argv += [
                "--cert-file", self.tls["cert"],
                "--key-file", self.tls["key"],
                "--trusted-ca-file", self.tls["ca"],
                "--client-cert-auth",
            ]  # fmt: skip
        self.proc = subprocess.Popen(
            self.sandbox.nsenter() + argv,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]


class Etcd:
    """``n`` members on 127.0.0.(base+i) (or the given addresses)."""

    def __init__(self, sandbox, n: int = 1, addresses: list[str] | None = None) -> None:
        self.sandbox = sandbox
        addresses = addresses or [f"127.0.0.{11 + i}" for i in range(n)]
        cluster = ",".join(f"m{i}=http://{a}:2380" for i, a in enumerate(addresses))
        self.members = [Member(sandbox, f"m{i}", a, cluster) for i, a in enumerate(addresses)]

    @property
    def endpoints(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self) -> Etcd:
        for m in self.members:
            m.start()
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            probe = self.sandbox.run(
                ["curl", "-s", "-m", "2", "-X", "POST", "-d", "{}",
                 self.members[0].url + "/v3/maintenance/status"],
            )  # fmt: skip
            if probe.returncode == 0 and '"leader"' in probe.stdout:
                ok = self.sandbox.run(
                    ["curl", "-s", "-m", "2", "-X", "POST", "-d", '{"key":"AA=="}',
                     self.members[0].url + "/v3/kv/range"],
                )  # fmt: skip
                if ok.returncode == 0 and '"header"' in ok.stdout:
                    return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {m.name}\n{m.output()}" for m in self.members)
                raise RuntimeError(f"etcd did not become healthy: {probe.stdout}\n{logs}")
            for m in self.members:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited:\n{m.output()}")
            time.sleep(0.1)

    def stop(self) -> None:
        for m in self.members:
            m.stop()
            m.log.close()


def py(sandbox, code: str, *, netns: str | None = None, timeout: float = 60):
    """Run Python ``code`` in the sandbox (or one of its named netns) with
    dockline's library on the path; returns the CompletedProcess."""
    argv = [PYTHON, "-c", code]
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": os.path.join(REPO, "lib")}
    return sandbox.run(argv, env=env, timeout=timeout)


# Fixtures (here, not in a conftest.py: one in this directory would shadow
# the top conftest that tests import helpers from); test modules import them.
@pytest.fixture(name="etcd1")
def etcd1_fixture(sandbox):
    etcd = Etcd(sandbox, 1)
    try:
        yield etcd.start()
    finally:
        etcd.stop()


@pytest.fixture(name="etcd3")
def etcd3_fixture(sandbox):
    etcd = Etcd(sandbox, 3)
    try:
        yield etcd.start()
    finally:
        etcd.stop()

"""Calling a plugin exactly as a runtime does: a stripped environment
(PATH and CNI_* only), the config on stdin, inside a test's sandbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox import Sandbox


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

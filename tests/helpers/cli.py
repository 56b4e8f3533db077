"""Running `dockline` (the console script pip installed into .venv) inside
a test's sandbox, and a spy plugin that records what a runtime sends."""

from __future__ import annotations

import json

from helpers.paths import REPO

DOCKLINE = REPO / ".venv" / "bin" / "dockline"
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

# Records each call's command, environment and config as one JSON line;
# answers ADD with its prevResult (or a minimal result), like a
# pass-through meta plugin.
SPY = r"""#!/usr/bin/python3 -I
import json, os, sys
conf = json.loads(sys.stdin.read())
with open(os.environ["SPY_LOG"], "a") as log:
    log.write(json.dumps({"command": os.environ["CNI_COMMAND"], "type": conf.get("type"),
        "env": {k: v for k, v in os.environ.items() if k.startswith("CNI_")},
        "conf": conf}) + "\n")
if os.environ.get("SPY_FAIL") == os.environ["CNI_COMMAND"]:
    print(json.dumps({"cniVersion": conf["cniVersion"], "code": 123, "msg": "spy refuses",
                      "details": "as asked"}))
    sys.exit(1)
if os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps(conf.get("prevResult") or {"cniVersion": conf["cniVersion"], "ips": []}))
"""


def dockline(sb, *args, env=None, cni_path=None):
    full = dict(BASE_ENV)
    if cni_path is not None:
        full["CNI_PATH"] = str(cni_path)
    full.update(env or {})
    return sb.run([str(DOCKLINE), *args], env=full)


def put_conf(sb, name: str, conf) -> None:
    text = conf if isinstance(conf, str) else json.dumps(conf)
    sb.run(["sh", "-c", f"cat > /etc/cni/net.d/{name}"], input=text, check=True)


def repo_conf(name: str) -> dict:
    return json.loads((REPO / "conf" / name).read_text())


SPY_DIR = "/var/lib/cni/spybin"  # inside the sandbox's tmpfs
SPY_LOG = "/var/lib/cni/spy.log"


def make_spy(sb) -> str:
    sb.run(
        ["sh", "-c", f"mkdir -p {SPY_DIR} && cat > {SPY_DIR}/spy && chmod 0755 {SPY_DIR}/spy"],
        input=SPY,
        check=True,
    )
    return SPY_DIR


def spy_calls(sb) -> list[dict]:
    out = sb.sh(f"cat {SPY_LOG} 2>/dev/null || true").stdout
    return [json.loads(line) for line in out.splitlines()]

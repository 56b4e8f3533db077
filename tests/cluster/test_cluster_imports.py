"""Cluster mode costs nothing on one host: without a ``cluster`` object the
cluster package (and its socket client) is not imported; with one, the
client does not pull in json, re, http.client or ssl (no TLS)."""

from __future__ import annotations

import json

from etcdrun import etcd1_fixture  # noqa: F401 (fixture)
from helpers.paths import DOCKLINE_BIN

PROBE = """
import posix, sys
real_exit = posix._exit
def report_and_exit(code):
    seen = sorted(m for m in %(watch)r if m in sys.modules)
    sys.stderr.write('LOADED=' + ','.join(seen) + '\\n')
    sys.stderr.flush()
    real_exit(code)
posix._exit = report_and_exit
path = %(launcher)r
exec(compile(open(path).read(), path, 'exec'), {'__name__': '__main__'})
"""
CLUSTER = ("dockline.cluster", "dockline.cluster.etcd", "dockline.cluster.blocks")
HEAVY = ("json", "re", "http.client", "email", "ssl", "typing", "subprocess")


def probe(sandbox, config, watch):
    launcher = DOCKLINE_BIN / "host-local"
    interpreter = launcher.read_text().splitlines()[0][2:].split()[0]
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(DOCKLINE_BIN),
        "DOCKLINE_NO_ZYGOTE": "1",
    }
    proc = sandbox.run(
        [interpreter, "-I", "-S", "-c", PROBE % {"watch": watch, "launcher": str(launcher)}],
        input=json.dumps(config),
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stderr.split("LOADED=")[1].split()[0] if "LOADED=\n" not in proc.stderr else ""


def config(**extra):
    return {
        "cniVersion": "1.1.0",
        "name": "n",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.2.0/24"}]]},
        **extra,
    }


def test_single_host_does_not_import_the_cluster_package(sandbox):
    assert probe(sandbox, config(), CLUSTER) == ""


def test_cluster_mode_imports_no_heavy_module(sandbox, etcd1):
    loaded = probe(sandbox, config(cluster={"endpoints": etcd1.endpoints}), CLUSTER + HEAVY)
    assert loaded == ",".join(sorted(CLUSTER)), loaded

"""`dockline install`: launchers written the way install.sh writes them,
that a runtime can call (VERSION, and an ADD in a sandbox), and that
dockline's delegation recognises as its own."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers.cli import DOCKLINE
from helpers.cni import call_plugin
from helpers.paths import REPO


@pytest.fixture
def bin_dir():
    with tempfile.TemporaryDirectory(prefix="dockline-install-") as d:
        yield Path(d) / "cni" / "bin"  # created by install


def install(bin_dir, *flags):
    run = subprocess.run(
        [str(DOCKLINE), "install", str(bin_dir), *flags],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    return run


def test_install_writes_working_launchers(bin_dir, sandbox):
    run = install(bin_dir)
    names = sorted(os.listdir(bin_dir))
    assert names == ["bridge", "host-local", "portmap", "static"]  # no temporary files left
    assert run.stdout.split() == [
        str(bin_dir / n) for n in ("host-local", "static", "bridge", "portmap")
    ]
    for name in names:
        path = bin_dir / name
        assert path.stat().st_mode & 0o777 == 0o755
        text = path.read_text()
        first = text.splitlines()[0]
        assert first.startswith("#!/") and first.endswith(" -IS")
        assert os.path.realpath(first[2:-4]) == first[2:-4]  # the real binary, not a venv link
        assert "zygote=True" in text
        # the code it runs: this checkout's lib/, the plugin named by its type
        assert f'launch("{name}", PATHS, ' in text and json.dumps(str(REPO / "lib")) in text
        version = subprocess.run(
            [str(path)], env={"CNI_COMMAND": "VERSION"}, capture_output=True, text=True, input="{}"
        )
        assert (
            version.returncode == 0 and "1.1.0" in json.loads(version.stdout)["supportedVersions"]
        )
    # an ADD and a DEL through them, bridge delegating to host-local
    conf = {
        "cniVersion": "1.1.0",
        "name": "inst",
        "type": "bridge",
        "bridge": "inst0",
        "isGateway": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.66.0.0/24"}]]},
    }
    sandbox.sh("ip netns add c1")
    add = call_plugin(sandbox, bin_dir / "bridge", "ADD", conf, netns="/run/netns/c1").ok()
    assert add.json["ips"][0]["address"] == "10.66.0.2/24"
    assert "10.66.0.2" in sandbox.sh("ip -n c1 addr show eth0").stdout
    call_plugin(sandbox, bin_dir / "bridge", "DEL", conf, netns="/run/netns/c1").ok()
    assert "10.66.0.2" not in sandbox.sh("ls /var/lib/cni/networks/inst").stdout


def test_install_without_zygote_and_again_over_itself(bin_dir):
    install(bin_dir)
    doc = json.loads(install(bin_dir, "--no-zygote", "--json").stdout)
    assert doc == {
        "binDir": str(bin_dir),
        "zygote": False,
        "plugins": [str(bin_dir / n) for n in ("host-local", "static", "bridge", "portmap")],
    }
    assert sorted(os.listdir(bin_dir)) == ["bridge", "host-local", "portmap", "static"]
    assert "zygote=False" in (bin_dir / "bridge").read_text()


def test_install_help_has_an_example():
    run = subprocess.run([str(DOCKLINE), "install", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "dockline install /opt/cni/bin" in run.stdout

"""Delegation to an IPAM plugin: dockline's own runs in-process, any other
(here the reference host-local) as a separate process; both give the same
result and the same errors."""

import sys

import pytest
from dockline import launcher
from dockline.cni import delegate, jsonio
from dockline.cni.errors import CniError
from dockline.cni.skel import CmdArgs
from helpers.paths import REFERENCE_BIN, VENV_PYTHON


def make_request(tmp_path, cni_path, command="ADD", cid="c1", **ipam):
    config = {
        "cniVersion": "1.0.0",
        "name": "net1",
        "ipam": dict(
            {
                "type": "host-local",
                "dataDir": str(tmp_path),
                "ranges": [[{"subnet": "10.7.0.0/24"}]],
            },
            **ipam,
        ),
    }
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(cni_path),
    }
    stdin = jsonio.dumps(config).encode()
    return CmdArgs(command, env, stdin, config, "1.0.0")


@pytest.fixture
def reference_only():
    if not (REFERENCE_BIN / "host-local").exists():
        pytest.fail("the reference plugins (containernetworking-plugins) are not installed")
    return REFERENCE_BIN


def test_own_launcher_is_recognised_by_its_exact_text(tmp_path, reference_only, monkeypatch):
    """A delegated type runs in-process only from this installation's own
    launcher for that type: the same bytes, not values read out of it."""
    facts = launcher.Facts(sys.executable, [str(tmp_path)], "123", True)
    own = tmp_path / "host-local"
    own.write_text(launcher.text("host-local", facts))
    other_type = tmp_path / "other"
    other_type.write_text(launcher.text("static", facts))
    other_install = tmp_path / "older"
    other_install.write_text(
        launcher.text("host-local", launcher.Facts(sys.executable, [], "1", True))
    )
    edited = tmp_path / "edited"
    edited.write_text(launcher.text("host-local", facts) + "import os\n")
    monkeypatch.setattr(launcher, "CURRENT", None)
    assert delegate._own_module(str(own), "host-local") is None  # not started from a launcher
    monkeypatch.setattr(launcher, "CURRENT", facts)
    module = delegate._own_module(str(own), "host-local")
    assert module is not None and module.__name__ == "dockline.plugins.host_local"
    for path in (other_type, other_install, edited, reference_only / "host-local"):
        assert delegate._own_module(str(path), "host-local") is None, path
    assert delegate._own_module(str(own), "no-such-type") is None


# Run in the sandbox: a delegated plugin touches /run (the zygote's
# directory, IPAM's index), which must never be the host's.
_DRIVER = """
import json, os, sys
from dockline import launcher
from dockline.cni import delegate
from dockline.cni.errors import CniError
from dockline.cni.skel import CmdArgs
config, bin_dir, mode = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
if mode != "reference":
    # this installation's launcher, written now (zygote off: nothing outlives the call)
    import pyroute2
    site = os.path.dirname(os.path.dirname(pyroute2.__file__))
    lib = os.path.dirname(os.path.dirname(launcher.__file__))
    facts = launcher.Facts(os.path.realpath(sys.executable), [lib, site], "1", False)
    with open(os.path.join(bin_dir, "host-local"), "w") as f:
        f.write(launcher.text("host-local", facts))
    os.chmod(os.path.join(bin_dir, "host-local"), 0o755)
    if mode == "in-process":
        launcher.CURRENT = facts
env = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/x",
       "CNI_PATH": bin_dir}
os.environ.update(env)
out = {"own": delegate._own_module(os.path.join(bin_dir, "host-local"), "host-local") is not None}
for command in ("ADD", "DEL"):
    req = CmdArgs(command, dict(env, CNI_COMMAND=command), json.dumps(config).encode(), config,
                  "1.0.0")
    try:
        out[command] = delegate.run(req, "host-local", command)
    except CniError as err:
        out[command] = {"code": err.code, "msg": err.msg, "details": err.details}
        break
print(json.dumps(out))
"""


def _delegate(sandbox, tmp_path, mode, **ipam):
    bin_dir = REFERENCE_BIN if mode == "reference" else tmp_path / "bin"
    if mode != "reference":
        bin_dir.mkdir()
    config = make_request(tmp_path / "data", bin_dir, **ipam).config
    run = sandbox.run([VENV_PYTHON, "-c", _DRIVER, jsonio.dumps(config), str(bin_dir), mode])
    return jsonio.loads(run.stdout)


MODES = ["in-process", "executed", "reference"]


@pytest.mark.parametrize("mode", MODES)
def test_add_del_through_delegate(sandbox, tmp_path, reference_only, mode):
    out = _delegate(sandbox, tmp_path, mode)
    assert out["own"] == (mode == "in-process")
    assert out["ADD"]["ips"] == [{"address": "10.7.0.2/24", "gateway": "10.7.0.1"}]
    assert out["DEL"] is None
    assert not (tmp_path / "data" / "net1" / "10.7.0.2").exists()


@pytest.mark.parametrize("mode", MODES)
def test_delegate_errors_become_cni_errors(sandbox, tmp_path, reference_only, mode):
    out = _delegate(sandbox, tmp_path, mode, ranges=[[{"subnet": "10.7.0.0/31"}]])
    assert "too small" in out["ADD"]["msg"] + out["ADD"]["details"]
    if mode != "reference":  # the reference says 999 for it; dockline, invalid config
        assert out["ADD"]["code"] == 7


def test_missing_plugin_is_a_config_error(tmp_path):
    req = make_request(tmp_path, tmp_path)
    with pytest.raises(CniError) as err:
        delegate.run(req, "no-such-ipam", "ADD")
    assert err.value.code == 7 and "no-such-ipam" in err.value.msg
    with pytest.raises(CniError):
        delegate.run(req, "../bin/sh", "ADD")

"""Delegation to an IPAM plugin: dockline's own runs in-process, any other
(here the reference host-local) as a separate process; both give the same
result and the same errors."""

import os
import sys

import pytest
from dockline import launcher
from dockline.cni import delegate, jsonio
from dockline.cni.errors import CniError
from dockline.cni.skel import CmdArgs
from helpers.paths import REFERENCE_BIN


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
    other_install.write_text(launcher.text("host-local", launcher.Facts(sys.executable, [], "1", True)))
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


@pytest.mark.parametrize("which", ["dockline", "reference"])
def test_add_del_through_delegate(tmp_path, dockline_bin, reference_only, monkeypatch, which):
    cni_path = dockline_bin if which == "dockline" else reference_only
    req = make_request(tmp_path, cni_path)
    monkeypatch.setattr(
        os,
        "environ",
        dict(
            os.environ,
            CNI_CONTAINERID="c1",
            CNI_IFNAME="eth0",
            CNI_NETNS="/run/netns/x",
            CNI_PATH=str(cni_path),
        ),
    )
    result = delegate.run(req, "host-local", "ADD")
    assert result["ips"] == [{"address": "10.7.0.2/24", "gateway": "10.7.0.1"}]
    assert (tmp_path / "net1" / "10.7.0.2").read_bytes() == b"c1\r\neth0"
    assert delegate.run(req, "host-local", "DEL") is None
    assert not (tmp_path / "net1" / "10.7.0.2").exists()


@pytest.mark.parametrize("which", ["dockline", "reference"])
def test_delegate_errors_become_cni_errors(
    tmp_path, dockline_bin, reference_only, monkeypatch, which
):
    cni_path = dockline_bin if which == "dockline" else reference_only
    req = make_request(tmp_path, cni_path, ranges=[[{"subnet": "10.7.0.0/31"}]])
    monkeypatch.setattr(
        os,
        "environ",
        dict(
            os.environ,
            CNI_CONTAINERID="c1",
            CNI_IFNAME="eth0",
            CNI_NETNS="/run/netns/x",
            CNI_PATH=str(cni_path),
        ),
    )
    with pytest.raises(CniError) as err:
        delegate.run(req, "host-local", "ADD")
    assert "too small" in str(err.value)


def test_missing_plugin_is_a_config_error(tmp_path):
    req = make_request(tmp_path, tmp_path)
    with pytest.raises(CniError) as err:
        delegate.run(req, "no-such-ipam", "ADD")
    assert err.value.code == 7 and "no-such-ipam" in err.value.msg
    with pytest.raises(CniError):
        delegate.run(req, "../bin/sh", "ADD")

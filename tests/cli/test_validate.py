"""`dockline validate`: a network config checked by libcni's rules and the
plugins' own parsers, with the plugin index and key of each problem, and
nothing touched (it runs in this process, outside any sandbox, on files
in a temporary directory)."""

import json
import tempfile
from pathlib import Path

import pytest
from dockline.cli.main import main
from helpers.paths import REPO


@pytest.fixture
def tmp_path():
    """A temporary directory removed after the test (pytest's own are kept)."""
    with tempfile.TemporaryDirectory(prefix="dockline-cli-") as d:
        yield Path(d)


CONF30 = json.loads((REPO / "conf" / "30-dockline-portmap.conflist").read_text())


def validate(tmp_path, capsys, conf, *flags, name="x.conflist"):
    path = tmp_path / name
    path.write_text(conf if isinstance(conf, str) else json.dumps(conf))
    code = main(["validate", *flags, str(path)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", ["20-dockline-bridge.conflist", "30-dockline-portmap.conflist"])
def test_shipped_configs_are_valid(capsys, name):
    assert main(["validate", str(REPO / "conf" / name)]) == 0
    assert "valid (network 'dockline'" in capsys.readouterr().out


def edited(path: list, value):
    conf = json.loads(json.dumps(CONF30))
    target = conf
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return conf


@pytest.mark.parametrize(
    "conf, where, needle",
    [
        (edited(["plugins", 1, "backend"], "pf"), "plugins[1] (portmap)", "invalid backend"),
        (edited(["plugins", 0, "mtu"], 20), "plugins[0] (bridge)", "invalid mtu"),
        (
            edited(["plugins", 0, "ipam", "ranges"], [[{"subnet": "10.89.0.0/33"}]]),
            "plugins[0] (bridge).ipam",
            "subnet",
        ),
        (
            edited(["plugins", 0, "ipam", "dataDir"], "relative/dir"),
            "plugins[0] (bridge).ipam",
            "dataDir",
        ),
        (
            edited(["plugins", 0, "capabilities"], {"ips": "yes"}),
            "plugins[0] (bridge).capabilities",
            "true/false",
        ),
        (edited(["cniVersion"], "7.0.0"), "cniVersion", "7.0.0"),
        (edited(["name"], "bad name"), "name", "must match"),
        (edited(["plugins"], []), "structure", "no plugins"),
        (edited(["plugins", 1], {"snat": True}), "structure", "missing 'type'"),
        ('{"name": "x", "plugins": [', "json", ""),
        ('{"name": "x", "mtu": NaN, "plugins": []}', "json", ""),
    ],
)
def test_problems_say_what_and_where(tmp_path, capsys, conf, where, needle):
    code, out, _ = validate(tmp_path, capsys, conf)
    assert code == 1
    assert out.splitlines()[1].split()[:2] == ["WHERE", "PROBLEM"]
    code, out, _ = validate(tmp_path, capsys, conf, "--json")
    doc = json.loads(out)
    assert code == 1 and not doc["valid"]
    assert any(p["where"] == where and needle in p["problem"] for p in doc["problems"]), doc[
        "problems"
    ]


def test_single_plugin_conf_and_cni_path(tmp_path, capsys):
    single = dict(CONF30["plugins"][0], cniVersion="1.0.0", name="single")
    code, out, _ = validate(tmp_path, capsys, single, name="10-single.conf")
    assert code == 0 and "plugins bridge" in out
    code, out, _ = validate(
        tmp_path, capsys, single, "--json", "--cni-path", str(tmp_path), name="10-single.conf"
    )
    assert code == 1 and "no executable 'bridge'" in json.loads(out)["problems"][0]["problem"]


def test_missing_file_is_a_usage_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.conflist")]) == 2

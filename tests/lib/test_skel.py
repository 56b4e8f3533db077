"""The dispatcher's validation, seen as a runtime sees it: through the
host-local executable, with a stripped environment, in a sandbox."""

import pytest
from helpers.cni import call_plugin

CONF = {
    "cniVersion": "1.0.0",
    "name": "net1",
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.2.0/24"}]]},
}


def test_version_lists_every_spec_version(sandbox, dockline_bin):
    run = call_plugin(
        sandbox,
        dockline_bin / "host-local",
        "VERSION",
        {"cniVersion": "1.0.0"},
        containerid=None,
        netns=None,
        ifname=None,
        path="",
    )
    assert run.ok().json == {
        "cniVersion": "1.1.0",
        "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }


def test_no_command_prints_about_to_stderr(sandbox, dockline_bin):
    proc = sandbox.run([str(dockline_bin / "host-local")], input="", env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and proc.stdout == ""
    assert "dockline host-local" in proc.stderr and "1.1.0" in proc.stderr


@pytest.mark.parametrize("missing", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])
def test_missing_env_is_code_4_naming_it(sandbox, dockline_bin, missing):
    kw = {"containerid": "c1", "netns": "/run/netns/x", "ifname": "eth0"}
    kw[
        {"CNI_CONTAINERID": "containerid", "CNI_NETNS": "netns", "CNI_IFNAME": "ifname"}[missing]
    ] = None
    run = call_plugin(sandbox, dockline_bin / "host-local", "ADD", CONF, **kw)
    assert run.code != 0
    assert run.json["code"] == 4 and missing in run.json["details"]
    assert "Traceback" not in run.stdout


def test_del_does_not_need_netns(sandbox, dockline_bin):
    call_plugin(sandbox, dockline_bin / "host-local", "DEL", CONF, netns=None).ok()


def test_unknown_command_is_code_4(sandbox, dockline_bin):
    run = call_plugin(sandbox, dockline_bin / "host-local", "FROB", CONF)
    assert run.code != 0 and run.json["code"] == 4


@pytest.mark.parametrize(
    "command,version", [("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "0.4.0")]
)
def test_command_needs_a_recent_enough_version(sandbox, dockline_bin, command, version):
    run = call_plugin(sandbox, dockline_bin / "host-local", command, dict(CONF, cniVersion=version))
    assert run.code != 0 and run.json["code"] == 1
    assert run.json["cniVersion"] == version


def test_missing_cni_version_means_0_1_0(sandbox, dockline_bin):
    conf = {k: v for k, v in CONF.items() if k != "cniVersion"}
    out = call_plugin(sandbox, dockline_bin / "host-local", "ADD", conf).ok().json
    assert out["cniVersion"] == "0.1.0" and out["ip4"]["ip"] == "10.1.2.2/24"


@pytest.mark.parametrize("name", ["", "-net", "a/b", "../x", "sp ace", "n\n"])
def test_invalid_network_name_is_code_7(sandbox, dockline_bin, name):
    run = call_plugin(sandbox, dockline_bin / "host-local", "ADD", dict(CONF, name=name))
    assert run.code != 0 and run.json["code"] == 7


@pytest.mark.parametrize(
    "args,code",
    [
        ("IgnoreUnknown=1;K8S_POD_NAME=web", 0),
        ("IgnoreUnknown=true;FOO=1", 0),
        ("FOO=1", 4),
        ("novalue", 4),
        ("IP=10.1.2.50", 0),
    ],
)
def test_cni_args(sandbox, dockline_bin, args, code):
    run = call_plugin(sandbox, dockline_bin / "host-local", "ADD", CONF, args=args)
    if code == 0:
        run.ok()
    else:
        assert run.code != 0 and run.json["code"] == code


PROBE = """
import posix, sys
real_exit = posix._exit
def report_and_exit(code):
    heavy = sorted(m for m in %(heavy)r if m in sys.modules)
    sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')
    sys.stderr.flush()
    real_exit(code)
posix._exit = report_and_exit
path = %(launcher)r
exec(compile(open(path).read(), path, 'exec'), {'__name__': '__main__'})
"""
HEAVY = (
    "json",
    "re",
    "typing",
    "pyroute2",
    "netaddr",
    "subprocess",
    "dataclasses",
    "asyncio",
    "hashlib",
    "logging",
)


def _probe(sandbox, dockline_bin, extra_env, heavy=HEAVY, cid="c1"):
    launcher = dockline_bin / "host-local"
    interpreter = launcher.read_text().splitlines()[0][2:].split()[0]
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(dockline_bin),
        **extra_env,
    }
    import json

    proc = sandbox.run(
        [interpreter, "-I", "-S", "-c", PROBE % {"heavy": heavy, "launcher": str(launcher)}],
        input=json.dumps(CONF),
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ips"][0]["address"].startswith("10.1.2.")
    return proc.stderr


def test_stripped_environment_and_lean_imports(sandbox, dockline_bin):
    """Runtimes call plugins with almost no environment; the launcher must
    work without PYTHONPATH or a venv, and must not load heavy modules on
    the IPAM path (each costs milliseconds on every container start)."""
    assert "HEAVY=\n" in _probe(sandbox, dockline_bin, {"DOCKLINE_NO_ZYGOTE": "1"})


def test_zygote_client_loads_almost_nothing(sandbox, dockline_bin):
    """With a warm zygote the executable only forwards the call: none of the
    plugin code (not even the address library), and no module that is not
    built into the interpreter but dockline's launch, plugins table and
    zygote client, is loaded in it."""
    _probe(sandbox, dockline_bin, {}, cid="warm")  # starts the zygote
    import time

    for _ in range(50):
        if "zygote_server.serve" in sandbox.sh("ps -eo args", check=False).stdout:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # let it finish loading
    light = HEAVY + (
        "ipaddress",
        "dockline.plugins.host_local",
        "dockline.ipam.allocator",
        "dockline.cni.skel",
        "dockline.cni.jsonio",
        "dockline.launcher",
        "dockline.serve",
        "dockline.zygote_server",
        "os",
        "__future__",
        "_collections_abc",
    )
    assert "HEAVY=\n" in _probe(sandbox, dockline_bin, {}, heavy=light, cid="c2")

"""`dockline cnitool` end to end in a sandbox, with the conflists in conf/:
the chain per the spec, libcni's cache (format, place, DEL from the cache
alone), config discovery and up-conversion, version negotiation,
capability filtering, errors and exit statuses."""

import base64
import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from dockline.cli import libcni
from helpers.cli import SPY_LOG, dockline, make_spy, put_conf, repo_conf, spy_calls
from helpers.paths import REPO


@pytest.fixture
def tmp_path():
    """A temporary directory removed after the test (pytest's own are kept)."""
    with tempfile.TemporaryDirectory(prefix="dockline-cli-") as d:
        yield Path(d)


CID_WEB = "cnitool-" + hashlib.sha512(b"/run/netns/web").hexdigest()[:20]
MAC = "0a:58:0a:59:00:99"


def test_add_check_status_gc_del_with_conf20(sandbox, dockline_bin):
    conf_bytes = (REPO / "conf" / "20-dockline-bridge.conflist").read_bytes()
    put_conf(sandbox, "20-dockline-bridge.conflist", conf_bytes.decode())
    sandbox.sh("ip netns add web")
    env = {
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
        "CAP_ARGS": json.dumps({"mac": MAC, "portMappings": [{"hostPort": 1, "containerPort": 2}]}),
    }
    run = dockline(
        sandbox, "cnitool", "add", "dockline", "/run/netns/web", env=env, cni_path=dockline_bin
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert [ip["address"] for ip in result["ips"]] == ["10.89.0.2/24", "fd89::2/64"]
    # the declared "mac" capability reached the bridge
    assert [i["mac"] for i in result["interfaces"] if i["name"] == "eth0"] == [MAC]

    # the cache: libcni's place, name, modes and fields
    path = f"/var/lib/cni/results/dockline-{CID_WEB}-eth0"
    assert sandbox.sh("stat -c %a /var/lib/cni/results " + path).stdout.split() == ["700", "600"]
    cached = json.loads(sandbox.sh(f"cat {path}").stdout)
    assert list(cached) == [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "cniArgs",
        "capabilityArgs",
        "result",
    ]
    assert cached["kind"] == "cniCacheV1" and cached["containerId"] == CID_WEB
    assert base64.b64decode(cached["config"]) == conf_bytes  # the file's bytes, as libcni keeps
    assert (cached["ifName"], cached["networkName"], cached["netns"]) == (
        "eth0",
        "dockline",
        "/run/netns/web",
    )
    assert cached["cniArgs"] == [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]]
    assert cached["capabilityArgs"] == json.loads(env["CAP_ARGS"])
    assert cached["result"] == result

    for command in ("check", "status", "gc"):
        run = dockline(
            sandbox, "cnitool", command, "dockline", "/run/netns/web", cni_path=dockline_bin
        )
        assert run.returncode == 0, (command, run.stdout, run.stderr)
    # GC kept what the cache knows
    assert sandbox.sh("ls /var/lib/cni/networks/dockline").stdout.split().count("10.89.0.2") == 1

    run = dockline(sandbox, "cnitool", "del", "dockline", "/run/netns/web", cni_path=dockline_bin)
    assert run.returncode == 0, run.stderr
    assert sandbox.sh(f"ls {path} 2>/dev/null || true").stdout == ""
    assert "dl" not in sandbox.sh("ip -br link show type veth").stdout
    assert "10.89" not in sandbox.sh("ls /var/lib/cni/networks/dockline").stdout
    # DEL again: fine, as the spec wants
    assert (
        dockline(
            sandbox, "cnitool", "del", "dockline", "/run/netns/web", cni_path=dockline_bin
        ).returncode
        == 0
    )


def test_del_from_the_cache_alone_with_conf30(sandbox, dockline_bin):
    put_conf(sandbox, "30-dockline-portmap.conflist", repo_conf("30-dockline-portmap.conflist"))
    sandbox.sh("ip netns add db; ip netns add web")
    assert (
        dockline(
            sandbox,
            "cnitool",
            "add",
            "dockline",
            "/run/netns/db",
            env={"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=db"},
            cni_path=dockline_bin,
        ).returncode
        == 0
    )
    caps = {"links": ["db:dbapp"], "portMappings": [{"hostPort": 8080, "containerPort": 80}]}
    run = dockline(
        sandbox,
        "cnitool",
        "add",
        "dockline",
        "/run/netns/web",
        env={"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web", "CAP_ARGS": json.dumps(caps)},
        cni_path=dockline_bin,
    )
    assert run.returncode == 0, run.stderr
    assert "dbapp" in sandbox.sh("cat /etc/netns/web/hosts").stdout
    assert "8080" in sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    # no CAP_ARGS, no CNI_ARGS at DEL: everything comes from the cache
    run = dockline(sandbox, "cnitool", "del", "dockline", "/run/netns/web", cni_path=dockline_bin)
    assert run.returncode == 0, run.stderr
    rules = sandbox.sh("iptables-save -t nat; ip6tables-save -t nat; nft list ruleset").stdout
    assert "8080" not in rules and "DLP-" not in rules
    assert "dockline-link" not in sandbox.sh("cat /etc/netns/web/hosts").stdout
    assert (
        dockline(
            sandbox, "cnitool", "del", "dockline", "/run/netns/db", cni_path=dockline_bin
        ).returncode
        == 0
    )
    assert sandbox.sh("ls /var/lib/cni/results").stdout == ""
    rules = sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    assert "DL-" not in rules and "dl-" not in rules


def test_del_when_the_config_file_is_gone(sandbox, dockline_bin):
    put_conf(sandbox, "20.conflist", repo_conf("20-dockline-bridge.conflist"))
    sandbox.sh("ip netns add web")
    assert (
        dockline(
            sandbox, "cnitool", "add", "dockline", "/run/netns/web", cni_path=dockline_bin
        ).returncode
        == 0
    )
    sandbox.sh("rm /etc/cni/net.d/20.conflist")
    run = dockline(sandbox, "cnitool", "del", "dockline", "/run/netns/web", cni_path=dockline_bin)
    assert run.returncode == 0 and "cached by ADD" in run.stderr
    assert "10.89" not in sandbox.sh("ls /var/lib/cni/networks/dockline").stdout


def test_chain_order_injection_and_capability_filtering(sandbox, dockline_bin):
    spy_dir = make_spy(sandbox)
    conf = repo_conf("20-dockline-bridge.conflist")
    conf["cniVersion"] = "0.4.0"
    conf["cniVersions"] = ["1.0.0", "1.1.0", "9.9.9"]  # 1.1.0: the highest this runtime speaks
    conf["plugins"].append({"type": "spy", "capabilities": {"portMappings": True, "mac": False}})
    conf["plugins"].append({"type": "spy2"})
    sandbox.sh(f"ln -s spy {spy_dir}/spy2")
    put_conf(sandbox, "50-spy.conflist", conf)
    sandbox.sh("ip netns add web")
    env = {
        "SPY_LOG": SPY_LOG,
        "CNI_IFNAME": "net1",
        "CAP_ARGS": json.dumps(
            {
                "mac": MAC,
                "portMappings": [{"hostPort": 1, "containerPort": 2}],
                "bandwidth": {"ingressRate": 1},
            }
        ),
    }
    cni_path = f"{dockline_bin}:{spy_dir}"
    run = dockline(
        sandbox, "cnitool", "add", "dockline", "/run/netns/web", env=env, cni_path=cni_path
    )
    assert run.returncode == 0, run.stderr
    add, add2 = spy_calls(sandbox)
    assert (add["type"], add2["type"]) == ("spy", "spy2")
    assert add2["conf"]["prevResult"] == add["conf"]["prevResult"]  # spy's result, passed on
    assert "runtimeConfig" not in add2["conf"]  # declares nothing, gets nothing
    assert add["conf"]["name"] == "dockline" and add["conf"]["cniVersion"] == "1.1.0"
    # only the capability it declares true, nothing else
    assert add["conf"]["runtimeConfig"] == {"portMappings": [{"hostPort": 1, "containerPort": 2}]}
    assert add["conf"]["prevResult"]["ips"][0]["address"] == "10.89.0.2/24"  # bridge's result
    assert add["env"]["CNI_IFNAME"] == "net1" and add["env"]["CNI_CONTAINERID"] == CID_WEB
    assert add["env"]["CNI_NETNS"] == "/run/netns/web"

    no_caps = {k: v for k, v in env.items() if k != "CAP_ARGS"}
    for command in ("check", "gc", "status", "del"):
        run = dockline(
            sandbox,
            "cnitool",
            command,
            "dockline",
            "/run/netns/web",
            env=no_caps if command == "del" else env,
            cni_path=cni_path,
        )
        assert run.returncode == 0, (command, run.stderr)
    calls = [(c["command"], c["type"], c["conf"]) for c in spy_calls(sandbox)[2:]]
    assert [c[:2] for c in calls] == [
        ("CHECK", "spy"),
        ("CHECK", "spy2"),
        ("GC", "spy"),
        ("GC", "spy2"),
        ("STATUS", "spy"),
        ("STATUS", "spy2"),
        ("DEL", "spy2"),
        ("DEL", "spy"),
    ]  # DEL in reverse
    cached_result = add["conf"]["prevResult"]  # the chain's result: the spies pass it on
    assert calls[0][2]["prevResult"] == cached_result  # CHECK: the cached result
    assert calls[2][2]["cni.dev/valid-attachments"] == [{"containerID": CID_WEB, "ifname": "net1"}]
    assert "prevResult" not in calls[4][2] and "runtimeConfig" not in calls[4][2]
    assert calls[6][2]["prevResult"] == cached_result  # DEL: the cached result
    assert (
        calls[7][2]["runtimeConfig"] == add["conf"]["runtimeConfig"]
    )  # no CAP_ARGS: the cached ones


def test_single_plugin_conf_is_lifted_into_a_list(sandbox, dockline_bin):
    single = dict(
        repo_conf("20-dockline-bridge.conflist")["plugins"][0],
        cniVersion="1.0.0",
        name="single",
        bridge="single0",
    )
    single["ipam"].update(ranges=[[{"subnet": "10.77.0.0/24"}]], routes=[{"dst": "0.0.0.0/0"}])
    put_conf(sandbox, "10-single.conf", single)
    put_conf(
        sandbox, "05-other.conflist", dict(repo_conf("20-dockline-bridge.conflist"), name="other")
    )
    sandbox.sh("ip netns add web")
    run = dockline(sandbox, "cnitool", "add", "single", "/run/netns/web", cni_path=dockline_bin)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["cniVersion"] == "1.0.0"
    cached = json.loads(sandbox.sh(f"cat /var/lib/cni/results/single-{CID_WEB}-eth0").stdout)
    lifted = json.loads(base64.b64decode(cached["config"]))
    assert lifted == {"cniVersion": "1.0.0", "name": "single", "plugins": [single]}
    assert (
        dockline(
            sandbox, "cnitool", "del", "single", "/run/netns/web", cni_path=dockline_bin
        ).returncode
        == 0
    )
    assert "single0" in sandbox.sh("ip -br link").stdout  # the bridge stays, as the reference's
    assert "10.77" not in sandbox.sh("ls /var/lib/cni/networks/single").stdout


def test_a_plugin_error_is_printed_readably_and_fails(sandbox, dockline_bin):
    conf = repo_conf("20-dockline-bridge.conflist")
    conf["plugins"][0]["mtu"] = 5
    put_conf(sandbox, "20.conflist", conf)
    sandbox.sh("ip netns add web")
    run = dockline(sandbox, "cnitool", "add", "dockline", "/run/netns/web", cni_path=dockline_bin)
    assert run.returncode == 1
    assert json.loads(run.stdout)["code"] == 7  # the plugin's error JSON, for scripts
    assert "ADD failed in plugin #0 ('bridge'): invalid mtu" in run.stderr
    assert (
        "code:    7 (invalid network config)" in run.stderr
        and "details: 5 is below 68" in run.stderr
    )
    assert sandbox.sh("ls /var/lib/cni/results 2>/dev/null || true").stdout == ""  # nothing cached


def test_plugin_specific_error_code_and_missing_plugin(sandbox, dockline_bin):
    spy_dir = make_spy(sandbox)
    put_conf(
        sandbox,
        "50.conflist",
        {"cniVersion": "1.1.0", "name": "s", "plugins": [{"type": "spy"}, {"type": "nonesuch"}]},
    )
    env = {"SPY_LOG": SPY_LOG, "SPY_FAIL": "STATUS"}
    run = dockline(sandbox, "cnitool", "status", "s", env=env, cni_path=spy_dir)
    assert run.returncode == 1 and "code:    123 (plugin-specific error)" in run.stderr
    assert "details: as asked" in run.stderr
    sandbox.sh("ip netns add web")
    run = dockline(sandbox, "cnitool", "add", "s", "/run/netns/web", env=env, cni_path=spy_dir)
    assert run.returncode == 1 and "failed to find plugin 'nonesuch'" in run.stderr


@pytest.mark.parametrize(
    "args, env, needle",
    [
        (["cnitool", "add", "dockline"], {}, "needs a network namespace"),
        (["cnitool", "add", "dockline", "/run/netns/x"], {"CAP_ARGS": "{not json"}, "CAP_ARGS"),
        (["cnitool", "add", "dockline", "/run/netns/x"], {"CNI_ARGS": "novalue"}, "KEY=VALUE"),
        (["cnitool", "add", "../etc", "/run/netns/x"], {}, "invalid network name"),
        (
            ["cnitool", "add", "dockline", "/run/netns/x", "--ifname", "a/b"],
            {},
            "invalid interface",
        ),
        (["cnitool", "frob", "dockline"], {}, "invalid choice"),
        ([], {}, "usage"),
    ],
)
def test_usage_errors_exit_2(sandbox, args, env, needle):
    run = dockline(sandbox, *args, env=env)
    assert run.returncode == 2 and needle in run.stderr, run.stderr


def test_unknown_network_exits_1(sandbox):
    run = dockline(sandbox, "cnitool", "add", "nope", "/run/netns/x")
    assert run.returncode == 1 and "no net configuration with name 'nope'" in run.stderr


def test_version_negotiation_as_libcni():
    n = libcni.negotiate_version
    assert n({"cniVersion": "0.4.0"}) == "0.4.0"
    assert n({"cniVersion": "0.4.0", "cniVersions": ["1.0.0", "0.3.1"]}) == "1.0.0"
    assert n({"cniVersions": ["1.0.0", "1.1.0", "2.0.0"]}) == "1.1.0"  # never newer than ours
    assert n({"cniVersion": "1.0.0", "cniVersions": ["9.0.0"]}) == "1.0.0"
    with pytest.raises(libcni.ConfigError):
        n({"cniVersions": [1]})


def test_conflists_come_first_in_file_name_order(tmp_path):
    (tmp_path / "01-a.conf").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "x"})
    )
    (tmp_path / "20-b.conflist").write_text(
        json.dumps({"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "second"}]})
    )
    (tmp_path / "10-c.conflist").write_text(
        json.dumps({"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "first"}]})
    )
    (tmp_path / "00-ignored.txt").write_text("not a config")
    net = libcni.load_network(str(tmp_path), "n")
    assert net.plugins[0]["type"] == "first" and net.path.endswith("10-c.conflist")
    (tmp_path / "05-broken.conflist").write_text("{")
    with pytest.raises(libcni.ConfigError, match="05-broken"):  # as libcni: an error, not a skip
        libcni.load_network(str(tmp_path), "n")


def test_deletes_what_a_go_libcni_runtime_cached(sandbox, dockline_bin):
    """ADD done by plugin calls as a libcni runtime makes them, its cache
    written as Go marshals cachedInfo (compact, no netns, no cniArgs): a
    DEL with no capability args removes the published port."""
    from helpers.cni import call_plugin

    conf_bytes = (REPO / "conf" / "30-dockline-portmap.conflist").read_bytes()
    put_conf(sandbox, "30.conflist", conf_bytes.decode())
    conf = json.loads(conf_bytes)
    caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    sandbox.sh("ip netns add web")
    cid = "5f1c2b3a" * 8
    bridge = dict(conf["plugins"][0], name="dockline", cniVersion="1.1.0")
    prev = (
        call_plugin(
            sandbox, dockline_bin / "bridge", "ADD", bridge, containerid=cid, netns="/run/netns/web"
        )
        .ok()
        .json
    )
    portmap = dict(
        conf["plugins"][1], name="dockline", cniVersion="1.1.0", prevResult=prev, runtimeConfig=caps
    )
    result = (
        call_plugin(
            sandbox,
            dockline_bin / "portmap",
            "ADD",
            portmap,
            containerid=cid,
            netns="/run/netns/web",
        )
        .ok()
        .json
    )
    cached = {
        "kind": "cniCacheV1",
        "containerId": cid,
        "config": base64.b64encode(conf_bytes).decode(),
        "ifName": "eth0",
        "networkName": "dockline",
        "capabilityArgs": caps,
        "result": result,
    }
    sandbox.run(
        [
            "sh",
            "-c",
            f"mkdir -m 0700 -p /var/lib/cni/results && "
            f"cat > /var/lib/cni/results/dockline-{cid}-eth0",
        ],
        input=json.dumps(cached, separators=(",", ":")),
        check=True,
    )
    assert "8080" in sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    inspect = json.loads(dockline(sandbox, "inspect", "dockline", "--json").stdout)
    assert inspect["attachments"][0]["cached"] and inspect["attachments"][0]["ports"] == [
        "8080/tcp->80"
    ]
    run = dockline(
        sandbox, "cnitool", "del", "dockline", "/run/netns/web", "--id", cid, cni_path=dockline_bin
    )
    assert run.returncode == 0, run.stderr
    assert (
        "8080"
        not in sandbox.sh("iptables-save -t nat; ip6tables-save -t nat; nft list ruleset").stdout
    )
    assert sandbox.sh("ls /var/lib/cni/results").stdout == ""
    assert "10.89" not in sandbox.sh("ls /var/lib/cni/networks/dockline").stdout


def test_reference_plugins_through_dockline_cnitool(sandbox):
    """The reference bridge and portmap (spec 1.0.0) driven by `dockline
    cnitool`: the reference portmap finds its rules at DEL only from the
    capability args, which come from the cache when DEL is given none."""
    from helpers.paths import REFERENCE_BIN

    conf = repo_conf("30-dockline-portmap.conflist")
    conf["cniVersion"] = "1.0.0"
    put_conf(sandbox, "30.conflist", conf)
    sandbox.sh("ip netns add web")
    caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    run = dockline(
        sandbox,
        "cnitool",
        "add",
        "dockline",
        "/run/netns/web",
        env={"CAP_ARGS": json.dumps(caps)},
        cni_path=REFERENCE_BIN,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["cniVersion"] == "1.0.0"
    assert "8080" in sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    # (no CHECK: the reference portmap's fails on a dual-stack result, "could
    # not check ipv6 dnat" for the IPv4 rules)
    run = dockline(sandbox, "cnitool", "del", "dockline", "/run/netns/web", cni_path=REFERENCE_BIN)
    assert run.returncode == 0, run.stderr
    # (given capability args without portMappings, it leaves its 4 rules)
    assert "8080" not in sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    assert sandbox.sh("ls /var/lib/cni/results").stdout == ""

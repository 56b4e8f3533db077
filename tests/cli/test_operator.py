"""`dockline networks`, `inspect` and `gc` on real state in a sandbox:
containers added through `dockline cnitool`, one ADD killed half-way."""

import json

import pytest
from dockline.cni.attachment import Attachment
from helpers import registry
from helpers.cli import dockline, put_conf, repo_conf

CAPS_WEB = {"links": ["db:dbapp"], "portMappings": [{"hostPort": 8080, "containerPort": 80}]}


def add(sb, bin_dir, name, caps=None, env=None):
    sb.sh(f"ip netns add {name}")
    full = {"CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAME={name}", "CAP_ARGS": json.dumps(caps or {})}
    full.update(env or {})
    return dockline(
        sb,
        "cnitool",
        "add",
        "dockline",
        f"/run/netns/{name}",
        "--id",
        name,
        env=full,
        cni_path=bin_dir,
    )


def setup(sb, bin_dir, backend=None):
    conf = repo_conf("30-dockline-portmap.conflist")
    if backend:
        conf["plugins"][0]["ipMasqBackend"] = conf["plugins"][1]["backend"] = backend
    put_conf(sb, "30-dockline-portmap.conflist", conf)
    assert add(sb, bin_dir, "db").returncode == 0
    assert add(sb, bin_dir, "web", CAPS_WEB).returncode == 0


def test_networks_lists_chain_subnets_and_address_use(sandbox, dockline_bin):
    setup(sandbox, dockline_bin)
    put_conf(sandbox, "99-broken.conflist", "{")
    run = dockline(sandbox, "networks")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == [
        "NETWORK",
        "PLUGINS",
        "BRIDGE",
        "SUBNET",
        "USED",
        "FREE",
        "ATTACHMENTS",
        "FILE",
    ]
    assert lines[1].split()[:9] == [
        "dockline",
        "bridge",
        ">",
        "portmap",
        "dockline0",
        "10.89.0.0/24",
        "2",
        "251",
        "2",
    ]
    # aligned: every column starts where its header does
    assert lines[1].index("10.89.0.0/24") == lines[0].index("SUBNET")
    assert lines[2].index("fd89::/64") == lines[0].index("SUBNET")
    assert "99-broken.conflist" in run.stdout
    doc = json.loads(dockline(sandbox, "networks", "--json").stdout)
    [net, broken] = doc["networks"]
    assert net["name"] == "dockline" and net["plugins"] == ["bridge", "portmap"]
    assert net["ranges"][0] == {
        "subnet": "10.89.0.0/24",
        "range": "10.89.0.1-10.89.0.254",
        "size": 253,
        "used": 2,
        "free": 251,
    }
    assert net["ranges"][1]["used"] == 2
    assert broken["name"] is None and "parsing" in broken["error"]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_inspect_shows_every_attachment(sandbox, dockline_bin, backend):
    setup(sandbox, dockline_bin, backend)
    run = dockline(sandbox, "inspect", "dockline", "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    atts = {a["containerID"]: a for a in doc["attachments"]}
    assert set(atts) == {"db", "web"}
    web = atts["web"]
    assert web["addresses"] == ["10.89.0.3", "fd89::3"] and web["ifname"] == "eth0"
    assert (
        web["hostVethPresent"] and web["hostVeth"].startswith("dl") and len(web["hostVeth"]) == 15
    )
    assert web["hostVeth"] in sandbox.sh("ip -br link show master dockline0").stdout
    assert "web" in web["names"] or web["pod"] == "web"  # the registry format may evolve
    assert web["links"] == ["db:dbapp"] and web["hostsFile"] == "/etc/netns/web/hosts"
    assert web["ports"] == ["8080/tcp->80"]
    tag = Attachment("dockline", "web", "eth0").tag
    if backend == "iptables":
        assert {f"iptables nat chain DL-{tag}", f"iptables nat chain DLP-{tag}"} <= set(
            web["firewall"]
        )
    else:
        # nftables: the attachment's map elements (firewall.inventory)
        assert "nft inet dockline_portmap ports element" in web["firewall"]
        assert "nft inet dockline_masq src4 element" in web["firewall"]
    assert web["cached"] and web["netnsAlive"] and not web["stale"]
    assert atts["db"]["ports"] == [] and atts["db"]["firewall"]
    assert not any("DLP-" in o or "dockline_portmap" in o for o in atts["db"]["firewall"])
    assert doc["orphanVeths"] == [] and doc["orphanFirewall"] == []

    human = dockline(sandbox, "inspect", "dockline").stdout.splitlines()
    header = next(line for line in human if line.startswith("CONTAINER"))
    row = next(line for line in human if line.startswith("web "))
    assert row.index("10.89.0.3") == header.index("ADDRESSES")
    assert "db:dbapp" in row and "8080/tcp->80" in row and row.rstrip().endswith("ok")
    assert dockline(sandbox, "inspect", "nope").returncode == 1


def test_gc_releases_what_a_killed_add_left(sandbox, dockline_bin, dockline_hooks_bin):
    setup(sandbox, dockline_bin)
    # ADD killed (as by SIGKILL) after IPAM, names and hosts lines; the
    # runtime died too (no DEL), then the netns went away
    run = add(
        sandbox,
        dockline_hooks_bin,
        "dead",
        {"aliases": ["ghost"], "links": ["db:dbapp"]},
        env={"DOCKLINE_CRASH_AT": "remove /etc/netns/dead/hosts"},
    )
    assert run.returncode == 1
    # and one container that is alive but no cache knows (a runtime without
    # libcni's cache): gc must leave it alone
    assert add(sandbox, dockline_bin, "live").returncode == 0
    sandbox.sh("rm /var/lib/cni/results/dockline-live-eth0; ip netns del dead")
    store_before = sandbox.sh("ls /var/lib/cni/networks/dockline").stdout.split()
    assert "10.89.0.4" in store_before  # dead's address is held
    assert "ghost" in sandbox.sh(registry.cat()).stdout
    assert "dockline-link" in sandbox.sh("cat /etc/netns/dead/hosts").stdout

    run = dockline(sandbox, "gc", "dockline")
    assert run.returncode == 0, run.stderr
    assert "1 stale" in run.stdout and "dead" in run.stdout and "--yes" in run.stdout
    assert (
        sandbox.sh("ls /var/lib/cni/networks/dockline").stdout.split() == store_before
    )  # only shown
    doc = json.loads(dockline(sandbox, "gc", "dockline", "--json").stdout)
    assert [a["containerID"] for a in doc["stale"]] == ["dead"] and not doc["collected"]
    assert "ghost" in doc["stale"][0]["names"]  # the registry format may evolve
    assert doc["stale"][0]["addresses"] == ["10.89.0.4", "fd89::4"]
    assert any(  # its masquerade rules (iptables chain or nftables elements)
        "DL-" in obj or "dockline_masq" in obj for obj in doc["stale"][0]["firewall"]
    )

    run = dockline(sandbox, "gc", "dockline", "--yes", cni_path=dockline_bin)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "released" in run.stdout
    store = sandbox.sh("ls /var/lib/cni/networks/dockline").stdout.split()
    assert "10.89.0.4" not in store and {"10.89.0.2", "10.89.0.3", "10.89.0.5"} <= set(store)
    assert "ghost" not in sandbox.sh(registry.cat()).stdout
    assert (
        "dockline-link" not in sandbox.sh("cat /etc/netns/dead/hosts").stdout
    )  # hosts line released
    rules = sandbox.sh("iptables-save -t nat; ip6tables-save -t nat; nft list ruleset").stdout
    assert Attachment("dockline", "dead", "eth0").tag not in rules
    inspect = json.loads(dockline(sandbox, "inspect", "dockline", "--json").stdout)
    assert sorted(a["containerID"] for a in inspect["attachments"]) == ["db", "live", "web"]
    assert all(not a["stale"] for a in inspect["attachments"])
    # the living are untouched: web still checks out
    assert (
        dockline(
            sandbox,
            "cnitool",
            "check",
            "dockline",
            "/run/netns/web",
            "--id",
            "web",
            cni_path=dockline_bin,
        ).returncode
        == 0
    )
    assert "nothing stale" in dockline(sandbox, "gc", "dockline").stdout


def test_gc_finds_orphan_veths_and_rules(sandbox, dockline_bin):
    """A veth and masquerade rules whose addresses were released behind the
    plugins' back: no attachment claims them; the container is alive, so
    gc --yes removes them only when told --orphans."""
    setup(sandbox, dockline_bin)
    assert add(sandbox, dockline_bin, "lost", env={"CNI_ARGS": ""}).returncode == 0
    sandbox.sh(
        "rm /var/lib/cni/results/dockline-lost-eth0 /var/lib/cni/networks/dockline/10.89.0.4 "
        "/var/lib/cni/networks/dockline/fd89::4"
    )
    # alive (its veth is there): not stale
    doc = json.loads(dockline(sandbox, "gc", "dockline", "--json").stdout)
    assert doc["stale"] == [] and doc["orphanVeths"] and doc["orphanFirewall"]
    veth = doc["orphanVeths"][0]
    run = dockline(sandbox, "gc", "dockline", "--yes", cni_path=dockline_bin)
    assert run.returncode == 1 and "--orphans" in run.stderr
    assert veth in sandbox.sh("ip -br link").stdout  # nothing changed
    run = dockline(sandbox, "gc", "dockline", "--yes", "--orphans", cni_path=dockline_bin)
    assert run.returncode == 0, run.stdout + run.stderr
    doc = json.loads(dockline(sandbox, "gc", "dockline", "--json").stdout)
    assert doc["orphanVeths"] == [] and doc["orphanFirewall"] == []
    assert veth not in sandbox.sh("ip -br link").stdout
    # the known ones are all still there
    inspect = json.loads(dockline(sandbox, "inspect", "dockline", "--json").stdout)
    assert all(a["hostVethPresent"] for a in inspect["attachments"])


def test_networks_marks_a_name_libcni_would_never_reach(sandbox):
    put_conf(sandbox, "30-dockline-portmap.conflist", repo_conf("30-dockline-portmap.conflist"))
    put_conf(sandbox, "20-dockline-bridge.conflist", repo_conf("20-dockline-bridge.conflist"))
    doc = json.loads(dockline(sandbox, "networks", "--json").stdout)
    first, second = doc["networks"]
    assert first["file"].endswith("20-dockline-bridge.conflist") and first["shadowedBy"] is None
    assert second["shadowedBy"] == first["file"]
    assert "(shadowed by 20-dockline-bridge.conflist)" in dockline(sandbox, "networks").stdout

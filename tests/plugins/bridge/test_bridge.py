"""dockline's bridge plugin on real kernel objects, in a private sandbox:
traffic between containers, results in every spec version, undo of every
failed step, concurrency, DEL/CHECK/GC/STATUS."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import registry as names_registry
from helpers.bridge import add, conf, delete, dual_conf, http_get, links, store
from helpers.cni import call_plugin


def test_two_containers_talk_over_http_and_reach_the_gateway(sandbox, dockline_bin):
    a = add(sandbox, dockline_bin, "web", conf()).ok().json
    b = add(sandbox, dockline_bin, "db", conf()).ok().json
    assert a["ips"][0]["address"] == "10.44.0.2/24" and b["ips"][0]["address"] == "10.44.0.3/24"
    assert http_get(sandbox, "web", "db", "10.44.0.3") == "200"
    # The gateway is the bridge's address in the sandbox's own namespace.
    assert http_get(sandbox, "db", None, "10.44.0.1", port=8081) == "200"


def test_dual_stack_traffic_over_ipv6(sandbox, dockline_bin):
    add(sandbox, dockline_bin, "web", dual_conf()).ok()
    db = add(sandbox, dockline_bin, "db", dual_conf()).ok().json
    v6 = [ip["address"].split("/")[0] for ip in db["ips"] if ":" in ip["address"]]
    assert v6 == ["fd44::3"]
    assert http_get(sandbox, "web", "db", "fd44::3") == "200"
    dad = sandbox.sh("ip netns exec db sysctl -n net.ipv6.conf.eth0.accept_dad").stdout.strip()
    assert dad == "0"  # no DAD wait on ADD unless enabledad


@pytest.mark.parametrize("version", ["0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_result_in_every_spec_version(sandbox, dockline_bin, version):
    out = add(sandbox, dockline_bin, "c1", conf(version)).ok().json
    assert out["cniVersion"] == version
    if version == "0.2.0":
        assert out["ip4"] == {"ip": "10.44.0.2/24", "gateway": "10.44.0.1"}
        return
    assert [i["name"] for i in out["interfaces"]][0::2] == ["dl0", "eth0"]
    assert out["interfaces"][2]["sandbox"] == "/run/netns/c1"
    assert out["interfaces"][1]["name"].startswith("dl")
    ip = out["ips"][0]
    assert ip["interface"] == 2 and ip["address"] == "10.44.0.2/24" and ip["gateway"] == "10.44.0.1"
    assert ("version" in ip) == (version < "1.0.0")
    assert ("mtu" in out["interfaces"][2]) == (version == "1.1.0")


def test_kernel_state_after_add(sandbox, dockline_bin):
    out = (
        add(
            sandbox,
            dockline_bin,
            "c1",
            conf(
                mtu=1400,
                hairpinMode=True,
                isDefaultGateway=True,
                runtimeConfig={"mac": "0a:58:0a:2c:00:99"},
            ),
        )
        .ok()
        .json
    )
    host = links(sandbox)
    veth = out["interfaces"][1]["name"]
    assert host["dl0"]["linkinfo"]["info_kind"] == "bridge" and host["dl0"]["mtu"] == 1400
    assert host[veth]["master"] == "dl0" and host[veth]["mtu"] == 1400
    assert host[veth]["linkinfo"]["info_slave_data"]["hairpin"] is True
    inside = links(sandbox, "c1")
    assert inside["eth0"]["address"] == "0a:58:0a:2c:00:99" and inside["eth0"]["mtu"] == 1400
    routes = json.loads(sandbox.sh("ip -n c1 -j route").stdout)
    assert {"dst": "default", "gateway": "10.44.0.1"}.items() <= routes[0].items()
    assert sandbox.sh("sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"


def test_add_fails_cleanly_when_the_range_is_exhausted(sandbox, dockline_bin):
    tiny = conf(ipam={"type": "host-local", "ranges": [[{"subnet": "10.45.0.0/30"}]]})
    add(sandbox, dockline_bin, "c1", tiny).ok()
    before = links(sandbox)
    run = add(sandbox, dockline_bin, "c2", tiny)
    assert run.code != 0 and run.json["code"] == 11
    assert links(sandbox).keys() == before.keys()  # no veth left behind
    assert "eth0" not in links(sandbox, "c2")
    assert store(sandbox) == ["10.45.0.2"]


def test_missing_netns_is_code_3_and_leaves_nothing(sandbox, dockline_bin):
    run = call_plugin(
        sandbox,
        dockline_bin / "bridge",
        "ADD",
        conf(),
        containerid="gone",
        netns="/run/netns/does-not-exist",
    )
    assert run.code != 0 and run.json["code"] == 3
    assert store(sandbox) == []
    assert [n for n in links(sandbox) if n.startswith("dl") and n != "dl0"] == []


def test_existing_container_interface_is_refused_and_left_alone(sandbox, dockline_bin):
    # (no dummy driver in every kernel: a veth pair stands in for any
    # interface the runtime or user made)
    sandbox.sh("ip netns add c1; ip -n c1 link add eth0 type veth peer name other0")
    run = call_plugin(
        sandbox, dockline_bin / "bridge", "ADD", conf(), containerid="c1", netns="/run/netns/c1"
    )
    assert run.code != 0 and run.json["code"] == 102
    assert store(sandbox) == []
    delete(sandbox, dockline_bin, "c1", conf()).ok()
    assert links(sandbox, "c1")["eth0"]["linkinfo"]["info_kind"] == "veth"


def test_non_bridge_link_with_the_bridge_name_is_an_error(sandbox, dockline_bin):
    sandbox.sh("ip link add dl0 type veth peer name dl0peer")
    run = add(sandbox, dockline_bin, "c1", conf())
    assert run.code != 0 and "not a bridge" in run.stdout
    assert store(sandbox) == [] and "eth0" not in links(sandbox, "c1")


def test_bridge_address_conflict_rolls_back_and_force_address_replaces(sandbox, dockline_bin):
    sandbox.sh("ip link add dl0 type bridge; ip addr add 10.44.0.200/24 dev dl0")
    run = add(sandbox, dockline_bin, "c1", conf())
    assert run.code != 0 and "already has an IP address" in run.stdout
    assert store(sandbox) == [] and "eth0" not in links(sandbox, "c1")
    assert [n for n in links(sandbox) if n.startswith("dl") and n != "dl0"] == []
    add(sandbox, dockline_bin, "c2", conf(forceAddress=True)).ok()
    addrs = json.loads(sandbox.sh("ip -j addr show dev dl0").stdout)[0]["addr_info"]
    assert [a["local"] for a in addrs if a["family"] == "inet"] == ["10.44.0.1"]


def test_failed_masquerade_step_undoes_veth_and_addresses(sandbox, dockline_bin):
    # A foreign chain of the same name but another type makes the nft
    # transaction fail at the very last step of ADD.
    sandbox.sh(
        "nft add table inet dockline_masq; "
        "nft 'add chain inet dockline_masq srcnat { type filter hook forward priority 0; }'"
    )
    run = add(sandbox, dockline_bin, "c1", conf(ipMasq=True, ipMasqBackend="nftables"))
    assert run.code != 0, run.stdout
    assert store(sandbox) == []
    assert "eth0" not in links(sandbox, "c1")
    assert [n for n in links(sandbox) if n.startswith("dl") and n != "dl0"] == []


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_masquerade_rules_follow_the_container(sandbox, dockline_bin, backend):
    config = conf(ipMasq=True, ipMasqBackend=backend)
    add(sandbox, dockline_bin, "c1", config).ok()
    rules = sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    assert "10.44.0.2" in rules and "MASQUERADE" in rules.upper()
    # DEL finds the rules by the attachment, even with the netns gone.
    sandbox.sh("ip netns del c1")
    delete(sandbox, dockline_bin, "c1", config).ok()
    rules = sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    assert "10.44.0.2" not in rules


def test_32_concurrent_adds_onto_a_new_bridge(sandbox, dockline_bin):
    names = [f"c{i}" for i in range(32)]
    sandbox.sh(" && ".join(f"ip netns add {n}" for n in names))
    config = conf(ipam={"type": "host-local", "ranges": [[{"subnet": "10.46.0.0/24"}]]})

    def one(name):
        return call_plugin(
            sandbox,
            dockline_bin / "bridge",
            "ADD",
            config,
            containerid=name,
            netns=f"/run/netns/{name}",
        )

    with ThreadPoolExecutor(max_workers=32) as pool:
        runs = list(pool.map(one, names))
    assert all(r.code == 0 for r in runs), [r.stdout for r in runs if r.code]
    addresses = {r.json["ips"][0]["address"] for r in runs}
    assert len(addresses) == 32
    ports = [n for n, l in links(sandbox).items() if l.get("master") == "dl0"]
    assert len(ports) == 32


def test_del_is_idempotent_and_works_without_netns(sandbox, dockline_bin):
    out = add(sandbox, dockline_bin, "c1", conf()).ok().json
    veth = out["interfaces"][1]["name"]
    delete(sandbox, dockline_bin, "c1", conf()).ok()
    delete(sandbox, dockline_bin, "c1", conf()).ok()
    delete(sandbox, dockline_bin, "c1", conf(), netns=None).ok()
    assert veth not in links(sandbox) and store(sandbox) == []
    sandbox.sh("ip netns del c1")
    delete(sandbox, dockline_bin, "c1", conf()).ok()


def test_check_follows_kernel_state(sandbox, dockline_bin):
    out = add(sandbox, dockline_bin, "c1", conf(isDefaultGateway=True)).ok().json
    checked = conf(isDefaultGateway=True, prevResult=out)
    call_plugin(
        sandbox, dockline_bin / "bridge", "CHECK", checked, containerid="c1", netns="/run/netns/c1"
    ).ok()
    sandbox.sh("ip -n c1 addr del 10.44.0.2/24 dev eth0")
    run = call_plugin(
        sandbox, dockline_bin / "bridge", "CHECK", checked, containerid="c1", netns="/run/netns/c1"
    )
    assert run.code != 0 and run.json["code"] == 101 and "10.44.0.2" in run.json["msg"]


def test_gc_removes_attachments_not_listed(sandbox, dockline_bin):
    config = conf("1.1.0", ipMasq=True)
    add(sandbox, dockline_bin, "keep", config).ok()
    gone = add(sandbox, dockline_bin, "gone", config).ok().json
    gc_conf = dict(
        config, **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}
    )
    call_plugin(
        sandbox, dockline_bin / "bridge", "GC", gc_conf, containerid=None, netns=None, ifname=None
    ).ok()
    assert gone["interfaces"][1]["name"] not in links(sandbox)
    assert store(sandbox) == ["10.44.0.2"]
    rules = sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    assert "10.44.0.2" in rules and "10.44.0.3" not in rules


def test_status_delegates_to_ipam(sandbox, dockline_bin):
    call_plugin(
        sandbox,
        dockline_bin / "bridge",
        "STATUS",
        conf("1.1.0"),
        containerid=None,
        netns=None,
        ifname=None,
    ).ok()
    sandbox.sh("mount -t tmpfs -o ro none /var/lib/cni")
    run = call_plugin(
        sandbox,
        dockline_bin / "bridge",
        "STATUS",
        conf("1.1.0"),
        containerid=None,
        netns=None,
        ifname=None,
    )
    assert run.code != 0 and run.json["code"] == 50


@pytest.mark.parametrize(
    "bad,fragment",
    [
        ({"hairpinMode": True, "promiscMode": True}, "hairpin"),
        ({"mtu": "big"}, "mtu"),
        ({"bridge": "a/b"}, "bridge"),
        ({"bridge": "x" * 16}, "bridge"),
        ({"disableContainerInterface": True}, "IPAM"),
        ({"runtimeConfig": {"mac": "not-a-mac"}}, "mac"),
        ({"ipam": {"type": "../../bin/sh"}}, "plugin type"),
    ],
)
def test_bad_config_is_code_7_and_changes_nothing(sandbox, dockline_bin, bad, fragment):
    run = add(sandbox, dockline_bin, "c1", conf(**bad))
    assert run.code != 0 and run.json["code"] == 7 and fragment.lower() in run.stdout.lower()
    assert "dl0" not in links(sandbox) or not any(
        l.get("master") == "dl0" for l in links(sandbox).values()
    )
    assert store(sandbox) == []


def test_macspoofchk_drops_frames_with_another_source_mac(sandbox, dockline_bin):
    add(sandbox, dockline_bin, "c1", conf(macspoofchk=True)).ok()
    add(sandbox, dockline_bin, "c2", conf()).ok()
    assert http_get(sandbox, "c2", "c1", "10.44.0.2") == "200"
    sandbox.sh("ip -n c1 link set eth0 address 02:00:00:00:00:66; ip -n c2 neigh flush all")
    assert http_get(sandbox, "c2", "c1", "10.44.0.2", port=8081, tries=2) == ""
    delete(sandbox, dockline_bin, "c1", conf(macspoofchk=True)).ok()
    # the constant rule stays (it names only sets); c1's elements are gone
    ruleset = sandbox.sh("nft list ruleset").stdout
    assert "dockline spoof check" in ruleset and "02:00:00:00:00" not in ruleset
    assert 'comment "dl-' not in sandbox.sh("nft list set bridge dockline_macspoof ports").stdout


def test_macspoofchk_is_elements_of_constant_rules(sandbox, dockline_bin):
    """An attachment is two set elements: DEL removes them by key whatever
    else is there, GC removes those of attachments gone, and a port of
    another attachment is never touched."""
    runs = [add(sandbox, dockline_bin, f"c{i}", conf(macspoofchk=True)).ok() for i in range(3)]
    macs = [r.json["interfaces"][2]["mac"] for r in runs]
    ports = sandbox.sh("nft -j list set bridge dockline_macspoof ports").stdout
    allowed = sandbox.sh("nft list set bridge dockline_macspoof allowed").stdout
    assert ports.count("dl-") == 3 and all(mac in allowed for mac in macs)
    assert (
        sandbox.sh("nft list chain bridge dockline_macspoof prerouting").stdout.count("drop") == 1
    )
    delete(sandbox, dockline_bin, "c0", conf(macspoofchk=True)).ok()
    delete(sandbox, dockline_bin, "c0", conf(macspoofchk=True)).ok()  # again: nothing there
    allowed = sandbox.sh("nft list set bridge dockline_macspoof allowed").stdout
    assert macs[0] not in allowed and macs[1] in allowed and macs[2] in allowed
    gc = dict(conf(macspoofchk=True), cniVersion="1.1.0")
    gc["cni.dev/valid-attachments"] = [{"containerID": "c2", "ifname": "eth0"}]
    call_plugin(
        sandbox, dockline_bin / "bridge", "GC", gc, containerid=None, netns=None, ifname=None
    ).ok()
    allowed = sandbox.sh("nft list set bridge dockline_macspoof allowed").stdout
    assert macs[1] not in allowed and macs[2] in allowed


def test_macspoofchk_del_and_gc_remove_an_older_dockline_s_rules(sandbox, dockline_bin):
    """A host that ran an older dockline has one rule per attachment in
    table bridge dockline_spoofchk: DEL and GC still remove them."""
    from dockline.cni.attachment import Attachment

    tags = {cid: Attachment("net1", cid, "eth0").tag for cid in ("old1", "old2")}
    t = "bridge dockline_spoofchk"
    script = [
        f"add table {t}",
        f"add chain {t} prerouting {{ type filter hook prerouting priority -300; }}",
    ] + [
        f'add rule {t} prerouting iifname "x{i}" ether saddr != 02:00:00:00:00:0{i} drop '
        f'comment "dl-{tag}"'
        for i, tag in enumerate(tags.values())
    ]
    sandbox.sh("nft -f -", input="\n".join(script) + "\n")
    delete(sandbox, dockline_bin, "old1", conf(macspoofchk=True)).ok()
    left = sandbox.sh(f"nft list table {t}").stdout
    assert tags["old1"] not in left and tags["old2"] in left
    gc = dict(conf(macspoofchk=True), cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
    call_plugin(
        sandbox, dockline_bin / "bridge", "GC", gc, containerid=None, netns=None, ifname=None
    ).ok()
    assert "dl-" not in sandbox.sh(f"nft list table {t}").stdout


CRASH_POINTS = [
    "delete veth",
    "remove the MAC spoof check",
    "release addresses",
    "remove masquerade rules",
    "unregister names",
    "remove /etc/netns/web/hosts",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_del_cleans_up_after_add_was_killed(sandbox, dockline_hooks_bin, point):
    """ADD killed (as by SIGKILL) at each point between its steps; the
    runtime's DEL must leave nothing behind."""
    dockline_bin = dockline_hooks_bin
    config = conf(
        ipMasq=True, macspoofchk=True, runtimeConfig={"aliases": ["web"], "links": ["db:dbapp"]}
    )
    db = conf(runtimeConfig={"aliases": ["db"]})
    add(sandbox, dockline_bin, "db", db).ok()
    run = add(sandbox, dockline_bin, "web", config, extra_env={"DOCKLINE_CRASH_AT": point})
    assert run.code == 137, run.stdout  # killed outright, in its own process
    assert (
        len([n for n in links(sandbox) if n.startswith("dl") and n != "dl0"]) == 2
    )  # db's + web's
    delete(sandbox, dockline_bin, "web", config).ok()
    delete(sandbox, dockline_bin, "db", db).ok()
    assert [n for n in links(sandbox) if n.startswith("dl") and n != "dl0"] == []
    assert store(sandbox) == []
    rules = sandbox.sh("iptables-save -t nat; nft list ruleset").stdout
    assert "DL-" not in rules and "dl-" not in rules
    registry = sandbox.sh(names_registry.cat("net1")).stdout
    assert "web" not in registry and '"db' not in registry
    hosts = sandbox.sh("cat /etc/netns/web/hosts 2>/dev/null || true").stdout
    assert "dockline-link" not in hosts


def test_crash_hook_is_out_of_a_runtimes_reach(sandbox, dockline_bin):
    """The executables runtimes get ignore DOCKLINE_CRASH_AT, with or
    without the zygote: only `dockline install --test-hooks` obeys it."""
    for extra in ({}, {"DOCKLINE_NO_ZYGOTE": "1"}):
        name = f"web{len(extra)}"
        run = add(
            sandbox,
            dockline_bin,
            name,
            conf(),
            extra_env=dict(extra, DOCKLINE_CRASH_AT="delete veth"),
        )
        assert run.code == 0, run.stdout + run.stderr

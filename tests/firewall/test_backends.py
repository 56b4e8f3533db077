"""The firewall backends (masquerade and portmap, nftables and iptables)
through the conflist a runtime runs (bridge + host-local + portmap):

- ADD and DEL list no table: nft and the iptables tools are wrapped to
  log every run, and an ADD or DEL among other containers runs no nft and
  no iptables-save (nftables: no process at all; iptables:
  iptables-restore only);
- DEL with the netns gone, and again (idempotent), and after the rules
  were removed by hand, succeeds and leaves nothing of the container
  (records included) while the other containers keep theirs;
- GC with a netns gone removes exactly the attachments not listed;
- CHECK sees an element removed by hand;
- the nftables layout is constant: ADD of a second container adds
  elements, not rules.
"""

import json

import pytest
from helpers.paths import REPO, VENV_PYTHON

CONFLIST = json.loads((REPO / "conf" / "30-dockline-portmap.conflist").read_text())
TRACE = "/var/lib/cni/trace.log"

WRAPPER = """#!/bin/bash
echo "$(basename "$0") $*" >> {log}
exec -a "$0" {real} "$@"
"""


def setup(sb, dockline_bin, backend):
    conf = json.loads(json.dumps(CONFLIST))
    conf["plugins"][1]["backend"] = backend
    conf["plugins"][0]["ipMasqBackend"] = backend
    sb.run(["sh", "-c", "cat > /etc/cni/net.d/30.conflist"], input=json.dumps(conf), check=True)
    return str(dockline_bin)


def trace(sb):
    """Wrap nft and the xtables binary (every iptables tool) so each run is
    logged; bind mounts in the sandbox's own mount namespace."""
    sb.sh("mkdir -p /var/lib/cni/wrap")
    for tool in ("nft", "xtables-nft-multi"):
        real = f"/var/lib/cni/wrap/{tool}.real"
        sb.sh(f"touch {real} && mount --bind $(command -v {tool}) {real}")
        wrapper = f"/var/lib/cni/wrap/{tool}"
        sb.run(
            ["sh", "-c", f"cat > {wrapper} && chmod 755 {wrapper}"],
            input=WRAPPER.format(log=TRACE, real=real),
            check=True,
        )
        sb.sh(f"mount --bind {wrapper} $(command -v {tool})")
    sb.sh(f": > {TRACE}")


def runs(sb):
    out = sb.sh(f"cat {TRACE}; : > {TRACE}").stdout.splitlines()
    return [line.split()[0] for line in out if line.strip()]


def cni(sb, cni_path, command, name, port=None):
    cap = {"portMappings": [{"hostPort": port, "containerPort": 80}]} if port else {}
    return sb.run(
        [
            str(REPO / "scripts" / "cni"),
            command,
            "dockline",
            f"/run/netns/{name}",
            "--id",
            name,
            "--cap-args",
            json.dumps(cap),
        ],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": cni_path},
    )


def add(sb, cni_path, name, port):
    sb.sh(f"ip netns add {name}")
    run = cni(sb, cni_path, "add", name, port)
    assert run.returncode == 0, run.stdout + run.stderr
    return [ip["address"].split("/")[0] for ip in json.loads(run.stdout)["ips"]]


def state(sb):
    return sb.sh(
        "iptables-save -t nat; ip6tables-save -t nat; nft list ruleset;"
        "ls /var/lib/cni/dockline/firewall/*/ 2>/dev/null; true"
    ).stdout


def tag(name):
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'lib')!r})\n"
        "from dockline.cni.attachment import Attachment\n"
        f"print(Attachment('dockline', {name!r}, 'eth0').tag)"
    )
    return code


def tag_of(sb, name):
    return sb.run([str(VENV_PYTHON), "-I", "-c", tag(name)], check=True).stdout.strip()


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_del_lists_no_table_and_works_with_the_netns_gone(sandbox, dockline_bin, backend):
    cni_path = setup(sandbox, dockline_bin, backend)
    addrs = {name: add(sandbox, cni_path, name, port) for name, port in (("a", 8081), ("b", 8082))}
    trace(sandbox)
    addrs["c"] = add(sandbox, cni_path, "c", 8083)
    added = runs(sandbox)
    if backend == "nftables":
        assert added == [], added  # constant rules exist: elements only, over netlink
    else:  # iptables has no unique keys: claimed in files, not read from the table
        assert "iptables-restore" in added and "iptables-save" not in added, added
    sandbox.sh("ip netns del b")
    assert cni(sandbox, cni_path, "del", "b", 8082).returncode == 0
    deleted = runs(sandbox)
    assert "nft" not in deleted and "iptables-save" not in deleted, deleted
    assert "ip6tables-save" not in deleted, deleted
    if backend == "nftables":
        assert deleted == []
    else:  # the wrapper works: the recorded rules went through iptables-restore
        assert "iptables-restore" in deleted, deleted
    after = state(sandbox)
    for gone in addrs["b"]:
        assert gone not in after
    assert "8082" not in after and tag_of(sandbox, "b") not in after
    for kept in ("a", "c"):
        assert all(a in after for a in addrs[kept])
        assert tag_of(sandbox, kept) in after  # their records
    assert "8081" in after and "8083" in after
    # DEL again: nothing left to remove, still a success, still no listing
    runs(sandbox)  # (the checks above listed the tables themselves)
    assert cni(sandbox, cni_path, "del", "b", 8082).returncode == 0
    again = runs(sandbox)
    assert "iptables-save" not in again and "ip6tables-save" not in again, again
    # b's host port is free again; c's is still taken
    add(sandbox, cni_path, "d", 8082)
    sandbox.sh("ip netns add e")
    run = cni(sandbox, cni_path, "add", "e", 8083)
    assert run.returncode != 0 and json.loads(run.stdout)["code"] == 100


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_del_after_rules_removed_by_hand(sandbox, dockline_bin, backend):
    cni_path = setup(sandbox, dockline_bin, backend)
    add(sandbox, cni_path, "a", 8081)
    b = add(sandbox, cni_path, "b", 8082)
    if backend == "nftables":
        # part of b's state gone (its DNAT elements and masquerade set)
        sandbox.sh(
            "nft flush map inet dockline_portmap any4; nft flush map inet dockline_masq src4"
        )
    else:
        sandbox.sh("iptables -t nat -F DOCKLINE-HOSTPORTS; iptables -t nat -F POSTROUTING")
    sandbox.sh("ip netns del b")
    run = cni(sandbox, cni_path, "del", "b", 8082)
    assert run.returncode == 0, run.stdout + run.stderr
    after = state(sandbox)
    assert b[0] not in after and b[1] not in after and "8082" not in after
    assert tag_of(sandbox, "b") not in after
    assert "8081" in after  # a's claim is still there
    if backend == "nftables":
        # everything gone by hand: DEL of a still succeeds
        sandbox.sh("nft delete table inet dockline_portmap; nft delete table inet dockline_masq")
        assert cni(sandbox, cni_path, "del", "a", 8081).returncode == 0
        assert tag_of(sandbox, "a") not in state(sandbox)


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_gc_with_a_netns_gone(sandbox, dockline_bin, backend):
    cni_path = setup(sandbox, dockline_bin, backend)
    a = add(sandbox, cni_path, "a", 8081)
    b = add(sandbox, cni_path, "b", 8082)
    sandbox.sh("ip netns del b; rm /var/lib/cni/results/dockline-b-eth0")
    run = cni(sandbox, cni_path, "gc", "a")
    assert run.returncode == 0, run.stdout + run.stderr
    after = state(sandbox)
    assert b[0] not in after and "8082" not in after and tag_of(sandbox, "b") not in after
    assert a[0] in after and "8081" in after and tag_of(sandbox, "a") in after
    add(sandbox, cni_path, "c", 8082)  # b's port is free again


def test_check_sees_elements_removed_by_hand(sandbox, dockline_bin):
    cni_path = setup(sandbox, dockline_bin, "nftables")
    add(sandbox, cni_path, "a", 8081)
    assert cni(sandbox, cni_path, "check", "a", 8081).returncode == 0
    sandbox.sh("nft flush map inet dockline_portmap any6")
    run = cni(sandbox, cni_path, "check", "a", 8081)
    assert run.returncode != 0 and json.loads(run.stdout)["code"] == 101
    # a base rule removed by hand: CHECK notices, the next ADD puts it back
    cni(sandbox, cni_path, "del", "a", 8081)
    add(sandbox, cni_path, "b", 8082)
    sandbox.sh("nft flush chain inet dockline_portmap prerouting")
    run = cni(sandbox, cni_path, "check", "b", 8082)
    assert run.returncode != 0 and json.loads(run.stdout)["code"] == 101
    add(sandbox, cni_path, "c", 8083)
    assert "@any4" in sandbox.sh("nft list chain inet dockline_portmap prerouting").stdout


def test_masquerade_check_and_inventory(sandbox, dockline_bin):
    cni_path = setup(sandbox, dockline_bin, "nftables")
    addrs = add(sandbox, cni_path, "a", 8081)
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'lib')!r})\n"
        "from dockline.cni.attachment import Attachment\n"
        "from dockline.firewall import masquerade, inventory\n"
        "att = Attachment('dockline', 'a', 'eth0')\n"
        f"ips = [('{addrs[0]}/24', '10.89.0.0/24'), ('{addrs[1]}/64', 'fd89::/64')]\n"
        "print(masquerade.check('nftables', att, ips))\n"
        "objs, ports, problems = inventory.objects('dockline')\n"
        "print(sorted(ports[att.tag]), problems, len(objs[att.tag]) > 3)\n"
    )
    out = sandbox.run([str(VENV_PYTHON), "-I", "-c", code], check=True).stdout.splitlines()
    assert out == ["None", "['8081/tcp'] [] True"]
    assert cni(sandbox, cni_path, "check", "a", 8081).returncode == 0
    sandbox.sh("nft flush map inet dockline_masq src6")
    out = sandbox.run([str(VENV_PYTHON), "-I", "-c", code], check=True).stdout
    assert "src6" in out.splitlines()[0]
    # bridge CHECK (first in the conflist) says so
    run = cni(sandbox, cni_path, "check", "a", 8081)
    assert run.returncode != 0 and "masquerade" in json.loads(run.stdout)["msg"]


def test_del_of_a_container_added_before_records(sandbox, dockline_bin):
    """A container published by the layout before records (masquerade: a
    rule per address in chain postrouting; portmap: a claim jumping to
    c-<tag>, no comments) is still removed by DEL and GC, while containers
    added since keep theirs."""
    cni_path = setup(sandbox, dockline_bin, "nftables")
    add(sandbox, cni_path, "new", 8081)
    old, gone = tag_of(sandbox, "old"), tag_of(sandbox, "gone")
    script = [
        "add chain inet dockline_masq postrouting { type nat hook postrouting priority 100; }"
    ]
    for t, ip, port in ((old, "10.89.0.77", 9001), (gone, "10.89.0.78", 9002)):
        script += [
            f'add rule inet dockline_masq postrouting ip saddr {ip} masquerade comment "dl-{t}"',
            f"add chain inet dockline_portmap c-{t}",
            f"add rule inet dockline_portmap c-{t} tcp dport {port} dnat ip to {ip}:80",
            f"add element inet dockline_portmap ports {{ tcp . {port} : jump c-{t} }}",
        ]
    sandbox.run(["nft", "-f", "-"], input="\n".join(script) + "\n", check=True)
    sandbox.sh("ip netns add old")
    assert cni(sandbox, cni_path, "del", "old", 9001).returncode == 0
    after = sandbox.sh("nft list ruleset").stdout
    assert old not in after and "10.89.0.77" not in after and "9001" not in after
    assert gone in after and "8081" in after
    run = cni(sandbox, cni_path, "gc", "new")
    assert run.returncode == 0, run.stdout + run.stderr
    after = sandbox.sh("nft list ruleset").stdout
    assert "10.89.0.78" not in after and f"dl-{gone}" not in after and "8081" in after


def test_a_killed_writers_record_file_goes_with_del_and_gc(sandbox, dockline_bin):
    """A writer killed between writing a record's temporary file and
    renaming it leaves `<record>.tmp`: DEL removes it with the record, and
    GC finds one even without its record, both without listing on DEL."""
    cni_path = setup(sandbox, dockline_bin, "nftables")
    add(sandbox, cni_path, "a", 8081)
    add(sandbox, cni_path, "b", 8082)
    for name in ("a", "b"):
        sandbox.sh(
            f"echo torn > /var/lib/cni/dockline/firewall/portmap/{tag_of(sandbox, name)}.tmp"
        )
    # c's first write was cut short: only the temporary file exists
    c = tag_of(sandbox, "a")[:-8] + "00000000"
    sandbox.sh(f"echo torn > /var/lib/cni/dockline/firewall/portmap/{c}.tmp")
    sandbox.sh("ip netns del a")
    assert cni(sandbox, cni_path, "del", "a", 8081).returncode == 0
    left = sandbox.sh("ls /var/lib/cni/dockline/firewall/portmap/").stdout
    assert tag_of(sandbox, "a") not in left and tag_of(sandbox, "b") in left
    run = cni(sandbox, cni_path, "gc", "b")
    assert run.returncode == 0, run.stdout + run.stderr
    left = sandbox.sh("ls /var/lib/cni/dockline/firewall/*/").stdout
    assert c not in left, left
    assert f"{tag_of(sandbox, 'b')}.tmp" in left  # b is valid: its files are its own

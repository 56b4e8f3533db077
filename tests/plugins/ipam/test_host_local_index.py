"""host-local's side index (lib/dockline/ipam/disk.py): ADD, CHECK and DEL
of an attachment dockline added read none of the other reservation files,
whatever their number; every hint is checked against the reservation
file before it is acted on; a missing, stale or refused index only costs
reads, never a wrong release; the store stays the reference's.

"Read" is seen through atime: the sandbox's tmpfs is relatime, so a file
whose atime is set far in the past gets a new one when it is next read.
"""

from __future__ import annotations

import json
import os

from helpers import ipam as H
from helpers.cni import call_plugin
from helpers.dirwatch import DirWatch
from helpers.paths import REFERENCE_BIN

STORE = "/var/lib/cni/networks/net1"
INDEX = "/run/dockline/ipam"
OLD = 946684800  # 2000-01-01


def _run(sb, binary, command, conf, cid="c1", ifname="eth0", args=None):
    return call_plugin(sb, binary, command, conf, containerid=cid, ifname=ifname, args=args)


def _path(sb, path: str) -> str:
    return f"/proc/{sb.pid}/root{path}"


def _age_store(sb) -> list[str]:
    """Every reservation file gets an old atime; returns their names."""
    names = [n for n in os.listdir(_path(sb, STORE)) if n[0].isdigit() or ":" in n]
    for name in names:
        p = _path(sb, f"{STORE}/{name}")
        os.utime(p, (OLD, os.stat(p).st_mtime))
    return names


def _read_since(sb, names: list[str]) -> list[str]:
    return sorted(
        n
        for n in names
        if os.path.exists(_path(sb, f"{STORE}/{n}"))
        and os.stat(_path(sb, f"{STORE}/{n}")).st_atime > OLD
    )


def _index_files(sb) -> list[str]:
    root = _path(sb, INDEX)
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out += [os.path.join(dirpath[len(root) :], f) for f in files]
    return sorted(out)


def _fill(sb, binary, conf, count: int, prefix: str = "bg") -> None:
    for i in range(count):
        _run(sb, binary, "ADD", conf, f"{prefix}{i}").ok()


def test_add_check_del_read_no_other_reservation(sandbox, dockline_bin):
    hl = dockline_bin / "host-local"
    conf = H.hl_conf(ranges=[[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00:1:2::/64"}]])
    _fill(sandbox, hl, conf, 20)
    others = _age_store(sandbox)
    assert len(others) == 40
    ips = [i["address"] for i in _run(sandbox, hl, "ADD", conf, "c1").ok().json["ips"]]
    _run(sandbox, hl, "CHECK", conf, "c1").ok()
    assert _read_since(sandbox, others) == []
    _run(sandbox, hl, "DEL", conf, "c1").ok()
    assert _read_since(sandbox, others) == []
    left = set(os.listdir(_path(sandbox, STORE)))
    assert not {ip.split("/")[0] for ip in ips} & left
    assert len([n for n in left if n in others]) == 40
    # the index knows the 20 others (one a- file and two i- files each)
    assert len([f for f in _index_files(sandbox) if "/a-" in f or "/i-" in f]) == 60


def _index_dir(sb) -> str:
    (net,) = os.listdir(_path(sb, INDEX))
    return _path(sb, f"{INDEX}/{net}")


def test_add_check_del_list_no_directory_when_only_dockline_wrote(sandbox, dockline_bin):
    """The sync token: nobody else wrote since dockline's last call, so ADD,
    CHECK and DEL list neither the store nor the index."""
    hl = dockline_bin / "host-local"
    conf = H.hl_conf()
    _fill(sandbox, hl, conf, 10)
    with DirWatch(_path(sandbox, STORE), _index_dir(sandbox)) as watch:
        for command in ("ADD", "CHECK", "DEL", "ADD"):
            _run(sandbox, hl, command, conf, "c1").ok()
            assert watch.listed() == [], command
        # GC reads everything; the next ADD lists the store once more, then not
        gc = dict(conf, cniVersion="1.1.0")
        gc["cni.dev/valid-attachments"] = [
            {"containerID": c, "ifname": "eth0"} for c in ["c1"] + [f"bg{i}" for i in range(10)]
        ]
        _run(sandbox, hl, "GC", gc, cid=None).ok()
        assert watch.listed() != []
        _run(sandbox, hl, "ADD", conf, "c2").ok()
        assert _path(sandbox, STORE) in watch.listed()
        _run(sandbox, hl, "ADD", conf, "c3").ok()
        assert watch.listed() == []


def test_a_foreign_reservation_is_seen_after_a_synced_call(sandbox, dockline_bin):
    """The reference reserves for r1 right after dockline's calls left the
    store in sync: dockline's ADD of r1 sees it (a duplicate, refused), and
    its DEL of r1 frees it."""
    hl, ref = dockline_bin / "host-local", REFERENCE_BIN / "host-local"
    conf = H.hl_conf()
    _fill(sandbox, hl, conf, 3)
    _run(sandbox, ref, "ADD", conf, "r1").ok()
    dup = _run(sandbox, hl, "ADD", conf, "r1")
    assert dup.code != 0 and "duplicate" in dup.stdout
    _run(sandbox, hl, "ADD", conf, "d1").ok()
    _run(sandbox, ref, "ADD", conf, "r2", args="IP=10.1.2.200").ok()
    dup = _run(sandbox, hl, "ADD", conf, "r2")
    assert dup.code != 0 and "duplicate" in dup.stdout
    for cid in ("r1", "r2", "d1", "bg0", "bg1", "bg2"):
        _run(sandbox, hl, "DEL", conf, cid).ok()
    assert H.snapshot(sandbox).reservations("networks/net1") == {}


def test_a_hand_made_reservation_is_seen_even_with_the_mtime_put_back(sandbox, dockline_bin):
    """A writer that leaves the directory's mtime as it was (a write within
    the same clock tick looks like that) is still seen: the token also
    holds the ctime and last_reserved_ip's bytes."""
    hl = dockline_bin / "host-local"
    conf = H.hl_conf()
    _fill(sandbox, hl, conf, 2)
    store = _path(sandbox, STORE)
    st = os.stat(store)
    with open(f"{store}/10.1.2.77", "w") as f:
        f.write("h1\r\neth0")
    os.utime(store, ns=(st.st_atime_ns, st.st_mtime_ns))
    dup = _run(sandbox, hl, "ADD", conf, "h1")
    assert dup.code != 0 and "duplicate" in dup.stdout


def test_store_is_the_reference_s_and_the_reference_still_works_on_it(sandbox, dockline_bin):
    """Nothing of the index is in the store directory; the reference
    releases what dockline reserved and the other way round."""
    hl, ref = dockline_bin / "host-local", REFERENCE_BIN / "host-local"
    conf = H.hl_conf()
    _run(sandbox, hl, "ADD", conf, "d1").ok()
    assert sorted(os.listdir(_path(sandbox, STORE))) == ["10.1.2.2", "last_reserved_ip.0", "lock"]
    _run(sandbox, ref, "ADD", conf, "r1").ok()
    _run(sandbox, ref, "DEL", conf, "d1").ok()
    _run(sandbox, hl, "DEL", conf, "r1").ok()  # not indexed: found by reading the store
    assert sorted(os.listdir(_path(sandbox, STORE))) == ["last_reserved_ip.0", "lock"]


def test_stale_hint_never_releases_another_container_s_address(sandbox, dockline_bin):
    """dockline reserved 10.1.2.2 for d1; the reference released it and
    gave it to r1: d1's index entry now names r1's address.  dockline's
    DEL of d1 must leave it, and its DEL of r1 must free it."""
    hl, ref = dockline_bin / "host-local", REFERENCE_BIN / "host-local"
    conf = H.hl_conf()
    assert _run(sandbox, hl, "ADD", conf, "d1").ok().json["ips"][0]["address"] == "10.1.2.2/24"
    _run(sandbox, ref, "DEL", conf, "d1").ok()
    got = _run(sandbox, ref, "ADD", conf, "r1", args="IP=10.1.2.2").ok().json
    assert got["ips"][0]["address"] == "10.1.2.2/24"
    _run(sandbox, hl, "DEL", conf, "d1").ok()
    assert H.snapshot(sandbox).reservations("networks/net1") == {"10.1.2.2": b"r1\r\neth0"}
    # the stale hint is gone with d1's DEL
    assert not [f for f in _index_files(sandbox) if "/a-" in f]
    _run(sandbox, hl, "CHECK", conf, "r1").ok()
    # a duplicate of r1 is refused although dockline never reserved it
    assert _run(sandbox, hl, "ADD", conf, "r1").code != 0
    _run(sandbox, hl, "DEL", conf, "r1").ok()
    assert H.snapshot(sandbox).reservations("networks/net1") == {}


def test_duplicate_add_refused_from_the_index(sandbox, dockline_bin):
    hl = dockline_bin / "host-local"
    conf = H.hl_conf()
    _run(sandbox, hl, "ADD", conf, "c1").ok()
    dup = _run(sandbox, hl, "ADD", conf, "c1")
    assert dup.code != 0 and "duplicate" in dup.stdout
    assert H.snapshot(sandbox).reservations("networks/net1") == {"10.1.2.2": b"c1\r\neth0"}


def test_index_lost_or_refused_costs_only_reads(sandbox, dockline_bin):
    """Without the index (a reboot empties /run; a directory others may
    write is not used), DEL still frees every address and nothing is
    written through a planted symlink."""
    hl = dockline_bin / "host-local"
    conf = H.hl_conf()
    _fill(sandbox, hl, conf, 3)
    sandbox.sh(f"rm -rf {INDEX}")
    _run(sandbox, hl, "DEL", conf, "bg0").ok()
    sandbox.sh(
        f"rm -rf {INDEX}; mkdir -p /var/lib/cni/elsewhere; ln -s /var/lib/cni/elsewhere {INDEX}"
    )
    _run(sandbox, hl, "DEL", conf, "bg1").ok()
    _run(sandbox, hl, "ADD", conf, "c9").ok()
    assert os.listdir(_path(sandbox, "/var/lib/cni/elsewhere")) == []
    sandbox.sh(f"rm {INDEX}; mkdir -m 0777 {INDEX}")
    _run(sandbox, hl, "DEL", conf, "bg2").ok()
    _run(sandbox, hl, "DEL", conf, "c9").ok()
    assert os.listdir(_path(sandbox, INDEX)) == []
    assert H.snapshot(sandbox).reservations("networks/net1") == {}


def test_planted_index_entry_cannot_lead_out_of_the_store(sandbox, dockline_bin):
    """An a- file naming a path (or another container's address) releases
    nothing it should not: names are plain and every one is checked."""
    hl = dockline_bin / "host-local"
    conf = H.hl_conf()
    _run(sandbox, hl, "ADD", conf, "c1").ok()
    _run(sandbox, hl, "ADD", conf, "c2").ok()
    (entry,) = [f for f in _index_files(sandbox) if "/a-" in f and _owner(sandbox, f) == "c2"]
    sandbox.sh("mkdir -p /var/lib/cni/victim && echo keep > /var/lib/cni/victim/file")
    for ips in ('["../../victim/file"]', '["10.1.2.2"]'):
        doc = '{"id": "c2", "ifname": "eth0", "ips": ' + ips + "}"
        with open(_path(sandbox, INDEX + entry), "w") as f:
            f.write(doc)
        _run(sandbox, hl, "DEL", conf, "c2").ok()
    assert sandbox.sh("cat /var/lib/cni/victim/file").stdout.strip() == "keep"
    assert H.snapshot(sandbox).reservations("networks/net1") == {"10.1.2.2": b"c1\r\neth0"}


def _owner(sb, entry: str) -> str:
    with open(_path(sb, INDEX + entry)) as f:
        return json.load(f)["id"]


def test_gc_prunes_hints_that_no_longer_check_out(sandbox, dockline_bin):
    hl, ref = dockline_bin / "host-local", REFERENCE_BIN / "host-local"
    conf = H.hl_conf()
    _fill(sandbox, hl, conf, 3)
    _run(sandbox, ref, "DEL", conf, "bg0").ok()  # the reference leaves dockline's hints
    gc = dict(conf, cniVersion="1.1.0")
    gc["cni.dev/valid-attachments"] = [
        {"containerID": "bg1", "ifname": "eth0"},
        {"containerID": "bg2", "ifname": "eth0"},
    ]
    _run(sandbox, hl, "GC", gc, cid=None).ok()
    assert sorted(_owner(sandbox, f) for f in _index_files(sandbox) if "/a-" in f) == ["bg1", "bg2"]
    assert len([f for f in _index_files(sandbox) if "/i-" in f]) == 2

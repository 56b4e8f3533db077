"""The disk store and allocator on a private temporary directory: crash
leftovers, rollback, round-robin order."""

import ipaddress
import os

import pytest
from dockline.cni.errors import CniError
from dockline.ipam.allocator import Allocator, candidates
from dockline.ipam.disk import DiskStore
from dockline.ipam.ranges import RangeSet


def rangeset(*ranges):
    return RangeSet.from_config(list(ranges), 0)


@pytest.fixture
def store(tmp_path):
    return DiskStore("net1", str(tmp_path))


def files(store):
    return {
        name: open(os.path.join(store.dir, name), "rb").read()
        for name in sorted(os.listdir(store.dir))
    }


def test_reservation_file_format(store):
    Allocator(store, [rangeset({"subnet": "10.0.0.0/29"})]).allocate("cid", "eth0", [])
    assert files(store) == {
        "10.0.0.2": b"cid\r\neth0",
        "last_reserved_ip.0": b"10.0.0.2",
        "lock": b"",
    }


def test_empty_file_left_by_a_crashed_writer_is_reclaimed(store):
    os.makedirs(store.dir)
    for ip in ("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"):
        open(os.path.join(store.dir, ip), "wb").close()
    got = Allocator(store, [rangeset({"subnet": "10.0.0.0/29"})]).allocate("cid", "eth0", [])
    assert str(got[0].ip) == "10.0.0.2"
    assert files(store)["10.0.0.2"] == b"cid\r\neth0"


def test_stray_temporary_file_is_not_a_reservation(store):
    os.makedirs(store.dir)
    open(os.path.join(store.dir, ".dockline-tmp-999"), "wb").write(b"x\r\neth0")
    assert list(store.reservations()) == []


def test_failed_add_restores_everything(store):
    sets = [rangeset({"subnet": "10.0.0.0/29"}), rangeset({"subnet": "10.1.0.0/30"})]
    alloc = Allocator(store, sets)
    alloc.allocate("other", "eth0", [])  # fills the /30 (one usable address)
    before = files(store)
    with pytest.raises(CniError) as err:
        alloc.allocate("cid", "eth0", [])
    assert err.value.code == 11
    assert files(store) == before


def test_round_robin_wraps_over_ranges_and_skips_gateways():
    rs = rangeset({"subnet": "10.0.0.0/29", "rangeStart": "10.0.0.5"}, {"subnet": "10.0.1.0/30"})
    order = [str(ip) for ip, _ in candidates(rs, ipaddress.ip_address("10.0.0.6"))]
    assert order == ["10.0.1.2", "10.0.0.5", "10.0.0.6"]
    order = [str(ip) for ip, _ in candidates(rs, None)]
    assert order == ["10.0.0.5", "10.0.0.6", "10.0.1.2"]


def test_top_of_address_space_does_not_overflow():
    rs = rangeset({"subnet": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124"})
    order = list(candidates(rs, None))
    assert str(order[-1][0]) == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"


def test_release_by_id_matches_legacy_id_only_records(store):
    os.makedirs(store.dir)
    open(os.path.join(store.dir, "10.0.0.9"), "wb").write(b"cid")
    open(os.path.join(store.dir, "10.0.0.8"), "wb").write(b"cid\r\neth1")
    assert Allocator(store, []).release("cid", "eth0") == ["10.0.0.9"]
    assert sorted(files(store)) == ["10.0.0.8", "lock"]


# ------------------------------------------------------------------ planted objects
def _held(store):
    os.makedirs(store.dir, exist_ok=True)
    return store


def test_fifo_and_symlink_reservations_are_not_read(store, tmp_path):
    _held(store)
    os.mkfifo(os.path.join(store.dir, "10.0.0.2"))
    target = tmp_path / "target"
    target.write_bytes(b"cid\r\neth0")
    os.symlink(target, os.path.join(store.dir, "10.0.0.3"))
    assert list(store.reservations()) == []
    got = Allocator(store, [rangeset({"subnet": "10.0.0.0/29"})]).allocate("cid", "eth0", [])
    assert str(got[0].ip) == "10.0.0.4"
    assert Allocator(store, []).release("cid", "eth0") == ["10.0.0.4"]
    assert (
        os.path.islink(os.path.join(store.dir, "10.0.0.3"))
        and target.read_bytes() == b"cid\r\neth0"
    )


def test_failed_request_leaves_no_directory(tmp_path):
    store = DiskStore("net1", str(tmp_path / "data"))
    alloc = Allocator(store, [rangeset({"subnet": "10.0.0.0/29"})])
    for requested in (["10.9.9.9"], ["10.0.0.1"], ["10.0.0.2", "10.0.0.3"]):
        with pytest.raises(CniError) as err:
            alloc.allocate("cid", "eth0", [ipaddress.ip_address(ip) for ip in requested])
        assert err.value.code == 7
    assert not (tmp_path / "data").exists()


def test_untrusted_symlink_on_the_path_is_refused(tmp_path):
    from dockline.ipam.disk import UnsafeStore

    pub = tmp_path / "pub"
    pub.mkdir()
    pub.chmod(0o1777)
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", pub / "ln")
    store = DiskStore("net1", str(pub / "ln"))
    with pytest.raises(UnsafeStore):
        Allocator(store, [rangeset({"subnet": "10.0.0.0/29"})]).allocate("cid", "eth0", [])
    assert list((tmp_path / "real").iterdir()) == []


def test_no_temporary_file_is_left(store, tmp_path):
    _held(store)
    Allocator(store, [rangeset({"subnet": "10.0.0.0/29"})]).allocate("a", "eth0", [])
    assert sorted(os.listdir(store.dir)) == ["10.0.0.2", "last_reserved_ip.0", "lock"]

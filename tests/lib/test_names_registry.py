"""The names registry on a private temporary directory: one file per
entry and per index fact, lookups that read only what they need, index
files that a killed writer left are never believed, and the previous
one-document format converted on first use."""

import json
import os

import pytest
from dockline.names import registry as R
from dockline.names.registry import Registry


def entry(names=(), pod=None, links=(), scope="", ips=("10.0.0.2",)):
    e = {
        "scope": scope,
        "names": list(names),
        "ips": list(ips),
        "hosts": None,
        "tag": "0123456789abcdef",
        "links": [[n, n] for n in links],
    }
    if pod:
        e["pod"] = pod
    return e


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path)


def registry_files(data_dir):
    root = os.path.join(data_dir, "net1", R.DIR)
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files]
    return sorted(out)


def test_lookups_answer_from_the_index(data_dir):
    with Registry("net1", data_dir) as reg:
        reg.put("db:eth0", entry(names=["db"], ips=["10.0.0.2"]))
        reg.put("web:eth0", entry(names=["web"], links=["db"], ips=["10.0.0.3"]))
        reg.put("p1:eth0", entry(pod="cache", ips=["10.0.0.4"]))
        reg.put("p2:eth0", entry(pod="cache", ips=["10.0.0.5"]))
    with Registry("net1", data_dir) as reg:
        assert reg.explicit_owner("", "db") == "db:eth0"
        assert reg.explicit_owner("", "db", skip="db:eth0") is None
        assert reg.explicit_owner("other", "db") is None
        assert reg.owner_of("cache") == "p2:eth0"  # the latest registration
        assert reg.dependants("", ["db"]) == ["web:eth0"]
        assert reg.dependants("", ["web"]) == []
        assert reg.entries["web:eth0"]["ips"] == ["10.0.0.3"]
        assert reg.seq == 4
    files = registry_files(data_dir)
    assert len([f for f in files if f.startswith("e-")]) == 4
    assert len([f for f in files if f.startswith("n-")]) == 2
    assert len([f for f in files if f.startswith("p-")]) == 2
    assert len([f for f in files if f.startswith("l-")]) == 1


def test_a_call_reads_only_its_entries(data_dir, monkeypatch):
    with Registry("net1", data_dir) as reg:
        for i in range(50):
            reg.put(f"c{i}:eth0", entry(names=[f"c{i}"], ips=[f"10.0.1.{i}"]))
        reg.put("db:eth0", entry(names=["db"]))
    opened = []
    real = Registry.read_entry

    def counting(self, key):
        opened.append(key)
        return real(self, key)

    monkeypatch.setattr(Registry, "read_entry", counting)
    with Registry("net1", data_dir) as reg:
        assert reg.owner_of("db") == "db:eth0"
        reg.put("web:eth0", entry(names=["web"], links=["db"]))
        assert reg.dependants("", ["web"]) == []
    assert sorted(set(opened)) == ["db:eth0", "web:eth0"]


def test_changes_in_place_and_removals_are_saved_with_their_index(data_dir):
    with Registry("net1", data_dir) as reg:
        reg.put("db:eth0", entry(names=["db", "database"]))
        reg.put("web:eth0", entry(names=["web"], links=["db"]))
    with Registry("net1", data_dir) as reg:
        reg.entries["web:eth0"]["isolation"] = {"bridge": "br0", "elements": []}
        db = reg.entries["db:eth0"]
        db["names"] = ["db"]  # renamed in place: "database" is free
        reg.put("db:eth0", db)
    with Registry("net1", data_dir) as reg:
        assert "isolation" in reg.entries["web:eth0"]
        assert reg.explicit_owner("", "database") is None
        assert reg.remove("web:eth0") is not None
    with Registry("net1", data_dir) as reg:
        assert reg.dependants("", ["db"]) == []
        assert list(reg.entries) == ["db:eth0"]
    files = registry_files(data_dir)
    assert [f for f in files if f.startswith("l-")] == []
    assert len([f for f in files if f.startswith("n-")]) == 1


def test_index_files_that_no_longer_check_out_are_not_believed(data_dir):
    """A writer killed between its index files and its entry left them:
    they name an entry that does not hold the name."""
    with Registry("net1", data_dir) as reg:
        reg.put("db:eth0", entry(names=["db"]))
    root = os.path.join(data_dir, "net1", R.DIR)
    (n_file,) = [f for f in os.listdir(root) if f.startswith("n-")]
    with open(os.path.join(root, n_file), "w") as f:
        json.dump("ghost:eth0", f)
    l_dir = "l-" + R._digest("", "db")
    os.mkdir(os.path.join(root, l_dir))
    with open(os.path.join(root, l_dir, R._digest("db:eth0")), "w") as f:
        json.dump("db:eth0", f)  # db does not link to db
    with Registry("net1", data_dir) as reg:
        assert reg.explicit_owner("", "db") is None  # ghost has no entry
        assert reg.dependants("", ["db"]) == []
        reg.put("db2:eth0", entry(names=["db"]))
    with Registry("net1", data_dir) as reg:
        assert reg.explicit_owner("", "db") == "db2:eth0"


def test_the_previous_format_is_converted_once(data_dir):
    os.makedirs(os.path.join(data_dir, "net1"))
    legacy = os.path.join(data_dir, "net1", R.FILE)
    doc = {
        "version": 2,
        "seq": 9,
        "attachments": {
            "db:eth0": dict(entry(names=["db"]), seq=8),
            "web:eth0": dict(entry(names=["web"], links=["db"]), seq=9),
            "bad": "not an entry",
        },
    }
    with open(legacy, "w") as f:
        json.dump(doc, f)
    reg = Registry("net1", data_dir)
    assert reg.exists()
    with reg:
        assert reg.owner_of("db") == "db:eth0"
        assert reg.dependants("", ["db"]) == ["web:eth0"]
        assert reg.seq == 9
    assert not os.path.exists(legacy)
    with Registry("net1", data_dir) as reg:
        assert sorted(reg.entries) == ["db:eth0", "web:eth0"]


def test_index_files_are_not_the_reference_s_reservations(data_dir):
    """host-local (the reference) reads every file below its directory for
    'containerID\\r\\nifname': no registry file may hold that."""
    with Registry("net1", data_dir) as reg:
        reg.put("db:eth0", entry(names=["db"], pod="db", links=["web"]))
    root = os.path.join(data_dir, "net1", R.DIR)
    for name in registry_files(data_dir):
        with open(os.path.join(root, name), "rb") as f:
            text = f.read().strip()
        assert text not in (b"db\r\neth0", b"db"), name

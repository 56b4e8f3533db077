"""Hostile hosts files, names and locks against the links code, in a private
sandbox with real files: nothing outside the rule is ever opened for
writing, a refused ADD creates nothing at all (not even the bridge), and
a container holding a lock on its own hosts file blocks nobody."""

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from helpers import registry
from helpers.links import cni, err, ok, setup
from helpers.paths import VENV_PYTHON


@pytest.fixture
def rundir():
    """Where a runtime would keep a container's hosts file (outside /etc
    and CNI's state); removed after the test."""
    path = tempfile.mkdtemp(prefix="dockline-linksec-")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def flocked(sb, path):
    """A process in the sandbox holding an exclusive flock on ``path``
    (the holder itself, so killing it frees the lock)."""
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        sb.nsenter() + [str(VENV_PYTHON), "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def nothing_created(sb):
    """After a refused first ADD: no bridge, no veth, no reservation, no
    registry, no netns hosts file."""
    links = sb.sh("ip -br link", check=False).stdout
    assert "dockline0" not in links and "veth" not in links, links
    assert sb.sh("ls -A /var/lib/cni/networks 2>/dev/null", check=False).stdout.strip() == ""
    assert sb.sh("ls -A /etc/netns/web 2>/dev/null", check=False).stdout.strip() == ""
    assert "eth0" not in sb.sh("ip -n web -br link").stdout


def refused(sb, cap, timeout=20):
    t0 = time.monotonic()
    e = err(cni(sb, "add", "web", cap=cap))
    assert time.monotonic() - t0 < timeout
    assert e["code"] == 7, e
    nothing_created(sb)
    return e


def test_hosts_file_that_is_a_symlink_is_refused_before_anything_exists(
    sandbox, dockline_bin, rundir
):
    setup(sandbox)
    sandbox.sh("ip netns add web")
    (rundir / "precious").write_text("1.2.3.4 precious\n")
    os.symlink(rundir / "precious", rundir / "web-hosts")
    e = refused(sandbox, {"links": ["db"], "hostsFile": str(rundir / "web-hosts")})
    assert "symlink" in e["msg"]
    assert (rundir / "precious").read_text() == "1.2.3.4 precious\n"


def test_hosts_file_under_a_symlinked_directory_is_refused(sandbox, dockline_bin, rundir):
    setup(sandbox)
    sandbox.sh("ip netns add web")
    (rundir / "real").mkdir()
    (rundir / "real" / "hosts").write_text("1.2.3.4 precious\n")
    os.symlink(rundir / "real", rundir / "link")
    e = refused(sandbox, {"links": ["db"], "hostsFile": str(rundir / "link" / "hosts")})
    assert "symlink" in e["msg"]
    assert (rundir / "real" / "hosts").read_text() == "1.2.3.4 precious\n"


def test_netns_hosts_directory_that_is_a_symlink_is_refused(sandbox, dockline_bin, rundir):
    """/etc/netns/web -> elsewhere: dockline must not create or edit a file
    through it."""
    setup(sandbox)
    sandbox.sh(f"ip netns add web; ln -s {rundir} /etc/netns/web")
    e = err(cni(sandbox, "add", "web", cap={"links": ["db"]}))
    assert e["code"] == 7 and "symlink" in e["msg"]
    assert list(rundir.iterdir()) == []


def test_fifo_as_hosts_file_does_not_hang_and_creates_nothing(sandbox, dockline_bin, rundir):
    setup(sandbox)
    sandbox.sh("ip netns add web")
    os.mkfifo(rundir / "web-hosts")
    e = refused(sandbox, {"links": ["db"], "hostsFile": str(rundir / "web-hosts")}, timeout=5)
    assert "regular file" in e["msg"]


def test_directory_and_hard_link_as_hosts_file_are_refused(sandbox, dockline_bin, rundir):
    setup(sandbox)
    sandbox.sh("ip netns add web")
    (rundir / "d-hosts").mkdir()
    e = refused(sandbox, {"links": ["db"], "hostsFile": str(rundir / "d-hosts")})
    assert "regular file" in e["msg"]
    (rundir / "secret").write_text("root:x:0:\n")
    os.link(rundir / "secret", rundir / "web-hosts")  # a permitted name for another file
    e = refused(sandbox, {"links": ["db"], "hostsFile": str(rundir / "web-hosts")})
    assert "hard links" in e["msg"]
    assert (rundir / "secret").read_text() == "root:x:0:\n"


def _digest(path):
    st = os.stat(path)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest(), st.st_mtime_ns, st.st_ino


@pytest.mark.parametrize(
    "path",
    [
        "/etc/shadow",
        "/etc/hosts",
        "/etc/ssh/ssh_known_hosts",
        "/proc/sys/kernel/core_pattern",
        "/proc/self/hosts",
        "/sys/kernel/hosts",
        "/dev/shm/x-hosts",
        "/root/.hosts",
        "/var/lib/cni/networks/dockline/hosts",
        "/var/lib/cni/results/dockline-web-hosts",
        "/etc/netns/web/../../shadow",
        "/etc/netns/web/../../hosts",
        "/tmp/../etc/hosts",
        "/tmp//x-hosts",
        "/tmp/x-hosts/",
        "/tmp/./x-hosts",
        "relative/hosts",
        "hosts",
        "",
        "/tmp/x\nhosts",
        "/tmp/x\rhosts",
        "/tmp/x\u2028-hosts",
        "/tmp/known_hosts",
        "/tmp/.rhosts",
    ],
)
def test_paths_outside_the_rule_are_refused(sandbox, dockline_bin, path):
    setup(sandbox)
    sandbox.sh("ip netns add web")
    watched = [p for p in ("/etc/shadow", "/etc/hosts") if os.path.exists(p)]
    before = [_digest(p) for p in watched]
    e = refused(sandbox, {"links": ["db"], "hostsFile": path})
    assert "hostsFile" in e["msg"] or "hosts file" in e["msg"]
    assert [_digest(p) for p in watched] == before


BAD_NAMES = [
    "a\rb",
    "a\x0bb",
    "a\x0cb",
    "a\u2028b",
    "a\u2029b",
    "a\x85b",
    "a\x1cb",
    "a\x1eb",
    "a\x7fb",
    "a\x01b",
    "a\u00e9b",
    "a\tb",
    "a b",
]


@pytest.mark.parametrize("where", ["alias", "podman-alias", "link", "link-alias", "pod"])
def test_names_with_line_breaks_or_controls_are_refused(sandbox, dockline_bin, where):
    setup(sandbox)
    sandbox.sh("ip netns add web")
    for bad in BAD_NAMES:
        cap = (
            {"aliases": [bad]}
            if where == "alias"
            else {"aliases": {"dockline": ["ok", bad]}}
            if where == "podman-alias"
            else {"links": [f"{bad}:x"]}
            if where == "link"
            else {"links": [{"Name": "db", "ALIAS": bad}]}
            if where == "link-alias"
            else {}
        )
        e = err(cni(sandbox, "add", "web", cap=cap, pod=bad if where == "pod" else None))
        # CNI_ARGS may be refused by the dispatcher already (code 4)
        assert e["code"] == 7 or (where == "pod" and e["code"] == 4), (bad, e)
        nothing_created(sandbox)


def test_user_lines_are_kept_byte_for_byte(sandbox, dockline_bin, rundir):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    hosts = rundir / "hosts"
    original = (
        b"127.0.0.1\tlocalhost\r\n10.9.9.9\tmine\rtricky\n"
        b"10.1.1.1 x\x0by\x0cz\xe2\x80\xa8w\n# a comment \xff\xfe\n"
    )
    hosts.write_bytes(original)
    inode = hosts.stat().st_ino
    db = ok(cni(sandbox, "add", "db", pod="db"))
    cap = {"links": ["db:dbapp"], "hostsFile": str(hosts)}
    ok(cni(sandbox, "add", "web", cap=cap))
    text = hosts.read_bytes()
    assert text.startswith(original)
    added = text[len(original) :].decode().splitlines()
    db_v4 = db["ips"][0]["address"].split("/")[0]
    assert added[0].startswith(f"{db_v4}\tdbapp db\t# dockline-link ") and len(added) == 2
    ok(cni(sandbox, "check", "web", cap=cap))
    ok(cni(sandbox, "del", "web", cap=cap))
    assert hosts.read_bytes() == original
    assert hosts.stat().st_ino == inode


def test_locked_hosts_file_blocks_nobody(sandbox, dockline_bin, rundir):
    """A container flocks its own hosts file (it is bind-mounted into it):
    ADD, DEL of others and its own DEL go on without waiting."""
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web; ip netns add other")
    hosts = rundir / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    ok(cni(sandbox, "add", "db", pod="db"))
    ok(cni(sandbox, "add", "other", pod="other", cap={"links": ["db"]}))
    with flocked(sandbox, hosts) as holder:
        cap = {"links": ["db:dbapp"], "hostsFile": str(hosts)}
        t0 = time.monotonic()
        ok(cni(sandbox, "add", "web", cap=cap))
        assert "dbapp db" in hosts.read_text()
        ok(cni(sandbox, "del", "other"))
        ok(cni(sandbox, "del", "web", cap=cap))
        assert time.monotonic() - t0 < 10
        assert "dockline-link" not in hosts.read_text()
        assert holder.poll() is None  # the lock was held throughout


def test_busy_edit_lock_is_try_again_on_add_and_skipped_on_del(sandbox, dockline_bin, rundir):
    """dockline's own (root-only) edit lock held by a stuck process: ADD
    answers 11 within the bounded wait and leaves nothing; DEL succeeds."""
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web; mkdir -p /var/lib/cni/dockline")
    ok(cni(sandbox, "add", "db", pod="db"))
    ok(cni(sandbox, "add", "web", pod="web", cap={"links": ["db"]}))
    with flocked(sandbox, "/var/lib/cni/dockline/hosts.lock"):
        sandbox.sh("ip netns add web2")
        t0 = time.monotonic()
        e = err(cni(sandbox, "add", "web2", cap={"links": ["db"]}))
        assert e["code"] == 11 and time.monotonic() - t0 < 15, e
        assert "eth0" not in sandbox.sh("ip -n web2 -br link").stdout
        assert "web2" not in sandbox.sh(registry.cat()).stdout
        t0 = time.monotonic()
        ok(cni(sandbox, "del", "web"))
        assert time.monotonic() - t0 < 15
        # skipped, not waited for: web's (now unregistered) line is still there
        assert "dockline-link" in sandbox.sh("cat /etc/netns/web/hosts").stdout
    ok(cni(sandbox, "add", "web2", cap={"links": ["db"]}))  # free again


def test_del_skips_a_hosts_file_swapped_for_a_symlink(sandbox, dockline_bin, rundir):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    hosts = rundir / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    ok(cni(sandbox, "add", "db", pod="db"))
    cap = {"links": ["db"], "hostsFile": str(hosts)}
    ok(cni(sandbox, "add", "web", cap=cap))
    precious = rundir / "precious"
    precious.write_text(hosts.read_text())
    hosts.unlink()
    os.symlink(precious, hosts)
    before = precious.read_bytes()
    ok(cni(sandbox, "del", "web", cap=cap))
    assert precious.read_bytes() == before  # the line stays: it is not ours to reach


def test_relative_data_dir_is_refused(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add web")
    import json

    conf = json.loads(sandbox.sh("cat /etc/cni/net.d/20.conflist").stdout)
    conf["plugins"][0]["ipam"]["dataDir"] = "relative/dir"
    sandbox.run(
        ["sh", "-c", "cat > /etc/cni/net.d/20.conflist"], input=json.dumps(conf), check=True
    )
    e = err(cni(sandbox, "add", "web", cap={"aliases": ["web"]}))
    assert e["code"] == 7
    assert "dockline0" not in sandbox.sh("ip -br link").stdout


def test_link_objects_with_go_field_names(sandbox, dockline_bin):
    """A Go runtime may marshal link objects with its field names."""
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    ok(cni(sandbox, "add", "db", pod="db"))
    ok(cni(sandbox, "add", "web", cap={"links": [{"Name": "db", "Alias": "dbapp"}]}))
    assert "\tdbapp db\t" in sandbox.sh("cat /etc/netns/web/hosts").stdout

"""Docker-style links on a dockline bridge: web reaches its db container
under the alias dbapp through its hosts file, in a private sandbox."""

import shutil
import tempfile

import pytest
from helpers import registry
from helpers.links import cni, err, ok, serve_and_fetch, setup, state


def test_web_reaches_db_by_alias(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    db = ok(cni(sandbox, "add", "db", pod="db"))
    ok(cni(sandbox, "add", "web", pod="web", cap={"links": ["db:dbapp"]}))
    db_v4 = db["ips"][0]["address"].split("/")[0]
    resolved = sandbox.sh("ip netns exec web getent ahostsv4 dbapp").stdout.split()
    assert resolved[0] == db_v4
    assert serve_and_fetch(sandbox, "db", "web", "http://dbapp:8080/") == "db says hi"
    hosts = sandbox.sh("cat /etc/netns/web/hosts").stdout
    assert f"{db_v4}\tdbapp db\t# dockline-link " in hosts
    assert "127.0.0.1\tlocalhost" in hosts  # a fresh hosts file gets the usual lines


def test_restarted_target_gets_its_new_address_into_dependants(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    ok(cni(sandbox, "add", "db", pod="db"))
    ok(cni(sandbox, "add", "web", pod="web", cap={"links": [{"name": "db", "alias": "dbapp"}]}))
    ok(cni(sandbox, "del", "db"))
    # Docker parity: the dependant keeps its line while the target is gone
    assert "dbapp db" in sandbox.sh("cat /etc/netns/web/hosts").stdout
    new_db = ok(cni(sandbox, "add", "db", cid="db-restarted", pod="db"))
    new_v4 = new_db["ips"][0]["address"].split("/")[0]
    assert sandbox.sh("ip netns exec web getent ahostsv4 dbapp").stdout.split()[0] == new_v4
    assert serve_and_fetch(sandbox, "db", "web", "http://dbapp:8080/") == "db says hi"
    ok(cni(sandbox, "check", "web", cap={"links": ["db:dbapp"]}))


def test_podman_aliases_map_and_spec_list_name_the_container(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add db2; ip netns add web")
    ok(cni(sandbox, "add", "db", cap={"aliases": {"dockline": ["database", "db"], "other": ["x"]}}))
    ok(cni(sandbox, "add", "db2", cap={"aliases": ["cache"]}))
    ok(cni(sandbox, "add", "web", cap={"links": ["database:dbapp", "cache"]}))
    hosts = sandbox.sh("cat /etc/netns/web/hosts").stdout
    assert "\tdbapp database\t" in hosts and "\tcache\t" in hosts
    assert "\tx\t" not in hosts


def test_missing_target_fails_and_leaves_nothing(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    ok(cni(sandbox, "add", "db", pod="db"))
    before = state(sandbox)
    e = err(cni(sandbox, "add", "web", pod="web", cap={"links": ["nosuch:alias"]}))
    assert e["code"] == 7 and "nosuch" in e["msg"]
    assert state(sandbox) == before
    assert "eth0" not in sandbox.sh("ip -n web -br link").stdout


def test_duplicate_name_fails_clearly(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add db2; ip netns add db3")
    ok(cni(sandbox, "add", "db", cap={"aliases": ["db"]}))
    before = state(sandbox)
    e = err(cni(sandbox, "add", "db2", cap={"aliases": ["db"]}))
    assert e["code"] == 100 and "'db' is already taken" in e["msg"]
    assert state(sandbox) == before
    # A name that is the runtime's identity (CNI_ARGS K8S_POD_NAME) is no
    # request: it never fails an ADD, even where an alias holds it.
    ok(cni(sandbox, "add", "db3", pod="db"))


@pytest.mark.parametrize(
    "cap",
    [
        {"links": ["../x:alias"]},
        {"links": ["db:a b"]},
        {"links": ["db:a\nb"]},
        {"links": ["db:" + "a" * 300]},
        {"aliases": ["we b"]},
        {"aliases": ["x/y"]},
        {"links": [{"name": "db", "alias": "evil\t10.0.0.1 google.com"}]},
        {"links": [42]},
        {"hostsFile": "relative/hosts", "links": ["db"]},
    ],
)
def test_hostile_names_are_refused(sandbox, dockline_bin, cap):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    ok(cni(sandbox, "add", "db", pod="db"))
    before = state(sandbox)
    e = err(cni(sandbox, "add", "web", cap=cap))
    assert e["code"] == 7
    assert state(sandbox) == before


def test_hosts_file_symlink_is_refused(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh(
        "ip netns add db; ip netns add web; mkdir -p /etc/netns/web;"
        "echo '1.2.3.4 precious' > /etc/cni/net.d/precious; "
        "ln -s /etc/cni/net.d/precious /etc/netns/web/hosts"
    )
    ok(cni(sandbox, "add", "db", pod="db"))
    before = state(sandbox)
    e = err(cni(sandbox, "add", "web", cap={"links": ["db"]}))
    assert e["code"] == 7 and "symlink" in e["msg"]
    assert sandbox.sh("cat /etc/cni/net.d/precious").stdout == "1.2.3.4 precious\n"
    assert state(sandbox) == before


@pytest.fixture
def runtime_dir():
    """A directory of the kind a runtime keeps a container's files in (not
    under /etc nor CNI's state, where hosts files are refused); removed."""
    path = tempfile.mkdtemp(prefix="dockline-links-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_runtime_hosts_file_is_edited_in_place_and_user_lines_survive(
    sandbox, dockline_bin, runtime_dir
):
    setup(sandbox)
    hosts = f"{runtime_dir}/web-hosts"  # the path a runtime would bind-mount
    sandbox.sh(
        "ip netns add db; ip netns add web; "
        f"printf '127.0.0.1\\tlocalhost\\n10.9.9.9\\tmine\\n' > {hosts}"
    )
    inode = sandbox.sh(f"stat -c %i {hosts}").stdout
    ok(cni(sandbox, "add", "db", pod="db"))
    ok(cni(sandbox, "add", "web", cap={"links": ["db:dbapp"], "hostsFile": hosts}))
    text = sandbox.sh(f"cat {hosts}").stdout
    assert text.startswith("127.0.0.1\tlocalhost\n10.9.9.9\tmine\n") and "dbapp db" in text
    sandbox.sh(f"echo '10.8.8.8 added-later' >> {hosts}")
    ok(cni(sandbox, "del", "web", cap={"links": ["db:dbapp"], "hostsFile": hosts}))
    assert (
        sandbox.sh(f"cat {hosts}").stdout
        == "127.0.0.1\tlocalhost\n10.9.9.9\tmine\n10.8.8.8 added-later\n"
    )
    assert sandbox.sh(f"stat -c %i {hosts}").stdout == inode


def test_links_without_any_hosts_file_fail(sandbox, dockline_bin):
    setup(sandbox)
    # a netns bound outside /run/netns, inside the sandbox's own tmpfs
    sandbox.sh(
        "ip netns add db; mkdir -p /var/lib/cni/other; touch /var/lib/cni/other/ns; "
        "mount --bind /run/netns/db /var/lib/cni/other/ns"
    )
    ok(cni(sandbox, "add", "db", pod="db", cid="db"))
    sandbox.sh(
        "ip netns add web2; touch /var/lib/cni/other/web2; "
        "mount --bind /run/netns/web2 /var/lib/cni/other/web2"
    )
    e = err(cni(sandbox, "add", "web2", cap={"links": ["db"]}, netns="/var/lib/cni/other/web2"))
    assert e["code"] == 7 and "hosts file" in e["msg"]


def test_gc_drops_registrations_of_gone_containers(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    ok(cni(sandbox, "add", "db", pod="db"))
    ok(cni(sandbox, "add", "web", pod="web"))
    sandbox.sh("rm /var/lib/cni/results/dockline-db-eth0")  # the runtime forgot db
    ok(cni(sandbox, "gc", "web"))
    assert list(registry.entries(sandbox)) == ["web:eth0"]
    ok(cni(sandbox, "add", "db", cid="db-new", pod="db"))  # the name is free again


def test_check_notices_a_removed_link_line(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    ok(cni(sandbox, "add", "db", pod="db"))
    ok(cni(sandbox, "add", "web", cap={"links": ["db:dbapp"]}))
    sandbox.sh("sed -i '/dockline-link/d' /etc/netns/web/hosts")
    e = err(cni(sandbox, "check", "web", cap={"links": ["db:dbapp"]}))
    assert e["code"] == 101 and "hosts file" in e["msg"]

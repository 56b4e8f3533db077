"""Kubernetes pod names on a links-enabled dockline bridge: names are
scoped by K8S_POD_NAMESPACE, a pod name (the runtime's identity) never
fails an ADD, links resolve within the pod's namespace, and explicit
aliases stay unique per namespace.  CNI_ARGS as containerd's CRI sends
them, in a private sandbox."""

import json

import pytest
from helpers import registry
from helpers.links import cni, err, ok, serve_and_fetch, setup
from helpers.paths import REPO

LEGACY = "/var/lib/cni/networks/dockline/.dockline-names.json"  # the format before


def k8s(sb, command, netns, namespace, pod, cid=None, cap=None):
    cid = cid or f"{namespace}-{pod}-sandbox"
    args = (
        f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod};"
        f"K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=uid-{cid}"
    )
    argv = [
        str(REPO / "scripts" / "cni"),
        command,
        "dockline",
        f"/run/netns/{netns}",
        "--id",
        cid,
        "--args",
        args,
        "--cap-args",
        json.dumps(cap or {}),
    ]
    return sb.run(
        argv,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": str(REPO / ".build" / "cni-bin")},
    )


def v4(result):
    return next(ip["address"].split("/")[0] for ip in result["ips"] if "." in ip["address"])


def resolve(sb, netns, name):
    out = sb.sh(f"ip netns exec {netns} getent ahostsv4 {name}", check=False).stdout.split()
    return out[0] if out else None


def test_same_pod_name_in_two_namespaces_both_get_addresses(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add a-web; ip netns add b-web")
    a = ok(k8s(sandbox, "add", "a-web", "a", "web"))
    b = ok(k8s(sandbox, "add", "b-web", "b", "web"))
    assert v4(a) != v4(b)
    reg = registry.entries(sandbox)
    assert {(e["scope"], e["pod"]) for e in reg.values()} == {("a", "web"), ("b", "web")}
    ok(k8s(sandbox, "del", "a-web", "a", "web"))
    ok(k8s(sandbox, "del", "b-web", "b", "web"))


def test_links_resolve_within_the_pods_namespace(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("for n in a-db b-db a-client b-client; do ip netns add $n; done")
    a_db = ok(k8s(sandbox, "add", "a-db", "a", "db"))
    b_db = ok(k8s(sandbox, "add", "b-db", "b", "db"))
    ok(k8s(sandbox, "add", "a-client", "a", "client", cap={"links": ["db:dbapp"]}))
    ok(k8s(sandbox, "add", "b-client", "b", "client", cap={"links": ["db:dbapp"]}))
    assert resolve(sandbox, "a-client", "dbapp") == v4(a_db)
    assert resolve(sandbox, "b-client", "dbapp") == v4(b_db)
    # real traffic to the pod the name resolved to
    assert serve_and_fetch(sandbox, "a-db", "a-client", "http://dbapp:8080/") == "db says hi"


def test_a_link_to_a_name_only_in_another_namespace_fails(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add b-db; ip netns add a-client")
    ok(k8s(sandbox, "add", "b-db", "b", "db"))
    e = err(k8s(sandbox, "add", "a-client", "a", "client", cap={"links": ["db"]}))
    assert e["code"] == 7 and "'db'" in e["msg"] and "namespace 'a'" in e["details"]
    assert "eth0" not in sandbox.sh("ip -n a-client -br link").stdout


def test_duplicate_explicit_alias_in_one_namespace_is_refused(sandbox, dockline_bin):
    setup(sandbox)
    sandbox.sh("ip netns add a-one; ip netns add a-two; ip netns add b-two")
    ok(k8s(sandbox, "add", "a-one", "a", "one", cap={"aliases": ["cache"]}))
    before = sandbox.sh(f"ls -R {registry.registry_dir()}; {registry.cat()}").stdout
    e = err(k8s(sandbox, "add", "a-two", "a", "two", cap={"aliases": ["cache"]}))
    assert e["code"] == 100 and "'cache' is already taken" in e["msg"]
    assert sandbox.sh(f"ls -R {registry.registry_dir()}; {registry.cat()}").stdout == before
    assert "eth0" not in sandbox.sh("ip -n a-two -br link").stdout
    ok(k8s(sandbox, "add", "b-two", "b", "two", cap={"aliases": ["cache"]}))  # other namespace


def test_recreated_sandbox_takes_the_pod_name_before_the_old_ones_del(sandbox, dockline_bin):
    """kubelet recreates a pod's sandbox while the old one's DEL has not
    happened (or failed): the new ADD must not fail, and the name points
    at the newest sandbox, for new and existing dependants alike."""
    setup(sandbox)
    sandbox.sh("for n in old new client late; do ip netns add $n; done")
    old = ok(k8s(sandbox, "add", "old", "a", "db", cid="sandbox-old"))
    ok(k8s(sandbox, "add", "client", "a", "client", cap={"links": ["db"]}))
    assert resolve(sandbox, "client", "db") == v4(old)
    new = ok(k8s(sandbox, "add", "new", "a", "db", cid="sandbox-new"))
    assert resolve(sandbox, "client", "db") == v4(new)
    ok(k8s(sandbox, "add", "late", "a", "late", cap={"links": ["db"]}))
    assert resolve(sandbox, "late", "db") == v4(new)
    ok(k8s(sandbox, "del", "old", "a", "db", cid="sandbox-old"))
    assert resolve(sandbox, "client", "db") == v4(new)
    ok(k8s(sandbox, "check", "client", "a", "client", cap={"links": ["db"]}))
    # an explicit alias of the same spelling wins over a pod name
    sandbox.sh("ip netns add aliased; ip netns add late2")
    aliased = ok(k8s(sandbox, "add", "aliased", "a", "other", cap={"aliases": ["db"]}))
    ok(k8s(sandbox, "add", "late2", "a", "late2", cap={"links": ["db"]}))
    assert resolve(sandbox, "late2", "db") == v4(aliased)


@pytest.mark.parametrize("version", [1, 2])
def test_registry_of_the_previous_formats_still_works(sandbox, dockline_bin, version):
    """An upgrade keeps DEL and links working on a registry written by an
    older dockline: version 1 (names only, no scope) or 2 (one document of
    every entry), both in .dockline-names.json; the first call converts it
    to entry files and removes it."""
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add web")
    db = ok(k8s(sandbox, "add", "db", "a", "ignored", cid="db"))
    sandbox.sh(f"rm -r {registry.registry_dir()}")
    old: dict = {
        "attachments": {
            "db:eth0": {
                "names": ["db"],
                "ips": [v4(db)],
                "hosts": None,
                "tag": "0123456789abcdef",
                "links": [],
            }
        }
    }
    if version == 2:
        old.update(version=2, seq=7)
        old["attachments"]["db:eth0"].update(scope="", seq=7)
    sandbox.run(["sh", "-c", f"cat > {LEGACY}"], input=json.dumps(old), check=True)
    run = sandbox.run(
        [
            str(REPO / "scripts" / "cni"),
            "add",
            "dockline",
            "/run/netns/web",
            "--id",
            "web",
            "--cap-args",
            json.dumps({"links": ["db:dbapp"]}),
        ],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": str(REPO / ".build" / "cni-bin")},
    )
    ok(run)
    assert resolve(sandbox, "web", "dbapp") == v4(db)
    assert sandbox.sh(f"ls {LEGACY} 2>/dev/null; true").stdout == ""
    ok(k8s(sandbox, "del", "db", "a", "ignored", cid="db"))
    assert list(registry.entries(sandbox)) == ["web:eth0"]


def test_a_name_whose_holder_lost_its_del_is_free_again(sandbox, dockline_bin):
    """An alias stays unique, but a holder whose namespace is gone (crash,
    reboot with /var/lib/cni on disk) does not keep it for ever."""
    setup(sandbox)
    sandbox.sh("ip netns add db; ip netns add db2; ip netns add web")
    ok(cni(sandbox, "add", "web", pod="web"))
    ok(cni(sandbox, "add", "db", cap={"aliases": ["db"], "links": ["web"]}))
    assert err(cni(sandbox, "add", "db2", cap={"aliases": ["db"]}))["code"] == 100  # holder alive
    sandbox.sh("ip netns del db")  # db's DEL never comes
    ok(cni(sandbox, "add", "db2", cap={"aliases": ["db"]}))
    reg = registry.entries(sandbox)
    assert "db:eth0" not in reg and reg["db2:eth0"]["names"] == ["db"]

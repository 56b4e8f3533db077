"""The warm zygote behind the executables: same answers as serving the
call in-process, and no trust in a socket it did not make."""
import time

from conftest import call_plugin
from zygote_helpers import SQUATTER, VENV_PYTHON, expected_socket, in_sandbox, wait_for_zygote, zygotes

CONF = {"cniVersion": "1.0.0", "name": "net1",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.3.0.0/24"}]]}}


def test_answers_match_in_process_answers(sandbox, dockline_bin):
    hl = dockline_bin / "host-local"
    call_plugin(sandbox, hl, "ADD", CONF, containerid="first").ok()
    wait_for_zygote(sandbox)
    time.sleep(0.5)
    cases = [("ADD", CONF, "a"), ("ADD", dict(CONF, ipam={"type": "host-local"}), "b"),
             ("ADD", "{bad json", "c"), ("CHECK", CONF, "a"), ("CHECK", CONF, "nobody"),
             ("DEL", CONF, "a")]
    def on(network, conf):  # the same calls on two networks: same state
        return dict(conf, name=network) if isinstance(conf, dict) else conf

    for command, conf, cid in cases:
        warm = call_plugin(sandbox, hl, command, on("warm", conf), containerid=cid)
        cold = call_plugin(sandbox, hl, command, on("cold", conf), containerid=cid,
                           extra_env={"DOCKLINE_NO_ZYGOTE": "1"})
        assert (warm.code, warm.stdout, warm.stderr) == (cold.code, cold.stdout, cold.stderr), command


def test_zygote_lives_in_the_callers_namespaces_only(sandbox, dockline_bin):
    call_plugin(sandbox, dockline_bin / "host-local", "ADD", CONF).ok()
    pid = wait_for_zygote(sandbox)
    assert zygotes(sandbox) == [pid]
    mine = sandbox.sh("readlink /proc/self/ns/net /proc/self/ns/mnt").stdout
    theirs = sandbox.sh(f"readlink /proc/{pid}/ns/net /proc/{pid}/ns/mnt").stdout
    assert mine == theirs


def test_an_impostor_on_the_socket_path_is_not_trusted(sandbox, dockline_bin):
    """Another process (here: in another mount namespace, which still sees
    /run/dockline) that binds the zygote's path first gets no call: the
    executable checks who is on the other end, says so, and serves the
    call itself."""
    hl = dockline_bin / "host-local"
    path = expected_socket(sandbox, hl)
    sandbox.sh(f"unshare --mount {VENV_PYTHON} {SQUATTER} {path} /var/lib/cni/impostor.log"
               " > /var/lib/cni/impostor.out 2>&1 &"
               "for i in $(seq 100); do grep -q READY /var/lib/cni/impostor.out && break; sleep 0.02; done")
    run = call_plugin(sandbox, hl, "ADD", CONF, containerid="victim").ok()
    assert run.json["ips"][0]["address"] == "10.3.0.2/24"
    assert "not trusted (pid" in run.stderr and "in another mnt namespace" in run.stderr
    log = in_sandbox(sandbox, "/var/lib/cni/impostor.log")
    for _ in range(100):
        if log.exists():
            break
        time.sleep(0.02)
    # it connected, saw who answered, and hung up without sending anything
    assert log.read_text() == "GOT 0 bytes\n"


def test_executables_installed_without_zygote_never_start_one(sandbox, dockline_bin):
    text = (dockline_bin / "host-local").read_text().replace("zygote=True", "zygote=False")
    assert "zygote=False" in text
    sandbox.run(["sh", "-c", "mkdir -p /var/lib/cni/bin && cat > /var/lib/cni/bin/host-local && "
                 "chmod +x /var/lib/cni/bin/host-local"], input=text, check=True)
    for cid in ("a", "b"):
        call_plugin(sandbox, "/var/lib/cni/bin/host-local", "ADD", CONF, containerid=cid).ok()
    time.sleep(0.5)
    assert not zygotes(sandbox)

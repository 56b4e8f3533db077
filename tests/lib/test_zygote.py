"""The warm zygote behind the executables: same answers as serving the
call in-process, and no trust in a socket it did not make."""
import json
import time

from conftest import VENV_PYTHON, call_plugin

CONF = {"cniVersion": "1.0.0", "name": "net1",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.3.0.0/24"}]]}}


def wait_for_zygote(sb, present=True):
    for _ in range(100):
        if ("zygote.serve" in sb.sh("ps -eo args", check=False).stdout) == present:
            return
        time.sleep(0.05)
    raise AssertionError("zygote did not " + ("start" if present else "go away"))


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
    wait_for_zygote(sandbox)
    pids = sandbox.sh("pgrep -f 'zygote[.]serve'").stdout.split()
    assert len(pids) == 1
    mine = sandbox.sh("readlink /proc/self/ns/net /proc/self/ns/mnt").stdout
    theirs = sandbox.sh(f"readlink /proc/{pids[0]}/ns/net /proc/{pids[0]}/ns/mnt").stdout
    assert mine == theirs


def test_an_impostor_on_the_socket_name_is_not_trusted(sandbox, dockline_bin):
    """Another process (here: in another mount namespace) that binds the
    zygote's name first gets no call: the executable checks who is on the
    other end and serves the call itself."""
    hl = dockline_bin / "host-local"
    stamp = hl.read_text().split('stamp="')[1].split('"')[0]
    sandbox.sh("touch /var/lib/cni/impostor.log")
    impostor = (
        "import os, socket, sys, time\n"
        f"mnt = os.readlink('/proc/{{}}/ns/mnt'.format(sys.argv[1]))[5:-1]\n"
        f"name = '\\0dockline-zygote-0-' + mnt + '-{stamp}'\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(name); s.listen(5)\n"
        "print('ready', flush=True)\n"
        "c, _ = s.accept(); data = c.recv(65536)\n"
        "open('/var/lib/cni/impostor.log', 'a').write('GOT %d bytes\\n' % len(data))\n")
    sandbox.sh(f"unshare --mount {VENV_PYTHON} -c \"{impostor}\" $$ > /var/lib/cni/impostor.out 2>&1 &"
               "for i in $(seq 50); do grep -q ready /var/lib/cni/impostor.out && break; sleep 0.1; done")
    run = call_plugin(sandbox, hl, "ADD", CONF, containerid="victim").ok()
    assert run.json["ips"][0]["address"] == "10.3.0.2/24"
    time.sleep(0.3)
    # it connected, saw who answered, and hung up without sending anything
    assert sandbox.sh("cat /var/lib/cni/impostor.log").stdout == "GOT 0 bytes\n"


def test_executables_installed_without_zygote_never_start_one(sandbox, dockline_bin):
    text = (dockline_bin / "host-local").read_text().replace("zygote=True", "zygote=False")
    assert "zygote=False" in text
    sandbox.run(["sh", "-c", "mkdir -p /var/lib/cni/bin && cat > /var/lib/cni/bin/host-local && "
                 "chmod +x /var/lib/cni/bin/host-local"], input=text, check=True)
    for cid in ("a", "b"):
        call_plugin(sandbox, "/var/lib/cni/bin/host-local", "ADD", CONF, containerid=cid).ok()
    time.sleep(0.5)
    assert "zygote.serve" not in sandbox.sh("ps -eo args").stdout

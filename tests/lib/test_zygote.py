"""The warm zygote behind the executables: same answers as serving the
call in-process, and no trust in a socket it did not make."""

import json
import os
import signal
import time

from helpers.cni import call_plugin
from helpers.zygote import (
    SQUATTER,
    VENV_PYTHON,
    expected_socket,
    in_sandbox,
    wait_for,
    wait_for_zygote,
    zygote_work,
    zygotes,
)

CONF = {
    "cniVersion": "1.0.0",
    "name": "net1",
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.3.0.0/24"}]]},
}


def test_answers_match_in_process_answers(sandbox, dockline_bin):
    hl = dockline_bin / "host-local"
    call_plugin(sandbox, hl, "ADD", CONF, containerid="first").ok()
    zpid = wait_for_zygote(sandbox)
    time.sleep(0.5)
    cases = [
        ("ADD", CONF, "a"),
        ("ADD", dict(CONF, ipam={"type": "host-local"}), "b"),
        ("ADD", "{bad json", "c"),
        ("CHECK", CONF, "a"),
        ("CHECK", CONF, "nobody"),
        ("DEL", CONF, "a"),
    ]

    def on(network, conf):  # the same calls on two networks: same state
        return dict(conf, name=network) if isinstance(conf, dict) else conf

    for command, conf, cid in cases:
        before = zygote_work(zpid)
        warm = call_plugin(sandbox, hl, command, on("warm", conf), containerid=cid)
        assert zygote_work(zpid) != before, "not served by the zygote"
        cold = call_plugin(
            sandbox,
            hl,
            command,
            on("cold", conf),
            containerid=cid,
            extra_env={"DOCKLINE_NO_ZYGOTE": "1"},
        )
        assert (warm.code, warm.stdout, warm.stderr) == (cold.code, cold.stdout, cold.stderr), (
            command
        )


def _launch(
    sb, hl, network: str, cid: str, shell: str = "", env: dict | None = None, cold: bool = False
):
    """An ADD run as `sh -c "<shell>; exec <launcher>"` with a byte
    environment: (code, stdout, stderr), the network's name made neutral."""
    base = {
        b"PATH": b"/usr/sbin:/usr/bin:/sbin:/bin",
        b"CNI_COMMAND": b"ADD",
        b"CNI_CONTAINERID": cid.encode(),
        b"CNI_NETNS": b"/x",
        b"CNI_IFNAME": b"eth0",
        b"CNI_PATH": str(hl.parent).encode(),
        **(env or {}),
    }
    if cold:
        base[b"DOCKLINE_NO_ZYGOTE"] = b"1"
    proc = sb.run(
        ["sh", "-c", f"{shell}\nexec {hl}"],
        env=base,
        input=json.dumps(dict(CONF, name=network)).encode(),
    )
    return (
        proc.returncode,
        proc.stdout.replace(network.encode(), b"NET"),
        proc.stderr.replace(network.encode(), b"NET"),
    )


def test_odd_callers_get_in_process_answers(sandbox, dockline_bin):
    """What the call inherits from its caller reaches the zygote's child
    as it is: bytes that are not UTF-8 in the environment (no traceback on
    either side), a deleted working directory, the umask and the resource
    limits.  Each warm answer is the zygote's (a new child) and equals the
    answer served in-process."""
    hl = dockline_bin / "host-local"
    call_plugin(sandbox, hl, "ADD", CONF, containerid="first").ok()
    zpid = wait_for_zygote(sandbox)
    cases = {
        "non-utf8-var": ("", {b"FOO": b"\xff\xfe"}),
        "non-utf8-cni-args": ("", {b"CNI_ARGS": b"IgnoreUnknown=1;X=\xff"}),
        "deleted-cwd": ("mkdir /var/lib/cni/gone && cd /var/lib/cni/gone && rmdir ../gone", {}),
        "no-file-writes": ("ulimit -f 0", {}),
        "umask": ("umask 027", {}),
    }
    for i, (name, (shell, env)) in enumerate(cases.items()):
        before = zygote_work(zpid)
        warm = _launch(sandbox, hl, f"w{i}", name, shell, env)
        assert zygote_work(zpid) != before, f"{name}: not served by the zygote"
        cold = _launch(sandbox, hl, f"c{i}", name, shell, env, cold=True)
        assert warm == cold, name
        assert b"Traceback" not in warm[2], name
    assert cases and warm[0] == 0
    modes = sandbox.sh(
        "umask; stat -c %a /var/lib/cni/networks/w0 /var/lib/cni/networks/w4 "
        "/var/lib/cni/networks/c4"
    ).stdout.split()
    assert modes == ["0022", "755", "750", "750"]  # the caller's umask, not the zygote's 077
    fsize = _launch(sandbox, hl, "w9", "x", "ulimit -f 0")
    assert fsize[0] != 0 and b"File too large" in fsize[2]


def test_zygote_lives_in_the_callers_namespaces_only(sandbox, dockline_bin):
    call_plugin(sandbox, dockline_bin / "host-local", "ADD", CONF).ok()
    pid = wait_for_zygote(sandbox)
    assert zygotes(sandbox) == [pid]
    ns = "ns/net ns/mnt ns/pid"
    mine = sandbox.sh(f"cd /proc/self && readlink {ns}").stdout
    inner = sandbox.inner_pid(pid)  # the sandbox has its own pids
    theirs = sandbox.sh(f"cd /proc/{inner} && readlink {ns}").stdout
    assert mine.count("\n") == 3
    assert mine == theirs


def test_an_impostor_on_the_socket_path_is_not_trusted(sandbox, dockline_bin):
    """Another process (here: in another mount namespace, which still sees
    /run/dockline) that binds the zygote's path first gets no call: the
    executable checks who is on the other end, says so, and serves the
    call itself."""
    hl = dockline_bin / "host-local"
    path = expected_socket(sandbox, hl)
    sandbox.sh(
        f"unshare --mount {VENV_PYTHON} {SQUATTER} {path} /var/lib/cni/impostor.log"
        " > /var/lib/cni/impostor.out 2>&1 &"
        "for i in $(seq 100); do grep -q READY /var/lib/cni/impostor.out && break; sleep 0.02; done"
    )
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
    sandbox.run(
        [
            "sh",
            "-c",
            "mkdir -p /var/lib/cni/bin && cat > /var/lib/cni/bin/host-local && "
            "chmod +x /var/lib/cni/bin/host-local",
        ],
        input=text,
        check=True,
    )
    for cid in ("a", "b"):
        call_plugin(sandbox, "/var/lib/cni/bin/host-local", "ADD", CONF, containerid=cid).ok()
    time.sleep(0.5)
    assert not zygotes(sandbox)


def test_a_stopped_zygote_gives_its_path_back(sandbox, dockline_bin):
    """SIGTERM (a service stopping) removes the zygote's socket: the next
    call finds no zygote (no stale file to complain about), serves itself
    and starts a new one."""
    hl = dockline_bin / "host-local"
    call_plugin(sandbox, hl, "ADD", CONF, containerid="a").ok()
    zpid = wait_for_zygote(sandbox)
    path = in_sandbox(sandbox, expected_socket(sandbox, hl))
    assert path.exists()
    os.kill(zpid, signal.SIGTERM)
    wait_for(lambda: not zygotes(sandbox), "the zygote to stop")
    assert not path.exists()
    run = call_plugin(sandbox, hl, "ADD", CONF, containerid="b").ok()
    assert run.stderr == ""
    assert wait_for_zygote(sandbox) != zpid

"""The zygote against the attacks it must refuse: clients of other mount
namespaces, users or capabilities, silent or abandoned clients, inherited
fds, squatters on its path, and requests outside the protocol.  Each
attack is tried for real inside the sandbox; nothing it asks for may be
created, and a real executable as the client still gets its call served
(in its own process)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest
from helpers.cni import call_plugin
from helpers.zygote import (
    CLIENT,
    SQUATTER,
    VENV_PYTHON,
    busy_children,
    expected_socket,
    in_sandbox,
    wait_for,
    wait_for_zygote,
    zygote_fds,
    zygotes,
)

CONF = {
    "cniVersion": "1.0.0",
    "name": "net1",
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.3.0.0/24"}]]},
}
NO_CAPS = [
    "setpriv",
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
]
# Opens the path given as argv[1] with O_PATH (as a process that found it
# some way would hold it), then execs the rest with {fd} replaced.
OPENER = (
    "import os, sys; fd = os.open(sys.argv[1], os.O_PATH); os.set_inheritable(fd, True); "
    "argv = [a.replace('{fd}', str(fd)) for a in sys.argv[2:]]; os.execvp(argv[0], argv)"
)


def env_args(command: str, cid: str, binary) -> list[str]:
    return [
        "--env",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "--env",
        f"CNI_COMMAND={command}",
        "--env",
        f"CNI_CONTAINERID={cid}",
        "--env",
        "CNI_NETNS=/run/netns/none",
        "--env",
        "CNI_IFNAME=eth0",
        "--env",
        f"CNI_PATH={binary.parent}",
    ]


def reservations(sb, network: str = "net1") -> set[str]:
    """Address files of a host-local network (dot files and the lock and
    last-reserved records are not reservations)."""
    d = in_sandbox(sb, f"/var/lib/cni/networks/{network}")
    if not d.exists():
        return set()
    return {p.name for p in d.iterdir() if p.name[0].isdigit() or ":" in p.name}


def reply(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("REPLY", "CONNECT"))]
    assert lines, (proc.stdout, proc.stderr)
    return lines[-1]


def warm(sb, dockline_bin) -> tuple[int, str]:
    """A running zygote (pid) and its socket path."""
    call_plugin(sb, dockline_bin / "host-local", "ADD", CONF, containerid="first").ok()
    pid = wait_for_zygote(sb)
    return pid, expected_socket(sb, dockline_bin / "host-local")


def run_launcher(sb, prefix: list[str], binary, command: str, cid: str, config=CONF, **kw):
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/none",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(binary.parent),
        **kw.pop("extra_env", {}),
    }
    return sb.run(prefix + [str(binary)], input=json.dumps(config), env=env, timeout=20, **kw)


# --- who can reach it --------------------------------------------------------


def test_a_container_with_its_own_run_does_not_see_the_socket(sandbox, dockline_bin):
    """A root container without capabilities in its own mount namespace
    (here: its own /run/dockline, as with its own root file system): the
    path does not exist there, the zygote's root is not reachable through
    /proc, and its plugin call is served in its own process."""
    hl = dockline_bin / "host-local"
    zpid, path = warm(sandbox, dockline_bin)
    zpid = sandbox.inner_pid(zpid)  # as the container's /proc names it
    container = [
        "unshare",
        "--mount",
        "sh",
        "-c",
        'mount -t tmpfs none /run/dockline && exec "$@"',
        "container",
    ] + NO_CAPS
    probe = sandbox.run(
        container
        + [
            "sh",
            "-c",
            f"test -e {path} || echo ABSENT; ls /proc/{zpid}/root/run/dockline 2>&1 || echo DENIED",
        ]
    )
    assert "ABSENT" in probe.stdout and "DENIED" in probe.stdout, probe
    run = run_launcher(sandbox, container, hl, "ADD", "boxed")
    assert run.returncode == 0, run
    assert json.loads(run.stdout)["ips"][0]["address"] == "10.3.0.3/24"
    assert "zygote at" not in run.stderr  # no zygote of its own to distrust
    assert reservations(sandbox) == {"10.3.0.2", "10.3.0.3"}


def test_a_client_of_another_mount_namespace_holding_the_socket_is_refused(sandbox, dockline_bin):
    """The same container, given the socket some way (an fd to it): the
    zygote reads who connected from the kernel, sees another mount
    namespace, and refuses; nothing is created."""
    hl = dockline_bin / "host-local"
    _, path = warm(sandbox, dockline_bin)
    attack = sandbox.run(
        [
            str(VENV_PYTHON),
            "-c",
            OPENER,
            path,
            "unshare",
            "--mount",
            *NO_CAPS,
            str(VENV_PYTHON),
            str(CLIENT),
            "fd:{fd}",
            "request",
            *env_args("ADD", "intruder", hl),
        ],
        input=json.dumps(CONF),
        timeout=20,
    )
    assert reply(attack).startswith("REPLY R "), attack
    assert "in another mnt namespace" in reply(attack)
    assert reservations(sandbox) == {"10.3.0.2"}


def test_a_client_without_the_zygotes_capabilities_is_refused(sandbox, dockline_bin):
    """Root in the same namespaces but without capabilities: refused.  A
    real executable run that way looks for a zygote of its own kind (the
    capabilities are part of the name), so it never reaches this one: its
    call is served in its own process, with the powers it has."""
    hl = dockline_bin / "host-local"
    _, path = warm(sandbox, dockline_bin)
    attack = sandbox.run(
        [
            str(VENV_PYTHON),
            "-c",
            OPENER,
            path,
            *NO_CAPS,
            str(VENV_PYTHON),
            str(CLIENT),
            "fd:{fd}",
            "request",
            *env_args("ADD", "intruder", hl),
        ],
        input=json.dumps(CONF),
        timeout=20,
    )
    assert "fewer capabilities" in reply(attack) and reply(attack).startswith("REPLY R ")
    assert reservations(sandbox) == {"10.3.0.2"}
    run = run_launcher(sandbox, NO_CAPS, hl, "ADD", "capless")
    assert run.returncode == 0, run
    assert run.stderr == ""
    assert json.loads(run.stdout)["ips"][0]["address"] == "10.3.0.3/24"


def test_a_client_of_another_user_is_refused(sandbox, dockline_bin):
    """uid 65534: the socket (mode 0700, in a 0700 directory) cannot be
    connected to; with its mode opened up by mistake, the zygote still
    refuses the user."""
    hl = dockline_bin / "host-local"
    _, path = warm(sandbox, dockline_bin)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    attack = [
        str(VENV_PYTHON),
        "-c",
        OPENER,
        path,
        *nobody,
        str(VENV_PYTHON),
        str(CLIENT),
        "fd:{fd}",
        "request",
        *env_args("ADD", "intruder", hl),
    ]
    assert reply(sandbox.run(attack, input=json.dumps(CONF))) == "CONNECT-FAILED 13"
    sandbox.sh(f"chmod 0777 {path}")
    refused = reply(sandbox.run(attack, input=json.dumps(CONF), timeout=20))
    assert refused.startswith("REPLY R ") and "uid 65534" in refused
    assert reservations(sandbox) == {"10.3.0.2"}


# --- clients that do not play along -----------------------------------------


def test_a_silent_client_blocks_nobody(sandbox, dockline_bin):
    """A client that connects and sends nothing: every other call is still
    served, promptly, by the zygote."""
    hl = dockline_bin / "host-local"
    zpid, path = warm(sandbox, dockline_bin)
    silent = subprocess.Popen(
        sandbox.nsenter() + [str(VENV_PYTHON), str(CLIENT), path, "silent"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert silent.stdout.readline().strip() == "CONNECTED"
        for i in range(3):
            start = time.monotonic()
            run = call_plugin(sandbox, hl, "ADD", CONF, containerid=f"c{i}").ok()
            assert time.monotonic() - start < 3 and run.stderr == ""
        assert zygotes(sandbox) == [zpid]
    finally:
        silent.kill()
        silent.wait()


def test_a_call_whose_client_is_gone_is_not_run(sandbox, dockline_bin):
    """The client sent its request and died before the zygote got to it
    (the zygote is stopped meanwhile): the call is not run."""
    hl = dockline_bin / "host-local"
    zpid, path = warm(sandbox, dockline_bin)
    os.kill(zpid, signal.SIGSTOP)
    try:
        in_sandbox(sandbox, "/var/lib/cni/conf.json").write_text(json.dumps(CONF))
        args = " ".join(
            [str(VENV_PYTHON), str(CLIENT), path, "send-and-exit", *env_args("ADD", "ghost", hl)]
        )
        sandbox.sh(f"{args} </var/lib/cni/conf.json >/dev/null 2>&1", timeout=20)
    finally:
        os.kill(zpid, signal.SIGCONT)
    call_plugin(sandbox, hl, "ADD", CONF, containerid="alive").ok()  # queued behind the ghost
    wait_for(lambda: not busy_children(zpid), "the zygote's children to finish")
    assert reservations(sandbox) == {"10.3.0.2", "10.3.0.3"}
    owners = {
        p.read_text().split()[0]
        for p in in_sandbox(sandbox, "/var/lib/cni/networks/net1").iterdir()
        if p.name in reservations(sandbox)
    }
    assert owners == {"first", "alive"}


@contextlib.contextmanager
def held_bridge_add(sb, dockline_bin):
    """A bridge ADD through the zygote, held (deterministically) on the
    name registry's lock, which it takes once its veth and its address
    exist: yields (the executable's Popen, the zygote's pid)."""
    br = dockline_bin / "bridge"
    zpid, _ = warm(sb, dockline_bin)
    sb.sh("ip netns add c1 && mkdir -p /var/lib/cni/networks/midnet")
    lock = "/var/lib/cni/networks/midnet/.dockline-names.lock"
    holder = subprocess.Popen(sb.nsenter() + ["flock", lock, "sleep", "60"])
    conf = {
        "cniVersion": "1.0.0",
        "name": "midnet",
        "type": "bridge",
        "bridge": "brmid",
        "isGateway": True,
        "runtimeConfig": {"aliases": ["web"]},
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.7.0.0/24"}]]},
    }
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "mid",
        "CNI_NETNS": "/run/netns/c1",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(br.parent),
    }
    add = None
    try:
        wait_for(lambda: sb.run(["flock", "-n", lock, "true"]).returncode != 0, "the lock")
        ino = os.stat(in_sandbox(sb, lock)).st_ino
        add = subprocess.Popen(
            sb.nsenter() + [str(br)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        add.stdin.write(json.dumps(conf).encode())
        add.stdin.close()
        add.stdin = None  # for communicate()

        def waiting_on_lock():
            return any(
                f[1] == "->" and f[6].endswith(f":{ino}")
                for f in (line.split() for line in open("/proc/locks"))
                if len(f) > 6
            )

        wait_for(waiting_on_lock, "the ADD to wait on the registry lock", timeout=10)
        assert veths(sb) and reservations(sb, "midnet") == {"10.7.0.2"}
        yield add, zpid
    finally:
        holder.kill()
        holder.wait()
        if add is not None:
            add.kill()
            add.wait()


def veths(sb) -> str:
    return sb.sh("ip -o link show type veth").stdout


def test_a_client_killed_mid_add_leaves_nothing(sandbox, dockline_bin):
    """A runtime that gives up on an ADD (kills the executable): the
    zygote's child unwinds what it did, as a failed ADD does: no veth, no
    address, even once the lock it waited on is free."""
    with held_bridge_add(sandbox, dockline_bin) as (add, zpid):
        add.kill()
        add.wait()
        wait_for(
            lambda: not veths(sandbox) and not reservations(sandbox, "midnet"), "the ADD to unwind"
        )
    wait_for(lambda: not busy_children(zpid), "the zygote's child to end")
    assert not veths(sandbox) and not reservations(sandbox, "midnet")
    assert not sandbox.sh("ip netns exec c1 ip -o link show type veth").stdout


def test_a_child_dying_mid_call_is_a_failed_call(sandbox, dockline_bin):
    """The zygote's child killed mid-ADD: the executable answers with an
    error (code 999) and a non-zero status, and never runs the call again
    itself (it may have half run)."""
    with held_bridge_add(sandbox, dockline_bin) as (add, zpid):
        for child in busy_children(zpid):
            os.kill(child, signal.SIGKILL)
        out, err = add.communicate(timeout=10)
    assert add.returncode == 1
    assert json.loads(out)["code"] == 999 and b"died while serving" in out
    assert reservations(sandbox, "midnet") == {"10.7.0.2"}  # left for DEL, not redone


def test_the_zygote_keeps_no_fd_of_its_starter(sandbox, dockline_bin):
    """A runtime's lock fd, inherited (no close-on-exec) by the first call
    that started the zygote, is not held by the zygote."""
    hl = dockline_bin / "host-local"
    run = sandbox.run(
        ["sh", "-c", f"exec 7>/var/lib/cni/runtime.lock; exec {hl}"],
        input=json.dumps(CONF),
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "a",
            "CNI_NETNS": "/x",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(hl.parent),
        },
    )
    assert run.returncode == 0, run
    zpid = wait_for_zygote(sandbox)
    path = expected_socket(sandbox, hl)
    # (once its preload, which opens files and sockets for a moment, is over)
    wait_for(lambda: len(zygote_fds(zpid)) == 5, "the zygote to settle")
    fds = zygote_fds(zpid)
    assert fds[:3] == ["/dev/null"] * 3, fds
    assert len(fds) == 5 and fds[3] == path[:-5] + ".lock" and fds[4].startswith("socket:"), fds


# --- squatters ---------------------------------------------------------------


def _squat(sb, path: str, *flags: str) -> None:
    sb.sh(
        f"{VENV_PYTHON} {SQUATTER} {path} /var/lib/cni/squatter.log {' '.join(flags)}"
        " > /var/lib/cni/squatter.out 2>&1 &"
        "for i in $(seq 250); do grep -q READY /var/lib/cni/squatter.out && break; sleep 0.02; done"
    )


def test_a_stale_socket_file_does_not_turn_the_zygote_off(sandbox, dockline_bin):
    """A socket file nobody listens on (a zygote killed with SIGKILL, or a
    squatter gone): the call is served in-process, says so once, and a
    zygote takes the path back for the next calls."""
    hl = dockline_bin / "host-local"
    path = expected_socket(sandbox, hl)
    _squat(sandbox, path, "--stale")
    run = call_plugin(sandbox, hl, "ADD", CONF, containerid="a").ok()
    assert run.stderr.count("dockline: zygote at") == 1 and "stale socket file" in run.stderr
    wait_for_zygote(sandbox)
    run = call_plugin(sandbox, hl, "ADD", CONF, containerid="b").ok()
    assert run.stderr == "" and run.json["ips"][0]["address"] == "10.3.0.3/24"


def test_a_live_squatter_is_displaced(sandbox, dockline_bin):
    """A process listening on the path without the zygote's lock (here:
    root in another mount namespace that still sees /run/dockline): the
    executable does not trust it, says so, serves the call itself, and
    the zygote it starts renames its own socket over the squatter's."""
    hl = dockline_bin / "host-local"
    path = expected_socket(sandbox, hl)
    sandbox.sh(
        f"unshare --mount {VENV_PYTHON} {SQUATTER} {path} /var/lib/cni/squatter.log"
        " > /var/lib/cni/squatter.out 2>&1 &"
        "for i in $(seq 250); do grep -q READY /var/lib/cni/squatter.out && break; sleep 0.02; done"
    )
    run = call_plugin(sandbox, hl, "ADD", CONF, containerid="a").ok()
    assert run.stderr.count("not trusted") == 1
    wait_for_zygote(sandbox)
    run = call_plugin(sandbox, hl, "ADD", CONF, containerid="b").ok()
    assert run.stderr == ""
    log = in_sandbox(sandbox, "/var/lib/cni/squatter.log")
    assert log.read_text() == "GOT 0 bytes\n"  # one connection, nothing sent


def test_a_squatter_holding_the_lock_gets_no_call(sandbox, dockline_bin):
    """A squatter that also holds the name's lock keeps real zygotes from
    starting: every call is served in-process, each saying so; the
    squatter is sent nothing."""
    hl = dockline_bin / "host-local"
    path = expected_socket(sandbox, hl)
    sandbox.sh(
        f"unshare --mount {VENV_PYTHON} {SQUATTER} {path} /var/lib/cni/squatter.log --hold-lock"
        " > /var/lib/cni/squatter.out 2>&1 &"
        "for i in $(seq 250); do grep -q READY /var/lib/cni/squatter.out && break; sleep 0.02; done"
    )
    for cid in ("a", "b"):
        run = call_plugin(sandbox, hl, "ADD", CONF, containerid=cid).ok()
        assert run.stderr.count("not trusted") == 1
    wait_for(lambda: not zygotes(sandbox), "the would-be zygotes to give up")
    log = in_sandbox(sandbox, "/var/lib/cni/squatter.log")
    wait_for(lambda: log.exists() and log.read_text().count("GOT") == 2, "the squatter's log")
    assert log.read_text() == "GOT 0 bytes\nGOT 0 bytes\n"


# --- requests outside the protocol ---------------------------------------------

EVIL = "open('/var/lib/cni/pwned', 'w').write('pwned')\n"


def test_only_dockline_plugins_can_be_asked_for(sandbox, dockline_bin):
    """Modules outside the allowlist, the old JSON request (with a
    sys.path), or an environment meant to make Python load a file: refused
    or ignored; the planted file never runs."""
    hl = dockline_bin / "host-local"
    _, path = warm(sandbox, dockline_bin)
    sandbox.sh("mkdir -p /var/lib/cni/evil")
    for name in ("evil.py", "sitecustomize.py", "host_local.py", "startup.py"):
        in_sandbox(sandbox, f"/var/lib/cni/evil/{name}").write_text(EVIL)
    planted = [
        "--env",
        "PYTHONPATH=/var/lib/cni/evil",
        "--env",
        "PYTHONSTARTUP=/var/lib/cni/evil/startup.py",
        "--env",
        "PYTHONHOME=/var/lib/cni/evil",
    ]
    client = [str(VENV_PYTHON), str(CLIENT), path, "request"]
    for module in ("evil", "os", "../evil", "host-local", "dockline.zygote", ""):
        out = reply(
            sandbox.run(
                client + ["--module", module, *planted, *env_args("ADD", "x", hl)],
                input=json.dumps(CONF),
                timeout=20,
            )
        )
        assert out.startswith("REPLY R ") and "is not a dockline plugin" in out, (module, out)
    old = json.dumps(
        {
            "module": "evil",
            "env": {"CNI_COMMAND": "ADD"},
            "cwd": "/",
            "sys_path": ["/var/lib/cni/evil"],
        }
    )
    out = reply(sandbox.run(client + ["--payload", old], input=json.dumps(CONF), timeout=20))
    assert out.startswith("REPLY R ") and "malformed request" in out
    # A plugin with that environment: served as usual, nothing planted runs.
    served = sandbox.run(
        client + ["--module", "dockline.plugins.host_local", *planted, *env_args("ADD", "y", hl)],
        input=json.dumps(CONF),
        timeout=20,
    )
    assert reply(served) == "REPLY S 0"
    assert '"10.3.0.3/24"' in served.stdout
    assert not in_sandbox(sandbox, "/var/lib/cni/pwned").exists()
    assert reservations(sandbox) == {"10.3.0.2", "10.3.0.3"}


# --- the directory of the socket -----------------------------------------------


@pytest.mark.parametrize(
    "setup",
    [
        "ln -s /var/lib/cni/target /run/dockline",
        "mkdir -m 0770 /run/dockline",
        "mkdir -m 0700 /run/dockline && chown 65534 /run/dockline",
    ],
)
def test_an_unsafe_socket_directory_is_not_used(sandbox, dockline_bin, setup):
    """/run/dockline as a symlink, group-writable, or of another user (here
    in a mount namespace with a /run of its own): no zygote starts, nothing
    is made there, and calls are served in-process."""
    hl = dockline_bin / "host-local"
    sandbox.sh("mkdir -p /var/lib/cni/target")
    prefix = [
        "unshare",
        "--mount",
        "sh",
        "-c",
        f'mount -t tmpfs none /run && {setup} && exec "$@"',
        "box",
    ]
    for cid in ("a", "b"):
        run = run_launcher(sandbox, prefix, hl, "ADD", cid)
        assert run.returncode == 0 and run.stderr == "", run
    wait_for(lambda: not zygotes(sandbox), "the would-be zygotes to give up")
    assert not list(in_sandbox(sandbox, "/var/lib/cni/target").iterdir())
    assert reservations(sandbox) == {"10.3.0.2", "10.3.0.3"}

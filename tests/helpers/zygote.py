"""Finding a sandbox's zygote and its socket from the test process."""

from __future__ import annotations

import os
import time
from pathlib import Path

from helpers.paths import REPO, VENV_PYTHON

HERE = Path(__file__).parent
CLIENT = HERE / "zygote_client.py"
SQUATTER = HERE / "zygote_squatter.py"


def zygotes(sb, children: bool = False) -> list[int]:
    """Zygote processes in the sandbox's network namespace (other tests'
    sandboxes may run zygotes of their own at the same time); the
    children serving calls only when asked for."""
    mine = os.readlink(f"/proc/{sb.pid}/ns/net")
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if (
                b"zygote_server.serve" in Path(f"/proc/{entry}/cmdline").read_bytes()
                and os.readlink(f"/proc/{entry}/ns/net") == mine
            ):
                stat = Path(f"/proc/{entry}/stat").read_text()
                found[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    return sorted(pid for pid, ppid in found.items() if children or ppid not in found)


def in_sandbox(sb, path: str) -> Path:
    """A path of the sandbox's mount namespace, seen from the test."""
    return Path(f"/proc/{sb.pid}/root{path}")


def wait_for(predicate, what: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_for_zygote(sb, present: bool = True) -> int | None:
    """The zygote's pid once it listens on its socket (or None once gone)."""
    if not present:
        wait_for(lambda: not zygotes(sb), "the zygote to go away")
        return None

    def listening():
        pids = zygotes(sb)
        return pids[0] if len(pids) == 1 and listening_on_its_path(sb) else None

    return wait_for(listening, "the zygote to listen")


def listening_on_its_path(sb) -> bool:
    """Whether a zygote's socket is at its path: it binds NAME.new, listens,
    then renames it over NAME (replacing a stale file that was there), so
    a listener bound as NAME.new with no NAME.new file left is there."""
    unix = Path(f"/proc/{sb.pid}/net/unix").read_text().split("\n")[1:]
    listeners = {f[7] for f in (line.split() for line in unix) if len(f) > 7 and f[5] == "01"}
    for sock in in_sandbox(sb, "/run/dockline").glob("*.sock"):
        if sock.name + ".new" in listeners and not Path(f"{sock}.new").exists():
            return True
    return False


def stamp_of(binary: Path) -> str:
    return Path(binary).read_text().split('stamp="')[1].split('"')[0]


def expected_socket(sb, binary: Path) -> str:
    """The socket path a launcher run in the sandbox would use."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'lib')!r}); "
        f"from dockline.zygote import socket_path; print(socket_path({stamp_of(binary)!r}))"
    )
    return sb.run([str(VENV_PYTHON), "-I", "-c", code], check=True).stdout.strip()


def zygote_fds(pid: int) -> list[str]:
    """What the zygote's fds are.  It listens before it preloads the
    plugins (whose imports and netlink warm-up open fds for a moment), so
    read until two looks agree."""
    base = f"/proc/{pid}/fd"

    def look() -> list[str]:
        names = []
        for fd in os.listdir(base):
            try:
                names.append(os.readlink(f"{base}/{fd}"))
            except FileNotFoundError:
                continue  # closed while we looked
        return sorted(names)

    deadline = time.monotonic() + 10
    last = look()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = look()
        if now == last:
            return now
        last = now
    return last


def idle_worker(pid: int) -> bool:
    """Whether a zygote's child is a worker waiting for its next call: in
    recvmsg with MSG_CMSG_CLOEXEC, on its control socket (a busy one
    receives only from a client that has already sent)."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 3 and fields[0] == "47" and int(fields[3], 16) == 0x40000000


def live_children(zpid: int) -> list[int]:
    """The zygote's children that have not exited (it reaps the dead ones
    when it next wakes)."""
    out = []
    for child in Path(f"/proc/{zpid}/task/{zpid}/children").read_text().split():
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            out.append(int(child))
    return out


def busy_children(zpid: int) -> list[int]:
    """The zygote's children serving (or unwinding) a call: live ones that
    are not idle workers."""
    return [pid for pid in live_children(zpid) if not idle_worker(pid)]


def zygote_work(zpid: int) -> dict[int, int]:
    """Each child's count of read syscalls: a call the zygote served shows
    as a new child or a worker that read (the call's stdin, at least)."""
    out = {}
    for child in live_children(zpid):
        try:
            io = Path(f"/proc/{child}/io").read_text()
        except OSError:
            continue
        out[child] = int(io.split("syscr:")[1].split()[0])
    return out


def add_env(binary: Path, cid: str) -> dict[str, str]:
    """A runtime's whole environment for an ADD without a netns (host-local)."""
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(Path(binary).parent),
    }

"""A private network + mount + PID namespace per test, so nothing reaches
the host and nothing outlives the test.

The sandbox is a sleeping process started with ``unshare --net --mount
--propagation private --pid --mount-proc``: it is pid 1 of its own PID
namespace, and /proc inside is that namespace's (the zygote reads its peers
there).  tmpfs is mounted over the directories CNI tools write to
(/run/netns, /var/lib/cni, /etc/netns, /etc/cni/net.d) and over
/run/dockline (the zygote's sockets, mode 0700 as the zygote makes it), and
every command of the test is run inside it with ``nsenter``, which forks it
into the PID namespace.  Killing pid 1 kills every process of the sandbox
(a zygote, a server started with ``ip netns exec``, ...), and with them go
the namespaces and all they hold: bridges, veths, firewall rules, the named
netns bind mounts.

Pids: the test process sees the host's pids; commands inside see the
sandbox's.  ``inner_pid`` and ``host_pid`` translate one into the other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

PRIVATE_DIRS = ("/run/netns", "/var/lib/cni", "/etc/netns", "/etc/cni/net.d", "/run/dockline")

# pid 1 ignores SIGCHLD so that the kernel reaps the orphans it inherits (a
# zygote's forked children, daemons whose parent exited) at once: no
# zombie of the sandbox lingers, pinning a pid a test may look at.
_BOOT = """
set -e
for d in {dirs}; do mkdir -p "$d"; mount -t tmpfs -o mode=0755 dockline-sandbox "$d"; done
chmod 0700 /run/dockline
ip link set lo up
echo ready
exec env --ignore-signal=CHLD sleep 100000
""".format(dirs=" ".join(PRIVATE_DIRS))

_NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
_SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


def _nspids(host_pid: int) -> list[int]:
    """The process's pid in each PID namespace, the host's first."""
    with open(f"/proc/{host_pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(p) for p in line.split()[1:]]
    raise LookupError(f"no NSpid for pid {host_pid}")


def _ns_inode(pid: int | str, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _cmdline(pid: int | str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


class SandboxLeak(AssertionError):
    """A process of the sandbox's network namespaces outlived it."""


class Sandbox:
    """One private network+mount+PID namespace; ``run`` executes inside it."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--pid",
                "--mount-proc",
                "--fork",
                "--kill-child",
                "sh",
                "-c",
                _BOOT,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self._proc.stdout.readline()
        if line.strip() != "ready":
            err = self._proc.stderr.read()
            self._proc.kill()
            raise RuntimeError(f"sandbox did not start: {line!r} {err}")
        # unshare --fork: the namespaces belong to the child of unshare,
        # pid 1 of the new PID namespace (host pid here).
        self.pid = self._find_sleeper()
        self.pidns = _ns_inode(self.pid, "pid")
        self._closed = False

    def _find_sleeper(self) -> int:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
            for pid in children.read_text().split():
                return int(pid)
            time.sleep(0.01)
        raise RuntimeError("sandbox child not found")

    def nsenter(self) -> list[str]:
        """The prefix that runs a command inside (for Popen).  nsenter forks
        to put the command in the PID namespace, so the Popen's pid is
        nsenter's: the command gets SIGKILL when nsenter dies (setpriv's
        parent-death signal), so killing the Popen still kills it."""
        return [
            _NSENTER,
            "-t",
            str(self.pid),
            "-n",
            "-m",
            "-p",
            "--",
            _SETPRIV,
            "--pdeathsig",
            "KILL",
            "--",
        ]

    def run(
        self,
        argv: list[str],
        *,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        check: bool = False,
        timeout: float = 60,
        text: bool = True,
    ) -> subprocess.CompletedProcess:
        """Run argv inside the sandbox.  ``env`` replaces the environment
        entirely, as a runtime does when it calls a plugin."""
        if env is None:
            env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        if isinstance(input, bytes):
            text = False
        return subprocess.run(
            self.nsenter() + list(argv),
            input=input,
            env=env,
            capture_output=True,
            check=check,
            timeout=timeout,
            text=text,
        )

    def sh(self, script: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return self.run(["sh", "-c", script], check=check, **kw)

    # --- pids seen from both sides -------------------------------------------

    def inner_pid(self, host_pid: int) -> int:
        """The pid a command inside the sandbox knows ``host_pid`` by."""
        if _ns_inode(host_pid, "pid") != self.pidns:
            raise LookupError(f"pid {host_pid} is not in the sandbox's PID namespace")
        return _nspids(host_pid)[-1]

    def host_pid(self, inner_pid: int) -> int:
        """The host pid of the process the sandbox knows as ``inner_pid``
        (e.g. printed by ``echo $$`` inside), for /proc/<pid> or kill from
        the test."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or _ns_inode(entry, "pid") != self.pidns:
                continue
            try:
                if _nspids(int(entry))[-1] == inner_pid:
                    return int(entry)
            except (OSError, LookupError):
                continue
        raise LookupError(f"no process {inner_pid} in the sandbox")

    def proc(self, inner_pid: int | str = "") -> Path:
        """/proc of the sandbox (or of one of its processes, by the pid the
        sandbox knows it by), seen from the test."""
        base = Path(f"/proc/{self.pid}/root/proc")
        return base / str(inner_pid) if inner_pid != "" else base

    # --- teardown --------------------------------------------------------------

    def _netns_inodes(self) -> set[int]:
        """The sandbox's network namespace and every one named under its
        private /run/netns (seen through the sleeper's root)."""
        inodes = set()
        own = _ns_inode(self.pid, "net")
        if own is None:
            return inodes
        inodes.add(own)
        named = f"/proc/{self.pid}/root/run/netns"
        try:
            names = os.listdir(named)
        except OSError:
            names = []
        for name in names:
            try:
                inodes.add(os.stat(os.path.join(named, name)).st_ino)
            except OSError:
                continue
        return inodes

    @staticmethod
    def _in_netns(inodes: set[int]) -> dict[int, str]:
        found = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _ns_inode(entry, "net") in inodes:
                found[int(entry)] = _cmdline(entry)
        return found

    def close(self) -> None:
        """Kill pid 1, which takes every process of the PID namespace with
        it; then check that no process is left in the sandbox's network
        namespaces (one that entered them without entering the PID
        namespace would keep them alive), kill it, and raise SandboxLeak."""
        if self._closed:
            return
        self._closed = True
        mine = self._netns_inodes()
        try:
            os.kill(self.pid, 9)
        except OSError:
            pass
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream:
                stream.close()
        if not mine:
            return
        # An nsenter whose command was just killed exits a moment later.
        deadline = time.monotonic() + 2
        left = self._in_netns(mine)
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = self._in_netns(mine)
        if left:
            for pid in left:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            listing = "; ".join(f"{pid}: {cmd[:200]}" for pid, cmd in sorted(left.items()))
            raise SandboxLeak(
                "processes of the sandbox's network namespaces outlived it (killed now): " + listing
            )

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

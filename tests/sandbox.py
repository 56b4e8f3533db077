"""A private network + mount namespace per test, so nothing reaches the host.

The sandbox is a sleeping process started with
``unshare --net --mount --propagation private``; tmpfs is mounted over the
directories CNI tools write to (/run/netns, /var/lib/cni, /etc/netns,
/etc/cni/net.d) and over /run/dockline (the zygote's sockets, mode 0700 as
the zygote makes it), and every command of the test is run inside it with
``nsenter``.  Killing the process drops both namespaces and everything in
them: bridges, veths, firewall rules, the named netns bind mounts.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

PRIVATE_DIRS = ("/run/netns", "/var/lib/cni", "/etc/netns", "/etc/cni/net.d", "/run/dockline")

_BOOT = """
set -e
for d in {dirs}; do mkdir -p "$d"; mount -t tmpfs -o mode=0755 dockline-sandbox "$d"; done
chmod 0700 /run/dockline
ip link set lo up
echo ready
exec sleep 100000
""".format(dirs=" ".join(PRIVATE_DIRS))


class Sandbox:
    """One private network+mount namespace; ``run`` executes inside it."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
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
        # unshare --fork: the namespaces belong to the child of unshare.
        self.pid = self._find_sleeper()

    def _find_sleeper(self) -> int:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
            for pid in children.read_text().split():
                return int(pid)
            time.sleep(0.01)
        raise RuntimeError("sandbox child not found")

    def nsenter(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "--"]

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

    def _netns_inodes(self) -> set[int]:
        """The sandbox's network namespace and every one named under its
        private /run/netns (seen through the sleeper's root)."""
        inodes = set()
        try:
            inodes.add(os.stat(f"/proc/{self.pid}/ns/net").st_ino)
        except OSError:
            return inodes
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

    def _stop_strays(self) -> None:
        """Stop processes left in the sandbox (e.g. a dockline zygote, a
        test's server in a container's namespace): they would keep its
        namespaces alive, and outlive the test, reparented to init."""
        mine = self._netns_inodes()
        if not mine:
            return
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.pid:
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in mine:
                    os.kill(int(entry), 9)
            except OSError:
                continue

    def close(self) -> None:
        self._stop_strays()
        try:
            os.kill(self.pid, 9)  # the sleeper that holds the namespaces
        except OSError:
            pass
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

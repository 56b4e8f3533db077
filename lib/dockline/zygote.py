"""A warm process that serves plugin calls by forking.

Safety rules:
- The socket is an abstract unix socket, which exists per network
  namespace, and its name carries the caller's mount namespace and user:
  a zygote only ever serves callers whose network and mount namespaces are
  its own, so its children see the same links and files the caller would.
- Both ends check the other's credentials (SO_PEERCRED): same user, and
  the client checks the server's mount namespace too, so a process that
  grabbed the name first cannot impersonate it.
- The name also carries the install stamp: a reinstall gets a new zygote;
  an old one exits after it has been idle for IDLE_SECONDS.
- Each call runs in a freshly forked child with the caller's environment,
  working directory and stdio, exactly as if the executable had run it.

Only the client half (``call``, ``start_in_background``) is on the path of
every plugin call, so it imports nothing but what it must.
"""
from __future__ import annotations

import os

import _socket
import _struct

from .cni import jsonio

AF_UNIX = 1
SOCK_SEQPACKET = 5
SOL_SOCKET = 1
SCM_RIGHTS = 1
SO_PEERCRED = 17
IDLE_SECONDS = 300
_MAX_REQUEST = 1 << 20
_INT3 = "3i"


def _mount_ns() -> str:
    return os.readlink("/proc/self/ns/mnt")


def address(stamp: str, mount_ns: str | None = None) -> bytes:
    mnt = (mount_ns or _mount_ns())[5:-1]  # 'mnt:[4026531840]' -> '4026531840'
    return f"\0dockline-zygote-{os.geteuid()}-{mnt}-{stamp}".encode()


def _peer(sock) -> tuple[int, int, int]:
    """(pid, uid, gid) of the other end."""
    return _struct.unpack(_INT3, sock.getsockopt(SOL_SOCKET, SO_PEERCRED, 12))


# --- client ----------------------------------------------------------------

def call(module: str, stamp: str) -> int | None:
    """Serve this call through the zygote; its exit status, or None when
    there is no (trustworthy) zygote and the caller must serve it."""
    mount_ns = _mount_ns()
    sock = _socket.socket(AF_UNIX, SOCK_SEQPACKET)
    try:
        try:
            sock.connect(address(stamp, mount_ns))
        except OSError:
            return None
        pid, uid, _ = _peer(sock)
        try:
            same_mnt = os.readlink(f"/proc/{pid}/ns/mnt") == mount_ns
        except OSError:
            same_mnt = False
        if uid != os.geteuid() or not same_mnt:
            return None
        request = jsonio.dumps({"module": module, "env": dict(os.environ), "cwd": os.getcwd()})
        try:
            sock.sendmsg([request.encode()],
                         [(SOL_SOCKET, SCM_RIGHTS, _struct.pack(_INT3, 0, 1, 2))])
        except OSError:
            return None  # nothing was sent: safe to serve it here
        reply = sock.recv(16)
        if len(reply) != 4:
            # The zygote died while serving us: the call may have half run,
            # so do not run it again; answer as a failed call.
            from .cni.errors import INTERNAL, CniError
            err = CniError(INTERNAL, "dockline zygote died while serving the call")
            os.write(1, (jsonio.dumps(err.to_dict("1.1.0")) + "\n").encode())
            return 1
        return _struct.unpack("i", reply)[0]
    finally:
        sock.close()


def start_in_background(stamp: str) -> None:
    """Start a zygote detached from the caller (own session, stdio on
    /dev/null: a runtime waiting for our stdout to close must not wait for
    it).  Failures are ignored: the next call just serves itself again."""
    try:
        devnull = os.open("/dev/null", os.O_RDWR)
        import sys
        argv = [sys.executable, "-I", "-S", "-c",
                "import sys; sys.path[:0] = %r; from dockline import zygote; zygote.serve(%r)"
                % (sys.path, stamp)]
        os.posix_spawn(sys.executable, argv, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                       file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                     (os.POSIX_SPAWN_DUP2, devnull, 1),
                                     (os.POSIX_SPAWN_DUP2, devnull, 2)],
                       setsid=True)
        os.close(devnull)
    except OSError:
        pass


# --- server ----------------------------------------------------------------

def _preload() -> None:
    """Import every plugin and the netlink layer, so children start warm."""
    from . import launch  # noqa: F401  (children serve through it)
    for name in ("bridge", "host_local", "static", "portmap"):
        try:
            __import__(name)
        except ImportError:
            continue
    try:
        _warm_netlink()
        from .netlink import netns
        netns.libc_setns()
    except Exception:
        pass  # a cold child is slower, not wrong


def _warm_netlink() -> None:
    """pyroute2 builds its attribute tables on a message class's first
    encode/decode; doing that once here saves every child ~3 ms.  Only
    reads (dumps) reach the kernel; the rest is encoded and dropped."""
    from .netlink import current_netns
    from .netlink._pyroute2 import ifaddrmsg, ifinfmsg, rtmsg
    with current_netns() as ns:
        ns.list_links()
        ns.list_addresses()
        ns.list_routes()
    peer = {"index": 0, "flags": 0, "change": 0, "attrs": [("IFLA_IFNAME", "warm1")]}
    for kind, data in (("veth", [("VETH_INFO_PEER", peer)]),
                       ("bridge", [("IFLA_BR_VLAN_FILTERING", 1)])):
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", "warm0"), ("IFLA_MTU", 1500), ("IFLA_MASTER", 1),
                        ("IFLA_ADDRESS", "02:00:00:00:00:01"), ("IFLA_NET_NS_FD", 0),
                        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind),
                                                     ("IFLA_INFO_DATA", {"attrs": data})]})]
        msg.encode()
    for family, local in ((2, "10.0.0.1"), (10, "fd00::1")):
        msg = ifaddrmsg()
        msg["family"] = family
        msg["attrs"] = [("IFA_LOCAL", local), ("IFA_ADDRESS", local), ("IFA_FLAGS", 0x200)]
        msg.encode()
        route = rtmsg()
        route["family"] = family
        route["attrs"] = [("RTA_DST", local), ("RTA_GATEWAY", local), ("RTA_OIF", 1),
                          ("RTA_PRIORITY", 1), ("RTA_METRICS", {"attrs": [("RTAX_MTU", 1400)]})]
        route.encode()


def _serve_child(conn, payload: bytes, fds: list[int]) -> None:
    code = 1
    import gc
    gc.disable()  # a short-lived child: collection would only copy pages
    try:
        request = jsonio.loads(payload)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        try:
            os.chdir(request["cwd"])
        except OSError:
            os.chdir("/")
        import sys
        from .launch import serve_here
        code = serve_here(request["module"])
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        try:
            conn.send(_struct.pack("i", code))
        finally:
            os._exit(code)


def serve(stamp: str) -> None:
    listener = _socket.socket(AF_UNIX, SOCK_SEQPACKET)
    try:
        listener.bind(address(stamp))
    except OSError:
        return  # another zygote got there first
    listener.listen(128)
    _preload()
    import gc
    gc.collect()
    gc.freeze()  # children then leave the preloaded objects' pages shared
    import select
    import signal
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    euid = os.geteuid()
    cmsg_space = _socket.CMSG_SPACE(3 * 4)
    while True:
        ready, _, _ = select.select([listener], [], [], IDLE_SECONDS)
        _reap()
        if not ready:
            return  # idle: let the namespaces we pin go
        try:
            fd, _ = listener._accept()
        except OSError:
            continue
        conn = _socket.socket(AF_UNIX, SOCK_SEQPACKET, 0, fd)
        try:
            if _peer(conn)[1] != euid:
                continue
            payload, ancdata, _, _ = conn.recvmsg(_MAX_REQUEST, cmsg_space)
            fds: list[int] = []
            for level, kind, data in ancdata:
                if level == SOL_SOCKET and kind == SCM_RIGHTS:
                    fds += list(_struct.unpack(f"{len(data) // 4}i", data[: len(data) // 4 * 4]))
            if len(fds) != 3 or not payload:
                for f in fds:
                    os.close(f)
                continue
            if os.fork() == 0:
                listener.close()
                _serve_child(conn, payload, fds)
            for f in fds:
                os.close(f)
        finally:
            conn.close()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

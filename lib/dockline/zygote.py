"""A warm process that serves plugin calls by forking.

Trust model (README, "the zygote's trust model"):
- The socket is a path in /run/dockline, a directory of the zygote's user
  that nobody else may write (checked, never followed through a symlink).
  A container with its own root file system does not even see it.
- One zygote serves exactly one (user, namespaces, cgroup, capabilities
  and confinement, install stamp): all of them are in the socket's name,
  and it is started by a caller, so it lives in the cgroup of the callers
  it serves (their limits and accounting apply to it and its children).
- The zygote trusts nothing a client says about itself.  A forked child
  reads the peer from the kernel (SO_PEERCRED and a pidfd from
  SO_PEERPIDFD, so the pid cannot be recycled under it), and serves only
  a peer in the same mount, pid, user, net and cgroup namespaces and the
  same cgroup, with the same uid/gids, seccomp state and security label,
  and every capability the zygote has: a caller who could have done all
  the child will do by itself.  The client checks the server the same way.
- Only dockline's own plugin modules can be asked for; the child takes the
  caller's environment (as bytes), stdio and working directory (as fds),
  umask and resource limits, and serves the call as the executable would.
- The accept loop only accepts and forks, so a silent client blocks no
  one; a call whose client is gone is not run, and a running call unwinds
  (ClientGone) when its client goes away (e.g. killed by the runtime's
  timeout).
- Anything untrustworthy on either side: the call is served in the
  executable's own process, as without a zygote.

Only the client half (``call``, ``start_in_background``) is on the path of
every plugin call, so it imports nothing but what it must.
"""

from __future__ import annotations

import _signal
import _socket
import _struct
import os

from . import launcher
from .plugins import TYPES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType

    from typing_extensions import TypeIs

    Socket = _socket.socket
    # (resource kind, (soft, hard)) pairs, as resource.prlimit gives them
    Rlimits = list[tuple[int, tuple[int, int]]]

# _socket, not socket: the module costs ~3 ms to import on every call.
AF_UNIX = _socket.AF_UNIX
SOCK_SEQPACKET = _socket.SOCK_SEQPACKET
SOL_SOCKET = _socket.SOL_SOCKET
SCM_RIGHTS = _socket.SCM_RIGHTS
SO_PEERCRED = _socket.SO_PEERCRED
SO_PEERPIDFD = getattr(_socket, "SO_PEERPIDFD", 77)  # Linux 6.5; Python 3.11 has no name
MSG_CMSG_CLOEXEC = _socket.MSG_CMSG_CLOEXEC
MSG_TRUNC, MSG_CTRUNC = _socket.MSG_TRUNC, _socket.MSG_CTRUNC
IDLE_SECONDS = 300
REQUEST_SECONDS = 5  # a client that sends nothing in time is dropped
MAX_CHILDREN = 256
RUN_DIR = "/run/dockline"
MODULES = tuple(m.encode() for m in TYPES.values())
MAGIC = b"dockline-zygote/2"
STARTED = b"S"  # from here on the call may have (half) run
REFUSED = b"R"  # followed by the reason; nothing ran
_MAX_REQUEST = 1 << 20
_INT3 = "3i"
# Call results for the executable: serve the call in-process, and start a
# zygote afterwards or not.
SERVE_HERE = -1
SERVE_AND_START = -2

_NAMESPACES = ("mnt", "pid", "user", "net", "cgroup")
_IDS = (b"Uid", b"Gid", b"Groups")
_CAPS = (b"CapInh", b"CapPrm", b"CapEff", b"CapBnd", b"CapAmb")
# Seccomp filters are inherited, not inspectable: the same count of them
# is taken as the same filters (both ends descend from one service).
_CONFINEMENT = (b"NoNewPrivs", b"Seccomp", b"Seccomp_filters")
_WANTED = _IDS + _CAPS + _CONFINEMENT + (b"Umask",)


class ClientGone(BaseException):
    """The client of a running call went away: unwind what was done.  A
    BaseException, so plugins' ``except Exception`` do not swallow it and
    their undo stacks (which catch BaseException) run."""


# --- facts from the kernel, for both ends ----------------------------------


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


class Facts:
    """What decides whether two processes may stand in for each other."""

    __slots__ = ("cgroup", "label", "ns", "status")

    def __init__(self, pid: str) -> None:
        base = "/proc/" + pid + "/"
        self.ns = [os.readlink(base + "ns/" + name) for name in _NAMESPACES]
        self.cgroup = _read(base + "cgroup")
        text = _read(base + "status")
        status: dict[bytes, bytes] = {}
        for key in _WANTED:  # a dozen finds beat splitting ~60 lines
            start = text.find(b"\n" + key + b":")
            if start >= 0:
                start += len(key) + 2
                status[key] = text[start : text.find(b"\n", start)].strip()
        self.status = status
        try:
            self.label = _read(base + "attr/current")
        except OSError:
            self.label = b""  # no LSM with a label to read

    def differs(self, mine: Facts) -> str | None:
        """Why this process (the peer) may not stand in for ``mine``: the
        same namespaces, cgroup, ids, seccomp and label, and at least my
        capabilities; None when it may."""
        for name, theirs, ours in zip(_NAMESPACES, self.ns, mine.ns, strict=True):
            if theirs != ours:
                return f"in another {name} namespace"
        if self.cgroup != mine.cgroup:
            return "in another cgroup"
        for key in _IDS:
            if self.status.get(key) != mine.status.get(key):
                return f"other {key.decode()}"
        for key in _CAPS:
            try:
                missing = int(mine.status.get(key, b"0"), 16) & ~int(self.status.get(key, b"0"), 16)
            except ValueError:
                return f"unreadable {key.decode()}"
            if missing:
                return f"fewer capabilities ({key.decode()})"
        for key in _CONFINEMENT:
            if self.status.get(key) != mine.status.get(key):
                return f"other {key.decode()}"
        if self.label != mine.label:
            return "another security label"
        return None


def socket_path(stamp: str, me: Facts | None = None) -> str:
    """/run/dockline/zygote-<euid>-<netns inode>-<digest>-<stamp>.sock, the
    digest covering every other fact the ends compare (namespaces, cgroup,
    ids, capabilities, confinement, label): callers that may share a
    zygote share a name, and a caller never finds a zygote started by one
    that is not its equal (e.g. a capability-less one)."""
    me = me or Facts("self")
    import _sha1

    status = me.status
    key = b"\0".join(
        [n.encode() for n in me.ns]
        + [me.cgroup, me.label]
        + [status.get(k, b"") for k in _IDS + _CAPS + _CONFINEMENT]
    )
    digest = _sha1.sha1(key).hexdigest()[:16]
    return f"{RUN_DIR}/zygote-{os.geteuid()}-{me.ns[3][5:-1]}-{digest}-{stamp}.sock"


def _peer_pid(sock: Socket) -> tuple[int, int, int | None]:
    """(pid, uid, pidfd) of the other end, from the kernel.  The pidfd pins
    the process the pid means: checked alive after its /proc was read, the
    facts read were that process's.  Before Linux 6.5, it is opened from
    the pid (a dead client's pid could be reused in between)."""
    pid, uid, _ = _struct.unpack(_INT3, sock.getsockopt(SOL_SOCKET, SO_PEERCRED, 12))
    try:
        pidfd = sock.getsockopt(SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None
    return pid, uid, pidfd


def _alive(pidfd: int | None) -> TypeIs[int]:
    if pidfd is None:
        return False
    try:
        _signal.pidfd_send_signal(pidfd, 0)
        return True
    except OSError:
        return False


def _peer_problem(sock: Socket, me: Facts) -> tuple[str | None, int, int | None, Facts | None]:
    """(why the peer is not trusted or None, pid, pidfd, its facts)."""
    pid, uid, pidfd = _peer_pid(sock)
    if uid != os.geteuid():
        return f"uid {uid}", pid, pidfd, None
    if pid <= 0:
        return "no peer process", pid, pidfd, None
    try:
        theirs = Facts(str(pid))
    except OSError as exc:
        return f"cannot inspect pid {pid}: {exc.strerror}", pid, pidfd, None
    problem = theirs.differs(me)
    if problem:
        return f"pid {pid} {problem}", pid, pidfd, theirs
    if not _alive(pidfd):
        return f"pid {pid} is gone", pid, pidfd, theirs
    return None, pid, pidfd, theirs


# --- client ----------------------------------------------------------------


def _say(path: str, what: str) -> None:
    try:
        os.write(
            2,
            f"dockline: zygote at {path} {what}; serving the call in this process\n".encode(
                errors="replace"
            ),
        )
    except OSError:
        pass


def call(module: str, stamp: str) -> int:
    """Serve this call through the zygote: its exit status, or SERVE_HERE /
    SERVE_AND_START when the caller must serve it (nothing has run)."""
    try:
        me = Facts("self")
        path = socket_path(stamp, me)
        sock = _socket.socket(AF_UNIX, SOCK_SEQPACKET)  # close-on-exec
    except OSError:
        return SERVE_HERE
    try:
        try:
            sock.connect(path)
        except FileNotFoundError:
            if not os.path.isdir(RUN_DIR) and not os.access(RUN_DIR.rsplit("/", 1)[0], os.W_OK):
                return SERVE_HERE  # e.g. rootless: no zygote could make its directory
            return SERVE_AND_START
        except ConnectionRefusedError:
            _say(path, "is not answering (a stale socket file)")
            return SERVE_AND_START
        except OSError:
            return SERVE_HERE  # e.g. not ours to reach: no zygote for us
        try:
            problem, _, pidfd, _ = _peer_problem(sock, me)
            if pidfd is not None:
                os.close(pidfd)
            if problem:
                _say(path, f"not trusted ({problem})")
                return SERVE_AND_START  # a real zygote takes the name back
            cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return SERVE_HERE  # nothing was sent
        try:
            env = os.environb
            request = b"\0".join([MAGIC, module.encode()] + [k + b"=" + v for k, v in env.items()])
            sock.sendmsg([request], [(SOL_SOCKET, SCM_RIGHTS, _struct.pack("4i", 0, 1, 2, cwd))])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we spoke: its reason is waiting for us
        except OSError:
            return SERVE_HERE  # nothing was sent (too big, a closed stdio fd...)
        finally:
            os.close(cwd)
        first = _receive(sock, 512)
        if first == STARTED:
            reply = _receive(sock, 16)
            if len(reply) == 4:
                status: int = _struct.unpack("i", reply)[0]
                return status
            # The zygote's child died while serving us: the call may have
            # half run, so do not run it again; answer as a failed call.
            from .cni import jsonio
            from .cni.errors import INTERNAL, CniError

            err = CniError(INTERNAL, "dockline zygote died while serving the call")
            os.write(1, (jsonio.dumps(err.to_dict("1.1.0")) + "\n").encode())
            return 1
        if first[:1] == REFUSED:
            _say(path, f"refused the call ({first[1:].decode(errors='replace')})")
            return SERVE_HERE
        return SERVE_AND_START  # it went away before starting the call
    finally:
        sock.close()


def _receive(sock: Socket, size: int) -> bytes:
    """The next message, b"" at the end.  A peer that closed with our
    request unread makes the first recv fail (ECONNRESET); what it sent
    before closing is still there to read."""
    for _ in range(2):
        try:
            return sock.recv(size)
        except ConnectionResetError:
            continue
        except OSError:
            break
    return b""


def start_in_background(stamp: str, paths: list[str]) -> None:
    """Start a zygote detached from the caller (own session, stdio on
    /dev/null: a runtime waiting for our stdout to close must not wait for
    it) in the caller's namespaces and cgroup.  Failures are ignored: the
    next call just serves itself again."""
    try:
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        import sys

        argv = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path[:0] = {sys.path!r}; "
            f"from dockline import zygote; zygote.serve({stamp!r}, {paths!r})",
        ]
        os.posix_spawn(
            sys.executable,
            argv,
            {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
            ],
            setsid=True,
        )
        os.close(devnull)
    except OSError:
        pass


# --- server ----------------------------------------------------------------


def _preload() -> None:
    """Import every plugin and the netlink layer, so children start warm."""
    from . import serve  # noqa: F401  (children serve through it)

    for name in MODULES:
        try:
            __import__(name.decode())
        except ImportError:
            continue
    # Imported only by networks with a ``cluster`` object; loading them here
    # opens no connection and saves such calls ~1.5 ms.
    for extra in ("dockline.cluster.bridge", "dockline.cluster.ipam"):
        try:
            __import__(extra)
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
    for kind, data in (
        ("veth", [("VETH_INFO_PEER", peer)]),
        ("bridge", [("IFLA_BR_VLAN_FILTERING", 1)]),
    ):
        msg = ifinfmsg()
        msg["attrs"] = [
            ("IFLA_IFNAME", "warm0"),
            ("IFLA_MTU", 1500),
            ("IFLA_MASTER", 1),
            ("IFLA_ADDRESS", "02:00:00:00:00:01"),
            ("IFLA_NET_NS_FD", 0),
            (
                "IFLA_LINKINFO",
                {"attrs": [("IFLA_INFO_KIND", kind), ("IFLA_INFO_DATA", {"attrs": data})]},
            ),
        ]
        msg.encode()
    for family, local in ((2, "10.0.0.1"), (10, "fd00::1")):
        msg = ifaddrmsg()
        msg["family"] = family
        msg["attrs"] = [("IFA_LOCAL", local), ("IFA_ADDRESS", local), ("IFA_FLAGS", 0x200)]
        msg.encode()
        route = rtmsg()
        route["family"] = family
        route["attrs"] = [
            ("RTA_DST", local),
            ("RTA_GATEWAY", local),
            ("RTA_OIF", 1),
            ("RTA_PRIORITY", 1),
            ("RTA_METRICS", {"attrs": [("RTAX_MTU", 1400)]}),
        ]
        route.encode()


class _Refuse(Exception):
    pass


def _read_request(conn: Socket, pidfd: int) -> tuple[bytes, list[bytes], list[int]]:
    """(module, environment entries, fds [stdin, stdout, stderr, cwd]) of a
    well-formed request, sent in time; _Refuse otherwise."""
    import select

    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    poller.register(pidfd, select.POLLIN)  # readable once the client exits
    deadline_ms = REQUEST_SECONDS * 1000
    events = dict(poller.poll(deadline_ms))
    if not events:
        raise _Refuse(f"no request within {REQUEST_SECONDS} s")
    if pidfd in events:
        raise _Refuse("client gone")
    payload, ancdata, flags, _ = conn.recvmsg(
        _MAX_REQUEST, _socket.CMSG_SPACE(4 * 4), MSG_CMSG_CLOEXEC
    )
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            fds += _struct.unpack(f"{len(data) // 4}i", data[: len(data) // 4 * 4])
    try:
        if flags & (MSG_TRUNC | MSG_CTRUNC) or len(fds) != 4:
            raise _Refuse("malformed request")
        parts = payload.split(b"\0")
        if len(parts) < 2 or parts[0] != MAGIC:
            raise _Refuse("malformed request")
        if parts[1] not in MODULES:
            raise _Refuse(f"module {parts[1][:64]!r} is not a dockline plugin")
    except _Refuse:
        for fd in fds:
            os.close(fd)
        raise
    return parts[1], parts[2:], fds


def _adopt(theirs: Facts, pid: int, env: list[bytes], fds: list[int], rlimits: Rlimits) -> bool:
    """Become the caller, as far as the call can tell: its umask, resource
    limits, working directory, environment and stdio.  False when a hard
    limit was lowered: without CAP_SYS_RESOURCE it cannot be raised again
    for a next caller."""
    import resource

    restorable = True
    for which, (soft, hard) in rlimits:
        if which == resource.RLIMIT_CPU:
            # The caller's CPU time limit counts from a fresh process's
            # zero: a worker has used some already.
            used = resource.getrusage(resource.RUSAGE_SELF)
            spent = int(used.ru_utime + used.ru_stime)
            if soft != resource.RLIM_INFINITY:
                soft += spent
            if hard != resource.RLIM_INFINITY:
                hard += spent
        now = resource.getrlimit(which)[1]
        if hard != now and (now == resource.RLIM_INFINITY or hard < now):
            restorable = False
        resource.setrlimit(which, (soft, hard))
    os.umask(int(theirs.status.get(b"Umask", b"022"), 8))
    os.fchdir(fds[3])  # a deleted directory is still a directory to be in
    environ = os.environ
    environ.clear()
    environb = os.environb
    for entry in env:
        key, sep, value = entry.partition(b"=")
        if sep and key:  # the entries putenv() can hold
            environb[key] = value
    for target in (0, 1, 2):
        os.dup2(fds[target], target)
    for fd in fds:
        os.close(fd)
    return restorable


def _arm_hangup(conn: Socket) -> None:
    """ClientGone as soon as the client's end closes: the kernel sends SIGIO
    to the socket's owner when the peer of an O_ASYNC socket hangs up.  The
    handler raises only where the call is waiting (for a lock); elsewhere
    (maybe between the kernel making an object and its undo being
    registered) it leaves ClientGone to the next safe point: see
    dockline.interrupt."""
    import fcntl
    import select

    from . import interrupt

    fd = conn.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLRDHUP)  # POLLHUP/POLLERR come anyway

    def on_sigio(signum: int, frame: FrameType | None) -> None:
        if poller.poll(0):
            _signal.signal(_signal.SIGIO, _signal.SIG_IGN)  # unwind in peace
            if interrupt.request(ClientGone):
                raise ClientGone()  # only waiting (for a lock): nothing half made

    _signal.signal(_signal.SIGIO, on_sigio)
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    if poller.poll(0):  # gone before we listened for it
        raise ClientGone()


def _serve_one(conn: Socket, me: Facts, rlimit_kinds: list[int]) -> bool:
    """Serve the call on ``conn``; whether this process is still fit to
    serve another (see _Worker): the call ran to its end, or was refused
    before anything of the caller's was adopted."""
    adopted = False
    pidfd: int | None = None
    try:
        try:
            problem, pid, pidfd, theirs = _peer_problem(conn, me)
            if problem or theirs is None:  # (no problem: its facts were read)
                raise _Refuse(problem or "no facts")
            import resource

            rlimits = [(r, resource.prlimit(pid, r)) for r in rlimit_kinds]
            if not _alive(pidfd):  # the limits read were the client's
                raise _Refuse("client gone")
            module, env, fds = _read_request(conn, pidfd)
            adopted = True
            restorable = _adopt(theirs, pid, env, fds, rlimits)
            _arm_hangup(conn)
            if not _alive(pidfd):
                raise _Refuse("client gone")
            os.close(pidfd)
            pidfd = None
            conn.send(STARTED)
        except (_Refuse, OSError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, _Refuse) else f"{type(exc).__name__}: {exc}"
            if pidfd is not None:
                os.close(pidfd)
            _refuse(conn, reason)
            return not adopted
    except BaseException:
        try:
            _refuse(conn, "internal error")
        except BaseException:
            pass
        return False
    try:
        import sys

        from .serve import serve_here

        code = serve_here(module.decode())
        _signal.signal(_signal.SIGIO, _signal.SIG_IGN)
        sys.stdout.flush()
        sys.stderr.flush()
        # The runtime reads our stdout until EOF: give it now.  Left to
        # the process's exit, the kernel may release a netfilter netlink
        # socket first, which waits for nf_tables' deferred cleanup (~15 ms
        # after a delete).
        fit = _let_go() and restorable
        conn.send(_struct.pack("i", code))
        return fit
    except BaseException:  # ClientGone, or the answer could not be given
        _signal.signal(_signal.SIGIO, _signal.SIG_IGN)
        return False


def _let_go() -> bool:
    """Give the caller its stdio back (the runtime reads our stdout until
    EOF), leave its directory and environment; whether this process is as
    it was before the call in these respects."""
    try:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        for fd in (0, 1, 2):
            try:
                os.close(fd)
            except OSError:
                pass
        return False  # a worker without stdio could hand a later fd 1 out
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # closes the caller's pipe
    finally:
        os.close(null)
    os.chdir("/")
    os.environ.clear()
    os.umask(0o077)
    return True


def _refuse(conn: Socket, reason: str) -> None:
    """Tell the client why (it then serves the call itself).  A request
    left unread would turn into ECONNRESET for the client, so whatever it
    sent is read and dropped first (its fds are close-on-exec: exiting
    closes them)."""
    try:
        conn.send(REFUSED + reason.encode(errors="replace")[:400])
        while conn.recvmsg(
            _MAX_REQUEST, _socket.CMSG_SPACE(4 * 4), MSG_CMSG_CLOEXEC | _socket.MSG_DONTWAIT
        )[0]:
            pass
    except OSError:
        pass


def _run_dir() -> int:
    """An fd of RUN_DIR, made if missing; PermissionError unless it is a
    real directory (not a symlink to one) of our user that nobody else can
    write."""
    try:
        os.mkdir(RUN_DIR, 0o700)
    except FileExistsError:
        pass
    fd = os.open(RUN_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        raise PermissionError(f"{RUN_DIR} is not ours alone")
    return fd


def _bind(stamp: str, me: Facts) -> tuple[Socket, str, int, int] | None:
    """(listener, path, its inode, lock fd), or None when another zygote
    holds the name.  The lock (a sibling file, flocked for the zygote's life) says
    who owns the name: its holder replaces whatever file is at the path
    (stale, or a squatter's) by renaming its freshly bound socket over it,
    so the path always names a listening socket or a dead file."""
    import fcntl

    path = socket_path(stamp, me)
    name = path.rsplit("/", 1)[1]
    dirfd = _run_dir()
    try:
        lock = os.open(
            name[:-5] + ".lock",
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dirfd,
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            return None  # another zygote serves this name
        fresh = name + ".new"
        try:
            os.unlink(fresh, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        listener = _socket.socket(AF_UNIX, SOCK_SEQPACKET)
        os.fchdir(dirfd)  # bind() takes no dirfd: bind relative to it
        try:
            listener.bind(fresh)
        finally:
            os.chdir("/")
        listener.listen(128)
        ino = os.stat(fresh, dir_fd=dirfd).st_ino
        os.rename(fresh, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        return listener, path, ino, lock
    finally:
        os.close(dirfd)


def serve(stamp: str, paths: list[str]) -> None:
    # Nothing of the starter's but its namespaces and cgroup: a runtime's
    # lock or pipe fd it forgot to mark close-on-exec must not be held for
    # minutes.  The environment is minimal already (start_in_background).
    os.closerange(3, 1 << 30)
    os.umask(0o077)
    try:
        if os.readlink("/proc/self") != str(os.getpid()):
            return  # a /proc of another pid namespace: peers' pids would lie
        me = Facts("self")
        bound = _bind(stamp, me)
    except OSError:
        return
    if bound is None:
        return
    listener, path, ino, lock = bound

    def leave() -> None:
        """Give the name back so the next call starts a fresh zygote
        rather than finding a dead socket."""
        try:
            if os.stat(path).st_ino == ino:
                os.unlink(path)
        except OSError:
            pass

    def on_term(signum: int, frame: FrameType | None) -> None:
        leave()
        os._exit(0)

    _signal.signal(_signal.SIGTERM, on_term)
    # Children delegate to dockline's own launchers in-process (see
    # dockline.launcher.is_own): they need the facts the launchers carry.
    launcher.CURRENT = launcher.facts_of_this_process(paths, stamp, True, False)
    _preload()
    import resource

    rlimit_kinds = sorted({getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")})
    import gc

    gc.collect()
    gc.freeze()  # children then leave the preloaded objects' pages shared
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    pool = _Pool(listener, lock, me, rlimit_kinds)
    pool.run()
    # Idle: let the namespaces we pin go.  Calls already queued are still
    # served.
    leave()
    pool.drain()


# --- workers -----------------------------------------------------------------
#
# Forking a child per call costs more CPU than most of the call: the fork,
# the child's writes to the zygote's pages (every object a call touches has
# its reference count written, so its page is copied: ~1,400 pages) and the
# exit.  So a child that served a call cleanly stays, as a worker, and the
# zygote hands it the next connection; its pages are its own by then.  A
# call changes only what _adopt sets (undone by _let_go) and what _Home
# checks; a worker that finds anything else changed, or whose call was cut
# short, exits instead.  Workers serve one zygote's callers, who are equals
# (see the trust model): a worker's memory of an earlier call is nothing
# the next caller could not have read or done itself.

IDLE = b"I"  # worker -> zygote: ready for the next connection
HANDED = b"C"  # zygote -> worker: this connection (SCM_RIGHTS) is yours
WORKERS_PER_CPU = 4  # calls wait on locks and on the kernel, not only on CPU
MAX_WORKERS = 32
WORKER_CALLS = 512  # then a fresh one: whatever a call leaves behind is bounded
WORKER_IDLE_SECONDS = 30.0  # an idle worker's private pages are given back
STUCK_SECONDS = 0.2  # no worker freed for this long: waiting calls get their own child


class _Pool:
    """The zygote's accept loop: a connection goes to an idle worker, to a
    new one while there are fewer than ``size``, or waits for the next
    worker to be free.  The loop never reads from a client, so no client
    can hold up the others; and calls waiting while no worker has come
    free for STUCK_SECONDS (all blocked: on a lock, say) get a child each,
    so waiting never turns into a deadlock."""

    def __init__(self, listener: Socket, lock: int, me: Facts, rlimit_kinds: list[int]) -> None:
        self.listener = listener
        self.lock = lock
        self.me = me
        self.rlimit_kinds = rlimit_kinds
        try:
            cpus = len(os.sched_getaffinity(0))
        except OSError:
            cpus = 1
        self.size = min(MAX_WORKERS, WORKERS_PER_CPU * max(cpus, 1))
        self.children: set[int] = set()  # every child: workers and one-call children
        self.workers: dict[int, Socket] = {}  # control socket's fd -> control socket
        self.idle: list[tuple[Socket, float]] = []  # (control socket, idle since): oldest first
        self.waiting: list[Socket] = []  # accepted connections, oldest first
        self.progress = 0.0  # when a worker last came free (or was made)

    # -- the loop

    def run(self) -> None:
        """Serve until IDLE_SECONDS pass without a call."""
        import select
        import time

        last_call = time.monotonic()
        while True:
            now = time.monotonic()
            timeout = last_call + IDLE_SECONDS - now
            if self.idle:
                timeout = min(timeout, self.idle[0][1] + WORKER_IDLE_SECONDS - now)
            if self.waiting:
                timeout = min(timeout, self.progress + STUCK_SECONDS - now)
            ready, _, _ = select.select(
                [self.listener, *self.workers.values()], [], [], max(timeout, 0.0)
            )
            _reap(self.children)
            now = time.monotonic()
            for sock in ready:
                if sock is self.listener:
                    conn = self._accept()
                    if conn is not None:
                        last_call = now
                        self._dispatch(conn, now)
                else:
                    self._heard(sock, now)
            while self.waiting and now - self.progress >= STUCK_SECONDS:
                self._fork(self.waiting.pop(0), worker=False)
            while self.idle and now - self.idle[0][1] >= WORKER_IDLE_SECONDS:
                self._retire(self.idle.pop(0)[0])
            if not ready and not self.waiting and now - last_call >= IDLE_SECONDS:
                return

    def drain(self) -> None:
        """After leaving: serve what is already queued, then let the
        workers go (each exits once its control socket closes)."""
        self.listener.setblocking(False)
        while True:
            conn = self._accept()
            if conn is None:
                break
            self._dispatch(conn, 0.0)
        while self.waiting:
            self._fork(self.waiting.pop(0), worker=False)
        for sock in list(self.workers.values()):
            self._retire(sock)

    # -- connections

    def _accept(self) -> Socket | None:
        try:
            # _socket's own accept (an fd; socket.py's wrapper is not
            # loaded), which typeshed leaves out
            fd, _ = self.listener._accept()  # type: ignore[attr-defined]
        except OSError:
            return None
        return _socket.socket(AF_UNIX, SOCK_SEQPACKET, 0, fd)

    def _dispatch(self, conn: Socket, now: float) -> None:
        while self.idle:
            ctl, _ = self.idle.pop()  # the most recently used: its pages are warm
            if self._hand(ctl, conn):
                return
        if len(self.workers) < self.size:
            self.progress = now
            self._fork(conn, worker=True)
        else:
            self.waiting.append(conn)

    def _hand(self, ctl: Socket, conn: Socket) -> bool:
        """Give ``conn`` to an idle worker; False (the worker is gone) when
        it could not take it."""
        try:
            ctl.sendmsg([HANDED], [(SOL_SOCKET, SCM_RIGHTS, _struct.pack("i", conn.fileno()))])
        except OSError:
            self._retire(ctl)
            return False
        conn.close()
        return True

    def _heard(self, ctl: Socket, now: float) -> None:
        try:
            message = ctl.recv(16)
        except OSError:
            message = b""
        if message != IDLE:  # it exited (or said something it should not)
            self._retire(ctl)
            return
        self.progress = now
        if self.waiting:
            conn = self.waiting.pop(0)
            if self._hand(ctl, conn):
                return
            self._dispatch(conn, now)
            return
        self.idle.append((ctl, now))

    def _retire(self, ctl: Socket) -> None:
        """Forget a worker; closing its control socket tells it to exit."""
        self.workers.pop(ctl.fileno(), None)
        self.idle = [(c, t) for c, t in self.idle if c is not ctl]
        ctl.close()

    # -- children

    def _fork(self, conn: Socket, worker: bool) -> None:
        """A child for ``conn``: a worker (which stays for more calls) or
        a child for this call only."""
        try:
            if len(self.children) >= MAX_CHILDREN:
                conn.setblocking(False)
                try:
                    conn.send(REFUSED + b"busy")
                except OSError:
                    pass
                return
            ctl = mine = None
            if worker:
                try:
                    ctl, mine = _socket.socketpair(AF_UNIX, SOCK_SEQPACKET)
                except OSError:
                    worker = False
            try:
                pid = os.fork()
            except OSError:  # e.g. the cgroup's pids limit: the caller serves itself
                if ctl is not None and mine is not None:
                    ctl.close()
                    mine.close()
                conn.setblocking(False)
                try:
                    conn.send(REFUSED + b"cannot fork")
                except OSError:
                    pass
                return
            if pid == 0:
                try:
                    # Nothing of the zygote's but what this child serves:
                    # another worker's control socket held here would
                    # keep that worker from seeing the zygote let it go.
                    self.listener.close()
                    os.close(self.lock)
                    for other in [*self.workers.values(), *self.waiting]:
                        other.close()
                    if ctl is not None:
                        ctl.close()
                    _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
                finally:
                    _work(conn, mine, self.me, self.rlimit_kinds)
            self.children.add(pid)
            if ctl is not None and mine is not None:
                mine.close()
                self.workers[ctl.fileno()] = ctl
        finally:
            conn.close()


class _Home:
    """What a worker must find as it was after each call: its network
    namespace, its threads (none but itself), its open files and no
    interruption pending.  Anything a call changes beyond what _let_go puts
    back shows here, and the worker then exits."""

    __slots__ = ("fds", "netns")

    def __init__(self) -> None:
        st = os.stat("/proc/thread-self/ns/net")
        self.netns = (st.st_dev, st.st_ino)
        self.fds = _fd_count()

    def same(self) -> bool:
        import _thread
        import time

        from . import interrupt

        for _ in range(50):  # a thread that signalled its end is ending
            if not _thread._count():
                break
            time.sleep(0.001)
        else:
            return False
        from .firewall import nfnl

        st = os.stat("/proc/thread-self/ns/net")
        kept = 0 if nfnl.kept_fd() is None else 1  # a socket kept for every call
        return (
            (st.st_dev, st.st_ino) == self.netns
            and _fd_count() - kept == self.fds
            and interrupt.quiet()
        )


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _work(conn: Socket, ctl: Socket | None, me: Facts, rlimit_kinds: list[int]) -> None:
    """A child's life: serve ``conn``; then, a worker (with ``ctl``), each
    connection the zygote hands over, while each call leaves it as it was."""
    try:
        import gc

        gc.disable()  # collection would only copy the zygote's pages
        home = None
        if ctl is not None:
            home = _Home()
            home.fds -= 1  # conn is open now, and closed after each call
        for _ in range(WORKER_CALLS):
            fit = _serve_one(conn, me, rlimit_kinds)
            conn.close()
            if ctl is None or home is None or not fit or not home.same():
                return
            gc.collect()  # a call's cycles (~130 KiB): off the caller's path
            _fresh_stdio()
            ctl.send(IDLE)
            handed = _handed(ctl)
            if handed is None:
                return
            conn = handed
    finally:
        os._exit(0)


def _handed(ctl: Socket) -> Socket | None:
    """The next connection from the zygote; None once it lets us go."""
    try:
        message, ancdata, flags, _ = ctl.recvmsg(16, _socket.CMSG_SPACE(4), MSG_CMSG_CLOEXEC)
    except OSError:
        return None
    fds = [
        fd
        for level, kind, data in ancdata
        if level == SOL_SOCKET and kind == SCM_RIGHTS
        for fd in _struct.unpack(f"{len(data) // 4}i", data[: len(data) // 4 * 4])
    ]
    if message != HANDED or flags & (MSG_TRUNC | MSG_CTRUNC) or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return None
    return _socket.socket(AF_UNIX, SOCK_SEQPACKET, 0, fds[0])


def _fresh_stdio() -> None:
    """New sys.stdin/stdout/stderr objects over fds 0-2 for the next call:
    nothing an earlier call left in a buffer (a failed flush, unread
    input) can reach it.  The ones replaced are finalized now, while fds
    0-2 are /dev/null."""
    import io
    import sys

    for name, fd in (("stdin", 0), ("stdout", 1), ("stderr", 2)):
        first = getattr(sys, "__" + name + "__")
        raw = io.FileIO(fd, "rb" if fd == 0 else "wb", closefd=False)
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        setattr(
            sys,
            name,
            io.TextIOWrapper(
                buffered,
                encoding=first.encoding,
                errors=first.errors,
                line_buffering=first.line_buffering,
            ),
        )


def _reap(children: set[int]) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)

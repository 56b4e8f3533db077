"""The zygote itself: a warm process that serves plugin calls in forked
children (see dockline.zygote for the trust model and the client half).

It listens on the socket, preloads every plugin, and hands each
connection to a worker (a child that serves call after call) or to a
child of its own; each peer is checked afresh by whoever serves it.
"""

from __future__ import annotations

import _signal
import _socket
import _struct
import os

from . import launcher
from .plugins import TYPES
from .zygote import (
    AF_UNIX,
    MAGIC,
    REFUSED,
    RUN_DIR,
    SCM_RIGHTS,
    SOCK_SEQPACKET,
    SOL_SOCKET,
    STARTED,
    ClientGone,
    Facts,
    alive,
    peer_problem,
    socket_path,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType

    Socket = _socket.socket
    # (resource kind, (soft, hard)) pairs, as resource.prlimit gives them
    Rlimits = list[tuple[int, tuple[int, int]]]

MSG_CMSG_CLOEXEC = _socket.MSG_CMSG_CLOEXEC
MSG_TRUNC, MSG_CTRUNC = _socket.MSG_TRUNC, _socket.MSG_CTRUNC
IDLE_SECONDS = 300
REQUEST_SECONDS = 5  # a client that sends nothing in time is dropped
MAX_CHILDREN = 256
MODULES = tuple(m.encode() for m in TYPES.values())
MAX_REQUEST = 1 << 20


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
        MAX_REQUEST, _socket.CMSG_SPACE(4 * 4), MSG_CMSG_CLOEXEC
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
    serve another (see _work): the call ran to its end, or was refused
    before anything of the caller's was adopted."""
    adopted = False
    pidfd: int | None = None
    try:
        try:
            problem, pid, pidfd, theirs = peer_problem(conn, me)
            if problem or theirs is None:  # (no problem: its facts were read)
                raise _Refuse(problem or "no facts")
            import resource

            rlimits = [(r, resource.prlimit(pid, r)) for r in rlimit_kinds]
            if not alive(pidfd):  # the limits read were the client's
                raise _Refuse("client gone")
            module, env, fds = _read_request(conn, pidfd)
            adopted = True
            restorable = _adopt(theirs, pid, env, fds, rlimits)
            _arm_hangup(conn)
            if not alive(pidfd):
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
        # The runtime reads our stdout until EOF: give it now, before the
        # status.  Left to a child's exit, the kernel may release a
        # netfilter netlink socket first, which waits for nf_tables'
        # deferred cleanup (~15 ms after a delete).
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
            MAX_REQUEST, _socket.CMSG_SPACE(4 * 4), MSG_CMSG_CLOEXEC | _socket.MSG_DONTWAIT
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

        # A thread that signalled its end is ending; one may still wait in
        # the kernel for a call whose effect was settled (a veth's
        # deletion: bridge DEL).
        for _ in range(200):
            if not _thread._count():
                break
            time.sleep(0.005)
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
                write_through=first.write_through,
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

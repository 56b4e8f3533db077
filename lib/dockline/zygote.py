"""A warm process that serves plugin calls in children it forked.

Trust model (README, "the zygote's trust model"):
- The socket is a path in /run/dockline, a directory of the zygote's user
  that nobody else may write (checked, never followed through a symlink).
  A container with its own root file system does not even see it.
- One zygote serves exactly one (user, namespaces, cgroup, capabilities
  and confinement, install stamp): all of them are in the socket's name,
  and it is started by a caller, so it lives in the cgroup of the callers
  it serves (their limits and accounting apply to it and its children).
- The zygote trusts nothing a client says about itself.  The child that
  serves a connection (a worker that served earlier calls, or one forked
  for it) reads the peer from the kernel (SO_PEERCRED and a pidfd from
  SO_PEERPIDFD, so the pid cannot be recycled under it), and serves only
  a peer in the same mount, pid, user, net and cgroup namespaces and the
  same cgroup, with the same uid/gids, seccomp state and security label,
  and every capability the zygote has: a caller who could have done all
  the child will do by itself.  The client checks the server the same way.
  Callers of one zygote are equals, so what a worker keeps of an earlier
  call is nothing the next caller could not have read or done itself.
- Only dockline's own plugin modules can be asked for; the child takes the
  caller's environment (as bytes), stdio and working directory (as fds),
  umask and resource limits, and serves the call as the executable would.
- The accept loop only accepts and hands over, so a silent client blocks
  no one; a call whose client is gone is not run, and a running call unwinds
  (ClientGone) when its client goes away (e.g. killed by the runtime's
  timeout).
- Anything untrustworthy on either side: the call is served in the
  executable's own process, as without a zygote.

This module is what both ends share and the client half (``call``,
``start_in_background``), which is on the path of every plugin call: it
imports only built-in modules (``posix``, not ``os``, whose import costs
~1.3 ms).  The server is dockline.zygote_server.
"""

import _signal
import _socket
import _struct
import posix

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing_extensions import TypeIs

    Socket = _socket.socket

# _socket, not socket: the module costs ~3 ms to import on every call.
AF_UNIX = _socket.AF_UNIX
SOCK_SEQPACKET = _socket.SOCK_SEQPACKET
SOL_SOCKET = _socket.SOL_SOCKET
SCM_RIGHTS = _socket.SCM_RIGHTS
SO_PEERCRED = _socket.SO_PEERCRED
SO_PEERPIDFD = getattr(_socket, "SO_PEERPIDFD", 77)  # Linux 6.5; Python 3.11 has no name
RUN_DIR = "/run/dockline"
MAGIC = b"dockline-zygote/2"
STARTED = b"S"  # from here on the call may have (half) run
REFUSED = b"R"  # followed by the reason; nothing ran
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
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        return posix.read(fd, 65536)
    finally:
        posix.close(fd)


class Facts:
    """What decides whether two processes may stand in for each other."""

    __slots__ = ("cgroup", "label", "ns", "status")

    def __init__(self, pid: str) -> None:
        base = "/proc/" + pid + "/"
        self.ns = [posix.readlink(base + "ns/" + name) for name in _NAMESPACES]
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

    def differs(self, mine: "Facts") -> str | None:
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
    return f"{RUN_DIR}/zygote-{posix.geteuid()}-{me.ns[3][5:-1]}-{digest}-{stamp}.sock"


def _peer_pid(sock: "Socket") -> tuple[int, int, int | None]:
    """(pid, uid, pidfd) of the other end, from the kernel.  The pidfd pins
    the process the pid means: checked alive after its /proc was read, the
    facts read were that process's.  Before Linux 6.5, it is opened from
    the pid (a dead client's pid could be reused in between)."""
    pid, uid, _ = _struct.unpack(_INT3, sock.getsockopt(SOL_SOCKET, SO_PEERCRED, 12))
    try:
        pidfd = sock.getsockopt(SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        try:
            pidfd = posix.pidfd_open(pid)
        except OSError:
            pidfd = None
    return pid, uid, pidfd


def alive(pidfd: int | None) -> "TypeIs[int]":
    if pidfd is None:
        return False
    try:
        _signal.pidfd_send_signal(pidfd, 0)
        return True
    except OSError:
        return False


def peer_problem(sock: "Socket", me: Facts) -> tuple[str | None, int, int | None, Facts | None]:
    """(why the peer is not trusted or None, pid, pidfd, its facts)."""
    pid, uid, pidfd = _peer_pid(sock)
    if uid != posix.geteuid():
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
    if not alive(pidfd):
        return f"pid {pid} is gone", pid, pidfd, theirs
    return None, pid, pidfd, theirs


# --- client ----------------------------------------------------------------


def _is_dir(path: str) -> bool:
    try:
        return posix.stat(path).st_mode & 0o170000 == 0o040000
    except OSError:
        return False


def _say(path: str, what: str) -> None:
    try:
        posix.write(
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
            if not _is_dir(RUN_DIR) and not posix.access(RUN_DIR.rsplit("/", 1)[0], posix.W_OK):
                return SERVE_HERE  # e.g. rootless: no zygote could make its directory
            return SERVE_AND_START
        except ConnectionRefusedError:
            _say(path, "is not answering (a stale socket file)")
            return SERVE_AND_START
        except OSError:
            return SERVE_HERE  # e.g. not ours to reach: no zygote for us
        try:
            problem, _, pidfd, _ = peer_problem(sock, me)
            if pidfd is not None:
                posix.close(pidfd)
            if problem:
                _say(path, f"not trusted ({problem})")
                return SERVE_AND_START  # a real zygote takes the name back
            cwd = posix.open(".", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except OSError:
            return SERVE_HERE  # nothing was sent
        try:
            env = posix.environ  # bytes to bytes
            request = b"\0".join([MAGIC, module.encode()] + [k + b"=" + v for k, v in env.items()])
            sock.sendmsg([request], [(SOL_SOCKET, SCM_RIGHTS, _struct.pack("4i", 0, 1, 2, cwd))])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we spoke: its reason is waiting for us
        except OSError:
            return SERVE_HERE  # nothing was sent (too big, a closed stdio fd...)
        finally:
            posix.close(cwd)
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
            posix.write(1, (jsonio.dumps(err.to_dict("1.1.0")) + "\n").encode())
            return 1
        if first[:1] == REFUSED:
            _say(path, f"refused the call ({first[1:].decode(errors='replace')})")
            return SERVE_HERE
        return SERVE_AND_START  # it went away before starting the call
    finally:
        sock.close()


def _receive(sock: "Socket", size: int) -> bytes:
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
        devnull = posix.open("/dev/null", posix.O_RDWR | posix.O_CLOEXEC)
        import sys

        argv = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path[:0] = {sys.path!r}; "
            f"from dockline import zygote_server; zygote_server.serve({stamp!r}, {paths!r})",
        ]
        posix.posix_spawn(
            sys.executable,
            argv,
            {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            file_actions=[
                (posix.POSIX_SPAWN_DUP2, devnull, 0),
                (posix.POSIX_SPAWN_DUP2, devnull, 1),
                (posix.POSIX_SPAWN_DUP2, devnull, 2),
            ],
            setsid=True,
        )
        posix.close(devnull)
    except OSError:
        pass

"""Network namespaces: a handle with one rtnetlink socket bound inside.

A netlink socket stays in the netns it was created in, so ``open_netns``
switches the calling thread into the target namespace (setns), creates the
socket there and switches straight back.  All operations then go through
that socket, from the original namespace; only sysctl access and code run
under ``Netns.entered()`` really execute inside the target.

    with current_netns() as host, open_netns("/run/netns/c1") as ns:
        br = host.ensure_bridge("cni0")
        eth0, veth = ns.add_veth("eth0", peer_ns=host, mtu=1500)
        host.set_master(veth, br)
        host.link_up(veth)
        with ns.batch() as b:
            b.add_address(eth0, "10.22.0.5/16")
            b.link_up(eth0)
            b.add_route("default", gateway="10.22.0.1", link=eth0)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from errno import EINVAL, ENOENT

from .addrs import AddressOps, AddressWriteOps
from .errors import NetlinkError, NetnsError
from .interfaces import LinkOps, LinkWriteOps
from .routes import RouteOps, RouteWriteOps
from .rtnl import Result, RtnlRequest, RtnlSocket
from .sysctl import sysctl_get, sysctl_set

__all__ = ["Batch", "Netns", "check_netns", "current_netns", "open_netns"]

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)
THREAD_NETNS = "/proc/thread-self/ns/net"


class Batch(LinkWriteOps, AddressWriteOps, RouteWriteOps):
    """Write operations queued and sent to the kernel in one sendmsg when
    the ``with`` block ends (nothing is sent if it raises).  The kernel runs
    them in order; every one is acked, and the first failure is raised after
    all acks are in.  Names given where an ifindex is needed (addresses,
    routes, masters) are looked up when queued."""

    def __init__(self, rtnl: RtnlSocket) -> None:
        self._rtnl = rtnl
        self._requests: list[RtnlRequest] = []

    def _submit(self, request: RtnlRequest) -> None:
        self._requests.append(request)

    def commit(self) -> None:
        requests, self._requests = self._requests, []
        if requests:
            self._rtnl.execute(requests)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._requests = []


class Netns(LinkOps, AddressOps, RouteOps):
    """A network namespace: its fd, and an rtnetlink socket bound in it.
    Link/address/route operations are the methods of LinkOps, AddressOps
    and RouteOps."""

    def __init__(self, fd: int, path: str, rtnl: RtnlSocket) -> None:
        self.fd = fd
        self.path = path
        self._rtnl = rtnl
        # /proc/sys directories opened in this netns, by path: a device's
        # directory (conf/eth0) is looked up once, not once per sysctl.
        # Every container netns has an eth0, and the kernel's lookup of that
        # name walks the cached entries of all of them: O(netns) per lookup.
        self._sysctl_dirs: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Netns {self.path} fd={self.fd}>"

    def close(self) -> None:
        if self.fd >= 0:
            self._rtnl.close()
            os.close(self.fd)
            self.fd = -1
        for dfd in self._sysctl_dirs.values():
            os.close(dfd)
        self._sysctl_dirs.clear()

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, request: RtnlRequest) -> None:
        self._rtnl.execute([request])

    def execute(self, requests: Sequence[RtnlRequest]) -> list[Result]:
        """Run requests built by the caller in this netns, now and in one
        sendmsg, with their results (RtnlSocket.execute): what a peer of
        another Netns uses, e.g. to read a veth end it just created here."""
        return self._rtnl.execute(requests)

    def batch(self) -> Batch:
        """``with ns.batch() as b: b.add_address(...); b.add_route(...)``"""
        return Batch(self._rtnl)

    @contextlib.contextmanager
    def entered(self) -> Iterator[Netns]:
        """Run the block with the calling thread inside this netns (no-op if
        it already is), switching back afterwards."""
        with _entered(self.fd, self.path):
            yield self

    def sysctl_get(self, name: str) -> str:
        with self.entered():
            return sysctl_get(name, self._sysctl_dir)

    def sysctl_set(self, name: str, value: str | int) -> None:
        with self.entered():
            sysctl_set(name, value, self._sysctl_dir)

    def _sysctl_dir(self, path: str) -> int:
        """An fd of /proc/sys directory ``path`` in this netns (entered)."""
        dfd = self._sysctl_dirs.get(path)
        if dfd is None:
            dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._sysctl_dirs[path] = dfd
        return dfd


def open_netns(path: str, *, allow_current: bool = False) -> Netns:
    """Open the network namespace at ``path`` (/run/netns/NAME,
    /proc/PID/ns/net, ...) with a netlink socket bound inside it.

    Raises NetnsError if the path is missing, is not a network namespace,
    or (unless ``allow_current``) is the namespace we are in.
    """
    fd = _open_checked(path, allow_current)
    try:
        with _entered(fd, path):
            rtnl = RtnlSocket()
    except BaseException:
        os.close(fd)
        raise
    return Netns(fd, path, rtnl)


def current_netns() -> Netns:
    """The network namespace of the calling thread (the host side)."""
    fd = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return Netns(fd, THREAD_NETNS, RtnlSocket())
    except BaseException:
        os.close(fd)
        raise


def check_netns(path: str) -> None:
    """Raise NetnsError unless ``path`` is a network namespace other than
    the current one."""
    os.close(_open_checked(path, False))


def _open_checked(path: str, allow_current: bool) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsError(ENOENT, f"netns {path!r} does not exist") from None
    except OSError as e:
        raise NetnsError(e.errno, f"cannot open netns {path!r}: {e.strerror}") from None
    try:
        import fcntl

        try:
            nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:
            raise NetnsError(EINVAL, f"{path!r} is not a namespace (not a nsfs file)") from None
        if nstype != CLONE_NEWNET:
            raise NetnsError(EINVAL, f"{path!r} is not a network namespace")
        if not allow_current and _is_current(fd):
            raise NetnsError(EINVAL, f"netns {path!r} is the current network namespace")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_current(fd: int) -> bool:
    mine, theirs = os.stat(THREAD_NETNS), os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


@contextlib.contextmanager
def _entered(fd: int, path: str) -> Iterator[None]:
    if _is_current(fd):
        yield
        return
    home = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(fd)
        except OSError as e:
            raise NetnsError(e.errno, f"cannot enter netns {path!r}: {e.strerror}") from None
        try:
            yield
        finally:
            try:
                _setns(home)
            except OSError as e:  # we would go on in the wrong namespace
                raise NetlinkError(
                    e.errno, f"cannot return from netns {path!r}: {e.strerror}"
                ) from None
    finally:
        os.close(home)


# (setns, get_errno), loaded once per process
_libc_setns: list[tuple[Callable[[int, int], int], Callable[[], int]]] = []


def libc_setns() -> tuple[Callable[[int, int], int], Callable[[], int]]:
    """libc's setns through ctypes (Python < 3.12 has no os.setns); loading
    ctypes costs ~2 ms, so a warm zygote does it once for all its children."""
    if not _libc_setns:
        import ctypes

        _libc_setns.append((ctypes.CDLL(None, use_errno=True).setns, ctypes.get_errno))
    return _libc_setns[0]


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    setns, get_errno = libc_setns()
    if setns(fd, CLONE_NEWNET) != 0:
        err = get_errno()
        raise OSError(err, os.strerror(err))

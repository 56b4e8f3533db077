"""A small synchronous NETLINK_ROUTE socket.

pyroute2's message classes encode the requests and decode the replies; the
socket, sequence numbers, acks and errors are handled here, without
pyroute2's socket machinery (threads, buffers, marshal registry).  Several
requests can go to the kernel in one ``sendto``: the kernel runs them in
order and answers each with its own ack, which we collect before raising
the first error that was not tolerated.
"""

import socket
import struct
from collections.abc import Sequence
from errno import EINTR, EINVAL, EMSGSIZE, ENODEV, EOPNOTSUPP
from typing import Any, NamedTuple

from .errors import NetlinkError

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12  # Linux 4.20: dump requests' filters are applied by the kernel

NLMSG_ERROR = 2
NLMSG_DONE = 3

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: the request's payload is not echoed
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR: extended ack attributes follow
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

_HEADER = struct.Struct("=IHHII")
_ERRNO = struct.Struct("=i")
_RECV_SIZE = 1 << 16  # dump chunks are at most 32 KiB
_DUMP_RETRIES = 5


class RtnlRequest(NamedTuple):
    """One netlink request: a pyroute2 message plus what to do with errors.

    ``what`` describes the operation for error messages; errnos listed in
    ``tolerate`` are not raised (the result still records them).
    """

    msg_type: int
    flags: int
    msg: Any  # a pyroute2 nlmsg (ifinfmsg, ifaddrmsg, rtmsg)
    what: str
    tolerate: frozenset[int] = frozenset()

    @property
    def is_dump(self) -> bool:
        return self.flags & NLM_F_DUMP == NLM_F_DUMP


class Result(NamedTuple):
    error: int  # 0 or a positive errno
    replies: list[Any]  # decoded pyroute2 messages (gets and dumps)


class _Pending:
    __slots__ = ("detail", "error", "interrupted", "replies", "request")

    def __init__(self, request: RtnlRequest) -> None:
        self.request = request
        self.error = 0
        self.detail: str | None = None
        self.replies: list[bytes] = []
        self.interrupted = False


class RtnlSocket:
    """A NETLINK_ROUTE socket bound in the netns it was created in."""

    def __init__(self) -> None:
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)  # kernel error strings
            sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # don't echo requests in acks
            sock.bind((0, 0))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._seq = 0
        self._buf = bytearray(_RECV_SIZE)

    def close(self) -> None:
        self._sock.close()

    def execute(self, requests: Sequence[RtnlRequest]) -> list[Result]:
        """Send ``requests`` (no dumps) in one datagram, wait for every ack,
        then raise NetlinkError for the first failure that its request does
        not tolerate.  Replies to get requests are decoded into the result.
        """
        pending: dict[int, _Pending] = {}
        chunks = []
        for request in requests:
            if request.is_dump:
                raise ValueError("dumps go through RtnlSocket.dump()")
            seq = self._next_seq()
            chunks.append(
                _encode(
                    request.msg, request.msg_type, request.flags | NLM_F_REQUEST | NLM_F_ACK, seq
                )
            )
            pending[seq] = _Pending(request)
        order = list(pending.values())
        self._sock.sendto(b"".join(chunks), (0, 0))
        self._receive(pending)

        failure = None
        for p in order:
            if p.error and p.error not in p.request.tolerate and failure is None:
                failure = NetlinkError.from_errno(p.error, p.request.what, p.detail)
        if failure is not None:
            raise failure
        return [Result(p.error, _decode(p.request.msg, p.replies)) for p in order]

    def request(self, request: RtnlRequest) -> Result:
        return self.execute([request])[0]

    def dump(self, request: RtnlRequest, *, filtered: bool = False) -> list[Any]:
        """Run a dump request; restart it if the kernel flags it as
        interrupted (the table changed while it was being read).

        ``filtered``: the request's filter (ifindex, RTA_OIF, RTA_TABLE) is
        to be applied by the kernel, so only matching objects are sent and
        decoded, whatever else the netns holds.  Asked with strict checking
        for this request only; a kernel without it (or refusing the filter)
        gets the plain dump, and callers filter the replies themselves.
        """
        if filtered:
            try:
                self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
            except OSError:
                return self._dump(request)
            try:
                return self._dump(request)
            except NetlinkError as exc:
                if exc.errno not in (EINVAL, ENODEV, EOPNOTSUPP):
                    raise
            finally:
                self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 0)
        return self._dump(request)

    def _dump(self, request: RtnlRequest) -> list[Any]:
        for _ in range(_DUMP_RETRIES):
            seq = self._next_seq()
            pending = _Pending(request)
            self._sock.sendto(
                _encode(
                    request.msg, request.msg_type, request.flags | NLM_F_REQUEST | NLM_F_DUMP, seq
                ),
                (0, 0),
            )
            self._receive({seq: pending})
            if pending.error and pending.error not in request.tolerate:
                raise NetlinkError.from_errno(pending.error, request.what, pending.detail)
            if not pending.interrupted:
                return _decode(request.msg, pending.replies)
        raise NetlinkError.from_errno(EINTR, request.what, "dump kept being interrupted")

    def _next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def _receive(self, pending: dict[int, _Pending]) -> None:
        """Read until every entry of ``pending`` got its ack / error / done."""
        buf = self._buf
        with memoryview(buf) as view:
            while pending:
                size = self._sock.recv_into(buf, _RECV_SIZE, socket.MSG_TRUNC)
                if size > _RECV_SIZE:
                    raise NetlinkError(EMSGSIZE, f"netlink reply of {size} bytes truncated")
                offset = 0
                while offset + 16 <= size:
                    length, msg_type, flags, seq, _pid = _HEADER.unpack_from(buf, offset)
                    if length < 16:
                        break
                    entry = pending.get(seq)  # others: stale answers to an aborted call
                    if entry is not None:
                        if flags & NLM_F_DUMP_INTR:
                            entry.interrupted = True
                        if msg_type in (NLMSG_ERROR, NLMSG_DONE):
                            code = -_ERRNO.unpack_from(buf, offset + 16)[0] if length >= 20 else 0
                            if code > 0:
                                entry.error = code
                                if msg_type == NLMSG_ERROR and flags & NLM_F_ACK_TLVS:
                                    entry.detail = _extack_message(buf, offset, length, flags)
                            del pending[seq]
                        else:
                            entry.replies.append(bytes(view[offset : offset + length]))
                    offset += (length + 3) & ~3


def _encode(msg: Any, msg_type: int, flags: int, seq: int) -> bytes:
    msg.reset()  # a dump being retried is encoded again: start from an empty buffer
    msg["header"] = {"type": msg_type, "flags": flags, "sequence_number": seq, "pid": 0}
    msg.encode()
    data: bytes = msg.data
    return data


def _decode(template: Any, replies: list[bytes]) -> list[Any]:
    """Decode raw replies with the class of the request message
    (attributes are decoded lazily by pyroute2, on access)."""
    cls = type(template)
    decoded = []
    for data in replies:
        msg = cls(data)
        msg.decode()
        decoded.append(msg)
    return decoded


def _extack_message(buf: bytearray, offset: int, length: int, flags: int) -> str | None:
    """The NLMSGERR_ATTR_MSG string of an extended ack, if any."""
    # nlmsghdr(16) + error(4) + the offending request's header (16; the
    # payload is left out since we set NETLINK_CAP_ACK), then TLVs.
    pos = offset + 36
    end = offset + length
    if not flags & NLM_F_CAPPED:  # the full request is echoed: skip it
        pos = offset + 20 + _HEADER.unpack_from(buf, offset + 20)[0]
        pos = (pos + 3) & ~3
    while pos + 4 <= end:
        nla_len, nla_type = struct.unpack_from("=HH", buf, pos)
        if nla_len < 4:
            break
        if nla_type & 0x3FFF == NLMSGERR_ATTR_MSG:
            return bytes(buf[pos + 4 : pos + nla_len]).rstrip(b"\0").decode(errors="replace")
        pos += (nla_len + 3) & ~3
    return None

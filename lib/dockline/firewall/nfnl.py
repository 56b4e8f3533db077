"""nftables over netfilter netlink, in-process: the few messages a plugin
call needs, so ADD and DEL cost a socket round trip, not an ``nft``
process (~20 ms) nor a listing of the ruleset.

Scope, on purpose small:

* ``Batch``: one transaction (all of it happens or none of it) of
  ``add_table`` / ``add_chain`` (a regular chain, no hook) /
  ``delete_chain`` / ``add_elements`` (``create=True``: a key already
  present is an error, ``EEXIST``) / ``delete_elements``;
  ``Batch.commit()`` raises ``NfnlError`` (``.errno``) on the first failure.
  ``delete_elements_missing_ok`` removes what is there of a list of keys.
* ``get_table`` / ``get_chain`` / ``get_set`` / ``get_element``: one
  object by its name or key (``None`` when it does not exist).
* ``dump_elements``: every element of one set (GC and inspection only:
  the one O(N) read).
* ``ensure``: structure (tables, chains with hooks and rules, typed sets)
  is written once with one ``nft -f`` when a probe object is missing, as
  rules are nft's language, not worth re-encoding here.
* Key and data encoders (``ipv4``, ``ipv6``, ``ifname``, ``proto``,
  ``port``, ``concat``) and ``comment`` for an element's user data
  (shown by nft as ``comment "..."``).

Families are nft's: ``INET``, ``IPV4``, ``IPV6``, ``BRIDGE``.  Names are
checked (``tokens``) before they go on the wire.
"""

from __future__ import annotations

import _socket
import _struct

from . import tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# nfgenmsg families (NFPROTO_*)
INET, IPV4, BRIDGE, IPV6 = 1, 2, 7, 10
FAMILIES = {"inet": INET, "ip": IPV4, "ip6": IPV6, "bridge": BRIDGE}

_NETLINK_NETFILTER = 12
_SUBSYS = 10 << 8  # NFNL_SUBSYS_NFTABLES
_NEWTABLE, _GETTABLE = 0, 1
_NEWCHAIN, _GETCHAIN, _DELCHAIN = 3, 4, 5
_GETRULE = 7
_GETSET = 10
_NEWSETELEM, _GETSETELEM, _DELSETELEM = 12, 13, 14
_BATCH_BEGIN, _BATCH_END = 0x10, 0x11
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_F_REQUEST, _F_MULTI, _F_ACK = 0x1, 0x2, 0x4
_F_DUMP = 0x300
_F_EXCL, _F_CREATE = 0x200, 0x400
_NESTED = 0x8000
ENOENT, EEXIST, EBUSY = 2, 17, 16

# verdict codes (NFTA_VERDICT_CODE)
ACCEPT, DROP, CONTINUE, JUMP, GOTO, RETURN = 1, 0, -1, -3, -4, -5


class NfnlError(OSError):
    """The kernel refused a request; ``errno`` is its error number."""


# --- encoding --------------------------------------------------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    data = _struct.pack("HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _nest(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | _NESTED, b"".join(attrs))


def _name(value: str) -> bytes:
    return value.encode() + b"\0"


def _u32(value: int) -> bytes:
    return _struct.pack(">I", value & 0xFFFFFFFF)


def ipv4(address: object) -> bytes:
    """An ``ipaddress.IPv4Address`` (or its text) as a key part."""
    return tokens.address(str(address), "address").packed


def ipv6(address: object) -> bytes:
    return tokens.address(str(address), "address").packed


_PROTOS = {"tcp": 6, "udp": 17, "sctp": 132}


def proto(name: str) -> bytes:
    """inet_proto: one byte (padded to 4 by ``concat``)."""
    return bytes((_PROTOS[name],))


def ifname(name: str, what: str = "interface name") -> bytes:
    """An ifname key: the name, NUL-padded to IFNAMSIZ."""
    return tokens.ifname(name, what).encode().ljust(16, b"\0")


def port(number: int) -> bytes:
    """inet_service: two bytes, network order."""
    return _struct.pack(">H", tokens.port(number))


def concat(*parts: bytes) -> bytes:
    """A concatenation key: every part padded to a 32-bit register."""
    return b"".join(p + b"\0" * (-len(p) % 4) for p in parts)


def comment(text: str) -> bytes:
    """Element user data holding a comment, as nft writes and shows it."""
    raw = text.encode() + b"\0"
    if len(raw) > 255:
        raise ValueError("comment too long")
    return bytes((0, len(raw))) + raw  # NFTNL_UDATA_SET_ELEM_COMMENT


def comment_of(userdata: bytes | None) -> str | None:
    """The comment in an element's user data, if any."""
    data = userdata or b""
    i = 0
    while i + 2 <= len(data):
        kind, size = data[i], data[i + 1]
        if kind == 0:
            return data[i + 2 : i + 2 + size].rstrip(b"\0").decode(errors="replace")
        i += 2 + size
    return None


class Element:
    """One set or map element.  ``key`` (and ``key_end`` for a range in an
    interval set) are encoded keys; a map element has either ``data``
    (encoded value) or ``verdict`` (code, chain name or None)."""

    __slots__ = ("data", "key", "key_end", "userdata", "verdict")

    def __init__(
        self,
        key: bytes,
        *,
        key_end: bytes | None = None,
        data: bytes | None = None,
        verdict: tuple[int, str | None] | None = None,
        userdata: bytes | None = None,
    ) -> None:
        self.key = key
        self.key_end = key_end
        self.data = data
        self.verdict = verdict
        self.userdata = userdata

    def __repr__(self) -> str:
        return (
            f"Element(key={self.key.hex()}, key_end={self.key_end and self.key_end.hex()}, "
            f"data={self.data and self.data.hex()}, verdict={self.verdict}, "
            f"comment={comment_of(self.userdata)!r})"
        )

    @property
    def comment(self) -> str | None:
        return comment_of(self.userdata)

    def _encode(self, with_data: bool) -> bytes:
        attrs = [_nest(1, _attr(1, self.key))]  # NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }
        if self.key_end is not None:
            attrs.append(_nest(10, _attr(1, self.key_end)))  # NFTA_SET_ELEM_KEY_END
        if with_data:
            if self.data is not None:
                attrs.append(_nest(2, _attr(1, self.data)))  # NFTA_SET_ELEM_DATA
            elif self.verdict is not None:
                code, chain = self.verdict
                verdict = _attr(1, _struct.pack(">i", code))
                if chain is not None:
                    verdict += _attr(2, _name(tokens.chain(chain, "chain", 64)))
                attrs.append(_nest(2, _nest(2, verdict)))  # NFTA_DATA_VERDICT
            if self.userdata:
                attrs.append(_attr(6, self.userdata))  # NFTA_SET_ELEM_USERDATA
        return _nest(1, *attrs)  # NFTA_LIST_ELEM


def _object_name(value: str, what: str) -> str:
    return tokens.chain(value, what, 64)


def _message(kind: int, flags: int, seq: int, family: int, attrs: bytes, res_id: int = 0) -> bytes:
    body = _struct.pack("BBH", family, 0, _socket.htons(res_id)) + attrs
    return _struct.pack("IHHII", 16 + len(body), kind, flags, seq, 0) + body


# --- decoding --------------------------------------------------------------------


def _attrs(data: bytes, start: int = 0, end: int | None = None) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i, stop = start, len(data) if end is None else end
    while i + 4 <= stop:
        size, kind = _struct.unpack_from("HH", data, i)
        if size < 4:
            break
        out.setdefault(kind & 0x3FFF, data[i + 4 : i + size])
        i += (size + 3) & ~3
    return out


def _attr_list(data: bytes) -> list[bytes]:
    out = []
    i = 0
    while i + 4 <= len(data):
        size = _struct.unpack_from("H", data, i)[0]
        if size < 4:
            break
        out.append(data[i + 4 : i + size])
        i += (size + 3) & ~3
    return out


def _decode_element(raw: bytes) -> Element:
    a = _attrs(raw)
    key = _attrs(a.get(1, b"")).get(1, b"")
    key_end = _attrs(a[10]).get(1) if 10 in a else None
    data = verdict = None
    if 2 in a:
        d = _attrs(a[2])
        if 1 in d:
            data = d[1]
        elif 2 in d:
            v = _attrs(d[2])
            code = _struct.unpack(">i", v[1])[0] if 1 in v else 0
            chain = v[2].rstrip(b"\0").decode(errors="replace") if 2 in v else None
            verdict = (code, chain)
    return Element(key, key_end=key_end, data=data, verdict=verdict, userdata=a.get(6))


# --- the socket ------------------------------------------------------------------


def kept_fd() -> int | None:
    """The fd this process keeps open for netfilter netlink, if any (a
    zygote's worker counts it as its own, not as a call's leftover)."""
    mine = _Socket._mine
    if mine is None:
        return None
    import os

    if mine[0][0] != os.getpid():
        return None
    fd = mine[1].sock.fileno()
    return fd if fd >= 0 else None


class _Socket:
    """One netlink socket per process, kept open until the process exits.

    Closing a netfilter netlink socket waits for nf_tables' pending
    destroy work, which waits for an RCU grace period (~15 ms here) after
    any element was deleted (by us or anyone): closed at exit, after the
    call's answer and stdout are out, that wait is off the caller's path.
    Requests carry their own sequence numbers, so a reply left unread by
    an earlier failed request is skipped.  A forked child makes its own
    (the socket is close-on-exec, and never shared with a parent)."""

    # (pid, netns device, netns inode) it was made in, and the socket
    _mine: tuple[tuple[int, int, int], _Socket] | None = None
    _seq = 100

    def __init__(self) -> None:
        self.sock = _socket.socket(16, 3, _NETLINK_NETFILTER)  # AF_NETLINK, SOCK_RAW
        self.sock.settimeout(5)
        self.sock.bind((0, 0))

    @classmethod
    def get(cls) -> _Socket:
        """This process's socket in the calling thread's network namespace
        (a socket speaks for the namespace it was made in)."""
        import os

        st = os.stat("/proc/thread-self/ns/net")
        where = (os.getpid(), st.st_dev, st.st_ino)
        if cls._mine is None or cls._mine[0] != where:
            if cls._mine is not None and cls._mine[0][0] == where[0]:
                cls._mine[1].sock.close()
            cls._mine = (where, cls())
        return cls._mine[1]

    @classmethod
    def next_seq(cls, count: int) -> int:
        """The first of ``count`` fresh sequence numbers."""
        first = cls._seq
        cls._seq += count
        return first

    def __enter__(self) -> _Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and exc[0] is not NfnlError:
            # An interrupted exchange may leave replies half read: start
            # over with a fresh socket next time.
            type(self)._mine = None
            self.sock.close()

    def replies(self, first: int, last: int) -> Iterable[tuple[int, int, bytes]]:
        """(type, seq, whole message) of replies to sequence numbers
        ``first``..``last``, as they come (others are stale: dropped)."""
        while True:
            chunk = self.sock.recv(1 << 20)
            i = 0
            while i + 16 <= len(chunk):
                size, kind, _flags, seq = _struct.unpack_from("IHHI", chunk, i)
                if size < 16:
                    return
                if first <= seq <= last:
                    yield kind, seq, chunk[i : i + size]
                i += (size + 3) & ~3


def _error_of(msg: bytes) -> int:
    return -_struct.unpack_from("i", msg, 16)[0] if len(msg) >= 20 else 0


def _request(kind: int, family: int, attrs: bytes, dump: bool = False) -> list[bytes]:
    """One GET request; the reply messages' attribute bytes (after the
    nfgenmsg).  ``NfnlError`` on a kernel error."""
    flags = _F_REQUEST | (_F_DUMP if dump else _F_ACK)
    out = []
    seq = _Socket.next_seq(1)
    with _Socket.get() as s:
        s.sock.send(_message(_SUBSYS | kind, flags, seq, family, attrs))
        for mtype, _seq, msg in s.replies(seq, seq):
            if mtype == _NLMSG_DONE:
                break
            if mtype == _NLMSG_ERROR:
                err = _error_of(msg)
                if err:
                    raise NfnlError(err, f"nftables request {kind}: {_strerror(err)}")
                if not dump:
                    break
                continue
            out.append(msg[20:])
            if not dump:
                continue
    return out


def _strerror(err: int) -> str:
    import os

    return os.strerror(err)


def _get(kind: int, family: int, attrs: bytes) -> list[bytes] | None:
    try:
        return _request(kind, family, attrs)
    except NfnlError as exc:
        if exc.errno == ENOENT:
            return None
        raise


def get_table(family: int, table: str) -> bool:
    """Whether the table exists (one GETTABLE)."""
    name = _object_name(table, "table")
    return _get(_GETTABLE, family, _attr(1, _name(name))) is not None


def get_chain(family: int, table: str, chain: str) -> bool:
    attrs = _attr(1, _name(_object_name(table, "table"))) + _attr(
        3, _name(_object_name(chain, "chain"))
    )
    return _get(_GETCHAIN, family, attrs) is not None


def get_set(family: int, table: str, name: str) -> bool:
    attrs = _attr(1, _name(_object_name(table, "table"))) + _attr(
        2, _name(_object_name(name, "set"))
    )
    return _get(_GETSET, family, attrs) is not None


def rule_comments(family: int, table: str, chain: str) -> list[str]:
    """The comments of a chain's rules, in order ("" for a rule without
    one); empty when the chain or table does not exist.  For checking a
    constant chain by structure in one round trip."""
    attrs = _attr(1, _name(_object_name(table, "table"))) + _attr(
        2, _name(_object_name(chain, "chain"))
    )
    try:
        replies = _request(_GETRULE, family, attrs, dump=True)
    except NfnlError as exc:
        if exc.errno == ENOENT:
            return []
        raise
    return [comment_of(_attrs(r).get(7)) or "" for r in replies]  # NFTA_RULE_USERDATA


def _elem_list(family: int, table: str, name: str) -> bytes:
    return _attr(1, _name(_object_name(table, "table"))) + _attr(
        2, _name(_object_name(name, "set"))
    )


def _elements_of(replies: list[bytes]) -> list[Element]:
    out = []
    for reply in replies:
        listed = _attrs(reply).get(3)  # NFTA_SET_ELEM_LIST_ELEMENTS
        for raw in _attr_list(listed or b""):
            out.append(_decode_element(raw))
    return out


def get_element(family: int, table: str, name: str, key: bytes) -> Element | None:
    """The element of set ``name`` with ``key`` (exact key; for a range in
    an interval set, its start), or None (one GETSETELEM)."""
    attrs = _elem_list(family, table, name) + _nest(3, Element(key)._encode(False))
    found = _get(_GETSETELEM, family, attrs)
    elements = _elements_of(found or [])
    return elements[0] if elements else None


def dump_elements(family: int, table: str, name: str) -> list[Element]:
    """Every element of a set (empty if the set does not exist)."""
    try:
        return _elements_of(_request(_GETSETELEM, family, _elem_list(family, table, name), True))
    except NfnlError as exc:
        if exc.errno == ENOENT:
            return []
        raise


# --- transactions ----------------------------------------------------------------


class Batch:
    """Changes to one table applied in one transaction by ``commit``."""

    def __init__(self, family: int, table: str) -> None:
        self.family = family
        self.table = _object_name(table, "table")
        self._messages: list[tuple[int, int, bytes]] = []  # (type, flags, attrs)

    def __bool__(self) -> bool:
        return bool(self._messages)

    def _add(self, kind: int, flags: int, attrs: bytes) -> Batch:
        self._messages.append((_SUBSYS | kind, _F_REQUEST | _F_ACK | flags, attrs))
        return self

    def add_table(self) -> Batch:
        """The table, if missing (an existing one is left as it is)."""
        return self._add(_NEWTABLE, _F_CREATE, _attr(1, _name(self.table)))

    def add_chain(self, chain: str) -> Batch:
        """A regular chain (no hook), if missing."""
        attrs = _attr(1, _name(self.table)) + _attr(3, _name(_object_name(chain, "chain")))
        return self._add(_NEWCHAIN, _F_CREATE, attrs)

    def delete_chain(self, chain: str) -> Batch:
        """A chain and its rules (it must not be referenced any more)."""
        attrs = _attr(1, _name(self.table)) + _attr(3, _name(_object_name(chain, "chain")))
        return self._add(_DELCHAIN, 0, attrs)

    def add_elements(self, name: str, elements: list[Element], create: bool = False) -> Batch:
        """``create``: fail (EEXIST) if a key is already there, so a key
        taken by someone else is refused atomically."""
        if elements:
            listed = _nest(3, *(e._encode(True) for e in elements))
            flags = _F_CREATE | (_F_EXCL if create else 0)
            self._add(_NEWSETELEM, flags, _elem_list(self.family, self.table, name) + listed)
        return self

    def delete_elements(self, name: str, keys: list[Element]) -> Batch:
        """Every key must exist (else the whole batch fails with ENOENT:
        see ``delete_elements_missing_ok``)."""
        if keys:
            listed = _nest(3, *(e._encode(False) for e in keys))
            self._add(_DELSETELEM, 0, _elem_list(self.family, self.table, name) + listed)
        return self

    def commit(self) -> None:
        if not self._messages:
            return
        begin = _Socket.next_seq(len(self._messages) + 2)
        parts = [_message(_BATCH_BEGIN, _F_REQUEST, begin, 0, b"", res_id=10)]
        for seq, (kind, flags, attrs) in enumerate(self._messages, start=begin + 1):
            parts.append(_message(kind, flags, seq, self.family, attrs))
        end_seq = begin + len(self._messages) + 1
        parts.append(_message(_BATCH_END, _F_REQUEST, end_seq, 0, b"", res_id=10))
        waiting = set(range(begin + 1, end_seq))
        first_error = 0
        with _Socket.get() as s:
            s.sock.send(b"".join(parts))
            for mtype, seq, msg in s.replies(begin, end_seq):
                if mtype != _NLMSG_ERROR:
                    continue
                err = _error_of(msg)
                if err and not first_error:
                    first_error = err
                if seq == begin and err:  # the batch itself was refused
                    break
                waiting.discard(seq)
                if not waiting:
                    break
        if first_error:
            raise NfnlError(first_error, f"nftables transaction: {_strerror(first_error)}")


def delete_elements_missing_ok(
    family: int, table: str, name: str, keys: list[Element], owner: str | None = None
) -> None:
    """``delete_many`` for one set."""
    delete_many(family, table, {name: keys}, owner)


def delete_many(
    family: int, table: str, keys: dict[str, list[Element]], owner: str | None = None
) -> None:
    """Delete those of ``keys`` (by set name) still there: one transaction
    when all are (the usual case), else one per key (what was flushed by
    hand or never added is skipped; with ``owner``, so is an element whose
    comment is not ``owner``: the key was taken since by someone else).
    A missing table or set is fine."""
    batch = Batch(family, table)
    for name, items in keys.items():
        batch.delete_elements(name, items)
    if not batch:
        return
    try:
        batch.commit()
        return
    except NfnlError as exc:
        if exc.errno != ENOENT:
            raise
    for name, items in keys.items():
        for key in items:
            if owner is not None:
                found = get_element(family, table, name, key.key)
                if found is None or found.comment != owner:
                    continue
            try:
                Batch(family, table).delete_elements(name, [key]).commit()
            except NfnlError as exc:
                if exc.errno != ENOENT:
                    raise


def ensure(family: str, table: str, probe: str | None, lines: list[str], what: str) -> bool:
    """Write structure with one ``nft -f`` of ``lines`` when the table (or,
    with ``probe``, its set or map of that name) is missing.  True if it
    ran.  ``lines`` must be idempotent: concurrent first calls may both
    run them."""
    fam = FAMILIES[family]
    present = get_set(fam, table, probe) if probe else get_table(fam, table)
    if present:
        return False
    from . import nft_apply

    nft_apply(lines, what)
    return True


def ensure_rules(
    family: str, table: str, chains: dict[str, list[str]], lines: list[str], what: str
) -> bool:
    """Like ``ensure``, probing rules: run ``lines`` unless each chain of
    ``chains`` holds exactly rules with those comments, in that order (so
    a chain flushed by hand, or written by an older layout, is rewritten
    by the next call).  One GETRULE per chain; True if nft ran."""
    fam = FAMILIES[family]
    if all(rule_comments(fam, table, c) == want for c, want in chains.items()):
        return False
    from . import nft_apply

    nft_apply(lines, what)
    return True

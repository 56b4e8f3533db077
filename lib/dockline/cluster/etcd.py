"""A small etcd v3 client over etcd's JSON gateway (``/v3/...``, HTTP/1.1).

Why not a package: the maintained-enough Python clients are either gRPC
based (etcd3, aetcd: grpcio + protobuf, tens of ms to import, native
wheels) or sit on requests + futurist + pbr (etcd3gw).  A plugin call needs
a handful of unary calls (range, txn, lease grant / keepalive / revoke,
delete), all of which the gateway serves as a POST of a JSON body, so this
module speaks HTTP/1.1 itself over ``socket`` (and ``ssl`` only when the
endpoints are https): no dependency, ~1 ms to import, and no ``json``,
``re`` or ``http.client`` (which pulls in ``email``) on the plugin path.

Every call has one deadline (the config's ``timeout``) covering connects,
failover to the next endpoint and the answer.  A connection refused, reset
or timed out moves on to the next endpoint; an answer from etcd saying it
cannot serve (no leader, 5xx) does too.  When no endpoint answers in time
the error is ``EtcdUnavailable``, which callers turn into CNI code 11
("try again later") or 50 (STATUS).  Keys and values are ``bytes`` here
and base64 on the wire, as the gateway wants.
"""

from __future__ import annotations

import binascii
import socket
import time

from ..cni import jsonio
from ..cni.errors import TRY_AGAIN_LATER, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence
    from typing import Any

    Json = dict[str, Any]

    from .config import ClusterConfig, Endpoint

_MAX_RESPONSE = 64 << 20
# A key prefix's range end: the prefix with its last byte incremented.


class EtcdUnavailable(CniError):
    """No endpoint answered within the deadline."""

    def __init__(self, details: str) -> None:
        super().__init__(TRY_AGAIN_LATER, "cluster: etcd cannot be reached", details)


class EtcdError(CniError):
    """etcd answered, with an error we do not retry (a bad request)."""

    def __init__(self, details: str) -> None:
        super().__init__(TRY_AGAIN_LATER, "cluster: etcd refused a request", details)


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def unb64(text: object) -> bytes:
    if not isinstance(text, str):
        return b""
    return binascii.a2b_base64(text)


def prefix_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with ``prefix``."""
    for i in range(len(prefix) - 1, -1, -1):
        if prefix[i] < 0xFF:
            return prefix[:i] + bytes((prefix[i] + 1,))
    return b"\0"


class KV:
    __slots__ = ("create_revision", "key", "lease", "mod_revision", "value")

    def __init__(self, obj: Json) -> None:
        self.key = unb64(obj.get("key"))
        self.value = unb64(obj.get("value"))
        self.create_revision = int(obj.get("create_revision", 0))
        self.mod_revision = int(obj.get("mod_revision", 0))
        self.lease = int(obj.get("lease", 0))


class Client:
    def __init__(self, conf: ClusterConfig) -> None:
        self.conf = conf
        self.endpoints = list(conf.endpoints)
        self._sock: socket.socket | None = None
        self._sock_ep: Endpoint | None = None
        self._ssl: ssl.SSLContext | None = None
        self.local_address: str | None = None  # our side of the last connection
        # Once no endpoint answered, later calls of this plugin call fail at
        # once: a call's etcd steps together stay within one timeout.
        self._down: EtcdUnavailable | None = None

    # --- transport ------------------------------------------------------------

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._sock_ep = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            import ssl

            tls = self.conf.tls
            ctx = ssl.create_default_context(cafile=tls.ca or None if tls else None)
            if tls and tls.cert:
                ctx.load_cert_chain(tls.cert, tls.key)
            self._ssl = ctx
        return self._ssl

    def _connect(self, ep: Endpoint, deadline: float) -> socket.socket:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        sock = _connect_tcp(ep.host, ep.port, remaining)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ep.tls:
                try:
                    sock = self._context().wrap_socket(sock, server_hostname=ep.host)
                except OSError as exc:
                    raise _TlsFailure(str(exc)) from None
            self.local_address = sock.getsockname()[0]
        except BaseException:
            sock.close()
            raise
        return sock

    def call(self, path: str, body: Json) -> Json:
        """POST ``body`` to ``/v3/<path>`` on the first endpoint that
        answers; the decoded JSON answer.  Endpoints are tried in rounds
        until the deadline, each attempt with a share of the time, so one
        member that hangs (or a cluster electing a leader) cannot use up
        the whole budget."""
        if self._down is not None:
            raise EtcdUnavailable(self._down.details)
        total = self.conf.timeout
        deadline = time.monotonic() + total
        data = jsonio.dumps(body).encode()
        problems: dict[str, str] = {}
        # The endpoint we are connected to first, then the others in order.
        order = list(self.endpoints)
        if self._sock_ep is not None and self._sock_ep in order:
            order.remove(self._sock_ep)
            order.insert(0, self._sock_ep)
        share = max(total / (2 * len(order)), 0.25)
        while True:
            for ep in order:
                now = time.monotonic()
                if now >= deadline:
                    break
                reused = self._sock is not None and self._sock_ep is ep
                attempt_deadline = min(deadline, now + share)
                try:
                    if not reused:
                        self.close()
                        self._sock = self._connect(ep, attempt_deadline)
                        self._sock_ep = ep
                    status, answer = self._exchange(ep, path, data, attempt_deadline)
                except _TlsFailure as exc:
                    self.close()
                    problems[str(ep)] = f"TLS: {exc}"
                    continue
                except (OSError, ValueError) as exc:
                    self.close()
                    problems[str(ep)] = str(exc) or type(exc).__name__
                    continue
                if status == 200:
                    return answer
                message = str(answer.get("error") or answer.get("message") or "")
                if status in (400, 404) and "leader" not in message:
                    raise EtcdError(f"{ep} {path}: HTTP {status}: {message[:200]}")
                self.close()
                problems[str(ep)] = f"HTTP {status}: {message[:200]}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(0.05, remaining))
        self._down = EtcdUnavailable(
            f"no etcd endpoint answered within {total:g}s: "
            + "; ".join(f"{ep}: {p}" for ep, p in problems.items())
        )
        raise self._down

    def _exchange(self, ep: Endpoint, path: str, data: bytes, deadline: float) -> tuple[int, Json]:
        sock = self._sock
        assert sock is not None
        host = f"[{ep.host}]" if ":" in ep.host else ep.host
        head = (
            f"POST /v3/{path} HTTP/1.1\r\nHost: {host}:{ep.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.sendall(head + data)
        reader = _Reader(sock, deadline)
        status_line = reader.line()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
        status = int(parts[1])
        length = -1
        chunked = close = False
        while True:
            line = reader.line()
            if not line:
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                close = value == b"close"
        if chunked:
            body = bytearray()
            while True:
                size = int(reader.line().split(b";")[0], 16)
                if size == 0:
                    while reader.line():
                        pass
                    break
                if len(body) + size > _MAX_RESPONSE:
                    raise ValueError("answer too large")
                body += reader.exact(size)
                reader.line()
        elif length >= 0:
            if length > _MAX_RESPONSE:
                raise ValueError("answer too large")
            body = bytearray(reader.exact(length))
        else:
            body = bytearray(reader.rest())
            close = True
        if close or reader.buffer:
            self.close()
        try:
            answer = jsonio.loads(bytes(body)) if body.strip() else {}
        except ValueError:
            raise ValueError(f"HTTP {status} with a body that is not JSON") from None
        if isinstance(answer, dict) and isinstance(answer.get("result"), dict):
            answer = answer["result"]  # streaming calls (keepalive) wrap their answer
        if not isinstance(answer, dict):
            raise ValueError(f"HTTP {status} with a body that is not a JSON object")
        return status, answer

    # --- the calls dockline uses ---------------------------------------------

    def get(self, key: bytes) -> KV | None:
        kvs = self.call("kv/range", {"key": b64(key)}).get("kvs") or []
        return KV(kvs[0]) if kvs else None

    def get_prefix(self, prefix: bytes) -> list[KV]:
        answer = self.call("kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        return [KV(kv) for kv in answer.get("kvs") or []]

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        body: Json = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        self.call("kv/put", body)

    def delete(self, key: bytes) -> int:
        return int(self.call("kv/deleterange", {"key": b64(key)}).get("deleted", 0))

    def txn(self, compare: list[Json], success: list[Json], failure: Sequence[Json] = ()) -> bool:
        answer = self.call(
            "kv/txn", {"compare": compare, "success": success, "failure": list(failure)}
        )
        return bool(answer.get("succeeded"))

    def create(self, key: bytes, value: bytes, lease: int = 0) -> bool:
        """Put ``key`` only if it does not exist; whether it was put."""
        put: Json = {"key": b64(key), "value": b64(value)}
        if lease:
            put["lease"] = str(lease)
        return self.txn(
            [{"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            [{"request_put": put}],
        )

    def delete_if_value(self, key: bytes, value: bytes) -> bool:
        """Delete ``key`` only while it still holds ``value``."""
        return self.txn(
            [{"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value)}],
            [{"request_delete_range": {"key": b64(key)}}],
        )

    def grant(self, ttl: int) -> int:
        answer = self.call("lease/grant", {"TTL": str(ttl)})
        lease = int(answer.get("ID", 0))
        if not lease:
            raise EtcdError(f"lease grant answered {answer!r:.200}")
        return lease

    def keepalive(self, lease: int) -> int:
        """Refresh ``lease``; its new TTL, 0 if etcd no longer knows it."""
        return int(self.call("lease/keepalive", {"ID": str(lease)}).get("TTL", 0) or 0)

    def revoke(self, lease: int) -> None:
        try:
            self.call("lease/revoke", {"ID": str(lease)})
        except EtcdError:
            pass  # already gone

    def status(self) -> Json:
        return self.call("maintenance/status", {})


def _connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """socket.create_connection, but resolving a bytes host: a str one goes
    through the idna codec, which imports re (~5 ms on every call)."""
    problem: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host.encode(), port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            problem = exc
    raise problem or OSError(f"{host}: no address")


class _TlsFailure(Exception):
    pass


class _Reader:
    __slots__ = ("buffer", "deadline", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed while reading")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-answer")
        self.buffer += chunk
        if len(self.buffer) > _MAX_RESPONSE:
            raise ValueError("answer too large")

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise ValueError("header line too long")
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def rest(self) -> bytes:
        while True:
            try:
                self._fill()
            except ConnectionError:
                data, self.buffer = self.buffer, b""
                return data

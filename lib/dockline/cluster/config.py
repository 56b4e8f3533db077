"""The ``cluster`` object of a network config, checked strictly at the edge.

    "cluster": {
      "endpoints": ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
      "prefix": "/dockline",
      "timeout": 5,
      "leaseTTL": 86400,
      "blockPrefix": 26,
      "blockPrefix6": 122,
      "tls": {"ca": "/etc/dockline/etcd-ca.pem",
              "cert": "/etc/dockline/etcd-client.pem",
              "key": "/etc/dockline/etcd-client-key.pem"}
    }

Every host uses the same object.  Unknown keys are refused (a misspelt
``timout`` silently meaning the default would be worse); so is anything
that would reach a socket, a path or an etcd key unchecked: endpoints are
``http(s)://host:port`` only, the prefix is a plain path of safe
characters, TLS files are absolute paths.  All errors are code 7.
"""

from __future__ import annotations

from ..cni.errors import INVALID_CONFIG, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KEYS = ("endpoints", "prefix", "timeout", "leaseTTL", "blockPrefix", "blockPrefix6", "tls")
TLS_KEYS = ("ca", "cert", "key")
DEFAULT_PREFIX = "/dockline"
DEFAULT_TIMEOUT = 5.0
DEFAULT_LEASE_TTL = 86400
DEFAULT_BLOCK_PREFIX = 26
DEFAULT_BLOCK_PREFIX6 = 122
MAX_ENDPOINTS = 16
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_PREFIX_CHARS = _HOST_CHARS | frozenset("/_")
_PATH_MAX = 4096


class Endpoint:
    __slots__ = ("host", "port", "tls")

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.host = host  # a name or an address, without IPv6 brackets
        self.port = port
        self.tls = tls

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


class TlsFiles:
    __slots__ = ("ca", "cert", "key")

    def __init__(self, ca: str, cert: str, key: str) -> None:
        self.ca = ca
        self.cert = cert
        self.key = key


class ClusterConfig:
    __slots__ = (
        "block_prefix",
        "block_prefix6",
        "endpoints",
        "lease_ttl",
        "prefix",
        "timeout",
        "tls",
    )

    def __init__(
        self,
        endpoints: list[Endpoint],
        prefix: str,
        timeout: float,
        lease_ttl: int,
        block_prefix: int,
        block_prefix6: int,
        tls: TlsFiles | None,
    ) -> None:
        self.endpoints = endpoints
        self.prefix = prefix
        self.timeout = timeout
        self.lease_ttl = lease_ttl
        self.block_prefix = block_prefix
        self.block_prefix6 = block_prefix6
        self.tls = tls


def _bad(what: str, details: str) -> CniError:
    return CniError(INVALID_CONFIG, f"invalid cluster {what}", details[:300])


def parse_endpoint(text: object) -> Endpoint:
    if not isinstance(text, str):
        raise _bad("endpoint", f"{text!r} is not a string")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise _bad("endpoint", f"{text!r}: expected http://HOST:PORT or https://HOST:PORT")
    if rest.endswith("/"):
        rest = rest[:-1]
    if rest.startswith("["):
        host, sep, port_text = rest[1:].partition("]:")
        if not sep:
            raise _bad("endpoint", f"{text!r}: an IPv6 address needs [ADDR]:PORT")
        from ..cni.addr import parse_ip

        try:
            ip = parse_ip(host, "endpoint address")
        except CniError:
            raise _bad("endpoint", f"{text!r}: {host!r} is not an IPv6 address") from None
        if ip.version != 6:
            raise _bad("endpoint", f"{text!r}: only IPv6 addresses go in brackets")
        host = str(ip)
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep or not host:
            raise _bad("endpoint", f"{text!r}: expected HOST:PORT after the scheme")
        labels = host.split(".")
        if (
            len(host) > 253
            or not set(host) <= _HOST_CHARS
            or any(not label or len(label) > 63 or label[0] == "-" for label in labels)
        ):
            raise _bad("endpoint", f"{text!r}: {host!r} is not a host name or IPv4 address")
        if all(label.isdigit() for label in labels):
            from ..cni.addr import parse_ip

            try:
                parse_ip(host, "endpoint address")
            except CniError:
                raise _bad("endpoint", f"{text!r}: {host!r} is not an IPv4 address") from None
    if not port_text.isdigit() or not port_text.isascii() or not 0 < int(port_text) < 65536:
        raise _bad("endpoint", f"{text!r}: port must be 1-65535")
    return Endpoint(host, int(port_text), scheme == "https")


def _path(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _bad(f"tls {what}", f"{value!r} is not an absolute path")
    if len(value) > _PATH_MAX or not value.isprintable():
        raise _bad(f"tls {what}", f"{value[:100]!r} is too long or has control characters")
    if ".." in value.split("/"):
        raise _bad(f"tls {what}", f"{value!r} contains a '..' component")
    return value


def _number(
    obj: dict[str, Any], key: str, default: float, low: float, high: float, integer: bool
) -> float:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        kind = "an integer" if integer else "a number"
        raise _bad(key, f"{value!r} is not {kind}")
    if not low <= value <= high:
        raise _bad(key, f"{value!r} is outside {low}-{high}")
    return value


def parse(obj: object) -> ClusterConfig:
    """The checked cluster config; CniError 7 for anything else."""
    if not isinstance(obj, dict):
        raise _bad("config", "'cluster' must be a JSON object")
    unknown = sorted(k for k in obj if k not in KEYS)
    if unknown:
        raise _bad("config", f"unknown key(s) {unknown!r}; known: {', '.join(KEYS)}")
    raw = obj.get("endpoints")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ENDPOINTS:
        raise _bad("endpoints", f"a list of 1-{MAX_ENDPOINTS} http(s)://HOST:PORT strings")
    endpoints = [parse_endpoint(e) for e in raw]
    schemes = {e.tls for e in endpoints}
    if len(schemes) > 1:
        raise _bad("endpoints", "all http or all https, not a mix")
    prefix = obj.get("prefix", DEFAULT_PREFIX)
    if (
        not isinstance(prefix, str)
        or not prefix.startswith("/")
        or len(prefix) > 128
        or not set(prefix) <= _PREFIX_CHARS
        or any(part in ("", ".", "..") for part in prefix[1:].split("/"))
    ):
        raise _bad("prefix", f"{prefix!r}: '/' then path components of [A-Za-z0-9._-], at most 128")
    tls = None
    raw_tls = obj.get("tls")
    if raw_tls is not None:
        if not isinstance(raw_tls, dict):
            raise _bad("tls", "must be an object with ca, cert, key")
        unknown = sorted(k for k in raw_tls if k not in TLS_KEYS)
        if unknown:
            raise _bad("tls", f"unknown key(s) {unknown!r}; known: ca, cert, key")
        ca = _path(raw_tls["ca"], "ca") if raw_tls.get("ca") is not None else ""
        cert = _path(raw_tls["cert"], "cert") if raw_tls.get("cert") is not None else ""
        key = _path(raw_tls["key"], "key") if raw_tls.get("key") is not None else ""
        if bool(cert) != bool(key):
            raise _bad("tls", "cert and key go together")
        if True not in schemes:
            raise _bad("tls", "TLS files given but the endpoints are http://")
        tls = TlsFiles(ca, cert, key)
    block_prefix = int(_number(obj, "blockPrefix", DEFAULT_BLOCK_PREFIX, 8, 30, True))
    block_prefix6 = int(_number(obj, "blockPrefix6", DEFAULT_BLOCK_PREFIX6, 64, 126, True))
    return ClusterConfig(
        endpoints=endpoints,
        prefix=prefix.rstrip("/") or "",
        timeout=float(_number(obj, "timeout", DEFAULT_TIMEOUT, 0.1, 60, False)),
        lease_ttl=int(_number(obj, "leaseTTL", DEFAULT_LEASE_TTL, 10, 30 * 86400, True)),
        block_prefix=block_prefix,
        block_prefix6=block_prefix6,
        tls=tls,
    )


def from_network(config: dict[str, Any]) -> ClusterConfig | None:
    """The network's cluster config, or None when it is single-host."""
    obj = config.get("cluster")
    return None if obj is None else parse(obj)

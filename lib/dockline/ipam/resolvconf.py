"""Reading a resolv.conf into a CNI ``dns`` object (host-local resolvConf).

The file is opened O_NONBLOCK and read only if it is a regular file (a
FIFO would hang the plugin), following symlinks (/etc/resolv.conf often is
one).  Values are checked as the config's are: nameservers must be IP
addresses (a scope id such as ``fe80::1%eth0`` is refused, as everywhere),
the file must be UTF-8; a bad file is an invalid configuration (7).
"""

from __future__ import annotations

import os
import stat

from ..cni.errors import INVALID_CONFIG, CniError
from ..cni.result import parse_dns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cni.jsonio import JSONObject

_MAX_SIZE = 1 << 20


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CniError(
            INVALID_CONFIG, "cannot read resolvConf", f"{path!r}: {exc.strerror}"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_SIZE:
            raise CniError(
                INVALID_CONFIG,
                "cannot read resolvConf",
                f"{path!r} is not a regular file of at most {_MAX_SIZE} bytes",
            )
        chunks = []
        while True:
            chunk = os.read(fd, _MAX_SIZE)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)[:_MAX_SIZE]
    except OSError as exc:
        raise CniError(
            INVALID_CONFIG, "cannot read resolvConf", f"{path!r}: {exc.strerror}"
        ) from None
    finally:
        os.close(fd)


def load(path: str) -> JSONObject:
    try:
        text = _read(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CniError(
            INVALID_CONFIG, "invalid resolvConf", f"{path!r} is not UTF-8 (byte {exc.start})"
        ) from None
    dns: JSONObject = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            dns.setdefault("nameservers", []).append(values[0])
        elif key == "domain" and values:
            dns["domain"] = values[0]
        elif key == "search":
            dns["search"] = values
        elif key == "options":
            dns.setdefault("options", []).extend(values)
    return parse_dns(dns, f"resolvConf {path}")

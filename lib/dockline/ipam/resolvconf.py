"""Reading a resolv.conf into a CNI ``dns`` object (host-local resolvConf)."""
from __future__ import annotations

from ..cni.errors import INVALID_CONFIG, CniError


def load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise CniError(INVALID_CONFIG, "cannot read resolvConf", f"{path}: {exc.strerror}") from None
    dns: dict = {}
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
    return dns

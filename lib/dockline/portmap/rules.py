"""portmap's rules behind one interface: ``add`` / ``delete`` / ``check``
/ ``gc`` per attachment, over two backends (``nftables``: the default,
``portmap.nftables``; ``iptables``: ``portmap.iptables``).

Each ADD writes a record (``firewall.records``, kind ``portmap``) naming
its backend and what it installed, before installing it; DEL reads that
record, so it needs neither the runtime's portMappings nor the config's
backend, and lists no table.  Shared by both: route_localnet for
127.0.0.1 (``firewall.localnet``) and the UDP conntrack flush.
"""

from __future__ import annotations

from .. import proc
from ..cni.attachment import Attachment, network_tag
from ..cni.errors import STATE_MISSING, CniError
from ..filelock import FileLock
from ..firewall import default_backend, localnet, records
from . import iptables, nftables

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..cni.jsonio import JSONObject
    from .config import ContainerIP, Mapping, PortmapConfig

KIND = "portmap"
BOTH = ("iptables", "nftables")


def choose_backend(conf: PortmapConfig) -> str:
    if conf.backend:
        return conf.backend
    if conf.conditions_style:
        return conf.conditions_style  # the conditions' syntax says which is meant
    if conf.external_mark_chain:
        return "iptables"  # an iptables chain: only that backend can jump to it
    return default_backend("portmap")


class Entry:
    """One mapping for one container address family."""

    __slots__ = ("ip", "mapping")

    def __init__(self, mapping: Mapping, ip: ContainerIP) -> None:
        self.mapping = mapping
        self.ip = ip


def entries(conf: PortmapConfig) -> list[Entry]:
    out = []
    for m in conf.mappings:
        for ip in conf.container_ips:
            if m.host_ip is None or m.host_ip.version == ip.version:
                out.append(Entry(m, ip))
    return out


def flush_udp_conntrack(released: list[str]) -> None:
    """Stale UDP flows keep reaching the old destination after a container
    is replaced; drop those whose original destination port is a published
    one (on ADD and on DEL)."""
    ports = sorted({p.split("/")[1] for p in released if p.startswith("udp/")})
    if not ports or not proc.which("conntrack"):
        return
    for port in ports:
        for family in ("ipv4", "ipv6"):
            proc.run(["conntrack", "-D", "-f", family, "-p", "udp", "--orig-port-dst", port])


def add(backend: str, att: Attachment, conf: PortmapConfig) -> None:
    todo = entries(conf)
    if not todo:
        return
    released = sorted({f"{e.mapping.protocol}/{e.mapping.host_port}" for e in todo})
    try:
        if backend == "nftables":
            nftables.add(att, conf, todo, released)
        else:
            # The record first (no rule of ours without one), then the rules;
            # the shared-chain rules are known only once rendered.
            records.write(KIND, att.tag, {"backend": "iptables", "released": released})
            with FileLock(iptables.LOCK_PATH):
                shared = iptables.add(att, conf, todo)
            claims = sorted({iptables.claim_key(e.ip.version, e) for e in todo})
            records.write(
                KIND,
                att.tag,
                {"backend": "iptables", "rules": shared, "released": released, "claims": claims},
            )
        if conf.snat and any(e.ip.version == 4 for e in todo):
            localnet.acquire(
                att.tag,
                localnet.towards_container([e.ip.address for e in todo if e.ip.version == 4]),
                backend,
            )
    except BaseException:
        delete((backend,), att)  # an ADD that fails leaves nothing
        raise
    flush_udp_conntrack(released)


def delete(backends: tuple[str, ...] | Callable[[], tuple[str, ...]], att: Attachment) -> None:
    """Remove what the attachment's ADD installed (its record says where;
    without a record, ``backends`` (or what it returns: the config is read
    only then) are cleaned by listing: an ADD by an older dockline) and
    its hold on route_localnet.  Every step runs even if one before
    failed; the first failure is raised."""
    released: list[str] = []
    errors: list[BaseException] = []
    doc = records.read(KIND, att.tag)
    steps: list[Callable[[], object]] = []
    if doc is not None:
        released += [p for p in doc.get("released") or [] if isinstance(p, str)]
        if doc.get("backend") == "nftables":
            steps.append(lambda: nftables.remove(att, doc))
        elif proc.which("iptables-restore"):
            steps.append(lambda: _ipt_remove(att, doc, released))
    else:
        chosen = backends if isinstance(backends, tuple) else backends()
        if "iptables" in chosen and proc.which("iptables-save"):
            steps.append(lambda: _ipt_remove(att, None, released))
        if "nftables" in chosen:
            steps.append(lambda: nftables.remove_legacy(att))
    steps += [
        lambda: records.remove(KIND, att.tag) if not errors else None,
        lambda: localnet.release_one(att.tag),
        lambda: flush_udp_conntrack(released),
    ]
    for step in steps:
        try:
            step()
        except Exception as exc:  # the other steps still get their turn
            errors.append(exc)
    if errors:
        raise errors[0]


def _ipt_remove(att: Attachment, doc: JSONObject | None, released: list[str]) -> None:
    with FileLock(iptables.LOCK_PATH):
        released += iptables.remove(att, doc)
        for key in (doc or {}).get("claims") or []:
            if isinstance(key, str):
                records.unclaim(key, att.tag)


def gc(backends: tuple[str, ...], network: str, valid: set[Attachment]) -> None:
    """Remove what belongs to the network's attachments not in ``valid``:
    records first, then whatever the kernel still holds under their tags
    (the one call that lists)."""
    prefix = network_tag(network)
    keep = {a.tag for a in valid}
    released: list[str] = []
    for tag in records.tags(KIND, prefix):
        if tag not in keep:
            doc = records.read(KIND, tag) or {}
            released += [p for p in doc.get("released") or [] if isinstance(p, str)]
            records.remove(KIND, tag)
    if "nftables" in backends:
        nftables.gc(prefix, keep)
    if "iptables" in backends and proc.which("iptables-save"):
        with FileLock(iptables.LOCK_PATH):
            released += iptables.gc(prefix, keep)
    localnet.release(lambda tag: tag.startswith(prefix) and tag not in keep)
    flush_udp_conntrack(released)


def check(backend: str, att: Attachment, conf: PortmapConfig) -> None:
    todo = entries(conf)
    if not todo:
        return
    if backend == "nftables":
        missing = nftables.check(att, conf, todo)
    else:
        missing = iptables.check(att, todo, records.read(KIND, att.tag))
    if missing:
        raise CniError(STATE_MISSING, "portmap CHECK: a published port is missing", missing)

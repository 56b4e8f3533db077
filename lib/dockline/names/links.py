"""Docker's legacy links as a CNI capability.

A container's names on a network come from the ``aliases`` capability (the
spec's list, or podman's ``{"<network>": [...]}``) and ``CNI_ARGS
K8S_POD_NAME``.  Its links come from the ``links`` capability
(``"db:dbapp"``, ``"db"``, or ``{"name": "db", "alias": "dbapp"}``).  ADD
registers the names and addresses, and writes ``<target IP>\\t<alias>
<name>`` into the container's hosts file for each link (IPv4 and IPv6
lines when the target has both); a target re-added with a new address
gets its dependants' lines updated.  DEL removes the container's own
registration and lines; containers linking to it keep their lines until
it returns (Docker does the same).
"""
from __future__ import annotations

import os

from ..cni.errors import ADDRESS_IN_USE, INVALID_CONFIG, STATE_MISSING, CniError
from ..firewall import short_hash
from . import hostsfile
from .registry import Registry, attachment_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..bridge.undo import UndoStack
    from ..cni.skel import Request

MAX_NAME = 253


def name_problem(name) -> str | None:
    if not isinstance(name, str) or not name:
        return "is empty or not a string"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    if not name.isascii() or not name[0].isalnum():
        return "must start with a letter or digit"
    for label in name.split("."):
        if not label or len(label) > 63:
            return "has an empty or over-long label"
        for ch in label:
            if not (ch.isalnum() or ch in "-_"):
                return f"contains the invalid character {ch!r}"
    return None


def _check_name(name, what: str) -> str:
    problem = name_problem(name)
    if problem:
        raise CniError(INVALID_CONFIG, f"invalid {what}", f"{name!r} {problem}")
    return name


class LinkRequest:
    __slots__ = ("names", "links", "hosts_file")

    def __init__(self, req: Request) -> None:
        rc = req.runtime_config
        names: list[str] = []
        aliases = rc.get("aliases")
        if isinstance(aliases, dict):  # podman: {"<network>": [...]}
            aliases = aliases.get(req.network) or []
        if aliases is not None and not isinstance(aliases, list):
            raise CniError(INVALID_CONFIG, "invalid aliases", "expected a list or a map of lists")
        pod_name = _lenient_cni_args(req.args).get("K8S_POD_NAME")
        for name in ([pod_name] if pod_name else []) + list(aliases or []):
            name = _check_name(name, "container name")
            if name not in names:
                names.append(name)
        self.names = names
        links: list[tuple[str, str]] = []
        for item in rc.get("links") or []:
            if isinstance(item, str):
                name, _, alias = item.partition(":")
                alias = alias or name
            elif isinstance(item, dict):
                name, alias = item.get("name"), item.get("alias") or item.get("name")
            else:
                raise CniError(INVALID_CONFIG, "invalid link", repr(item))
            links.append((_check_name(name, "link name"), _check_name(alias, "link alias")))
        self.links = links
        hosts = rc.get("hostsFile")
        if hosts is not None and (not isinstance(hosts, str) or not os.path.isabs(hosts)):
            raise CniError(INVALID_CONFIG, "invalid hostsFile", f"{hosts!r} is not an absolute path")
        self.hosts_file = hosts


def _lenient_cni_args(text: str) -> dict[str, str]:
    out = {}
    for item in (text or "").split(";"):
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def _tag(req: Request) -> str:
    return short_hash(req.network, req.container_id, req.ifname)


def _lines_for(entry: dict, reg: Registry) -> list[str]:
    lines = []
    for name, alias in entry.get("links", []):
        owner = reg.owner_of(name)
        if owner is None:
            continue
        for ip in reg.entries[owner].get("ips", []):
            lines.append(hostsfile.link_line(ip, alias, name, entry["tag"]))
    return lines


def _refresh_dependants(reg: Registry, names: list[str], skip: str) -> None:
    for key, entry in reg.entries.items():
        if key == skip or not entry.get("hosts"):
            continue
        if any(name in names for name, _ in entry.get("links", [])):
            try:
                hostsfile.rewrite(entry["hosts"], entry["tag"], _lines_for(entry, reg))
            except (CniError, OSError):
                continue  # that container's hosts file is gone: nothing to update


def on_add(req: Request, data_dir: str, ips: list[str], undo: UndoStack) -> None:
    lr = LinkRequest(req)
    if not lr.names and not lr.links:
        return
    key = attachment_key(req.container_id, req.ifname)
    tag = _tag(req)
    with Registry(req.network, data_dir) as reg:
        for name in lr.names:
            owner = reg.owner_of(name)
            if owner is not None and owner != key:
                raise CniError(ADDRESS_IN_USE, f"the name {name!r} is already taken on network "
                               f"{req.network!r}", f"by {owner}")
        for name, _ in lr.links:
            if reg.owner_of(name) is None:
                raise CniError(INVALID_CONFIG, f"cannot link to {name!r}",
                               f"no container named {name!r} on network {req.network!r}")
        hosts = lr.hosts_file or hostsfile.netns_hosts_path(req.netns)
        if lr.links and not hosts:
            raise CniError(INVALID_CONFIG, "links need a hosts file",
                           "pass the hostsFile capability, or use a named netns under /run/netns")
        entry = {"names": lr.names, "ips": ips, "hosts": hosts, "tag": tag,
                 "links": [list(link) for link in lr.links]}
        reg.put(key, entry)
        if lr.links:
            if not lr.hosts_file and hostsfile.ensure_exists(hosts):
                undo.push(f"remove {hosts}", lambda: os.unlink(hosts))
            undo.push(f"remove link lines from {hosts}", lambda: hostsfile.rewrite(hosts, tag, []))
            hostsfile.rewrite(hosts, tag, _lines_for(entry, reg))
        _refresh_dependants(reg, lr.names, key)
    undo.push("unregister names", lambda: on_del(req, data_dir))


def _drop_own_lines(entry: dict | None) -> None:
    """Remove the link lines a departing container had in its hosts file."""
    if entry and entry.get("links") and entry.get("hosts"):
        try:
            hostsfile.rewrite(entry["hosts"], entry["tag"], [])
        except CniError:
            pass  # the container's hosts file is gone or replaced: nothing of ours left


def on_del(req: Request, data_dir: str) -> None:
    registry = Registry(req.network, data_dir)
    if not registry.exists():
        return
    with registry as reg:
        entry = reg.remove(attachment_key(req.container_id, req.ifname))
    _drop_own_lines(entry)


def on_gc(network: str, data_dir: str, valid: set[tuple[str, str]]) -> None:
    keep = {attachment_key(cid, ifname) for cid, ifname in valid}
    registry = Registry(network, data_dir)
    if not registry.exists():
        return
    with registry as reg:
        for key in [k for k in reg.entries if k not in keep]:
            _drop_own_lines(reg.remove(key))


def on_check(req: Request, data_dir: str) -> None:
    lr = LinkRequest(req)
    if not lr.links:
        return
    key = attachment_key(req.container_id, req.ifname)
    with Registry(req.network, data_dir) as reg:
        entry = reg.entries.get(key)
        if entry is None:
            raise CniError(STATE_MISSING, "links: the container is not registered on the network")
        expected = _lines_for(entry, reg)
    have = hostsfile.marked_lines(entry["hosts"], entry["tag"])
    missing = [line for line in expected if line not in have]
    if missing:
        raise CniError(STATE_MISSING, "links: hosts file lines missing or stale",
                       "; ".join(line.split("\t# ")[0].replace("\t", " ") for line in missing))

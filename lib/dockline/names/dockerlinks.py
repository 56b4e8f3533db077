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

Names live in a scope: the pod's ``K8S_POD_NAMESPACE`` (``""`` without
one), and links resolve within the linking container's scope, as
Kubernetes' short DNS names do.  K8S_POD_NAME is the runtime's identity
for the container (the pod's name; podman's container name), not a
request: it never fails an ADD, and when several attachments of a scope
carry it (a sandbox recreated before the old one's DEL) the latest ADD
holds it.  Names asked for explicitly (aliases) are unique in their scope
(code 100), and win over a pod name of the same spelling; a holder whose
netns is gone lost its DEL and gives the name up.

``prepare`` checks everything syntactic (names, links, the hosts file's
path and what is on disk there) without changing anything, so bridge can
refuse a request before it creates the first thing.
"""

from __future__ import annotations

import os

from ..cni.attachment import Attachment
from ..cni.errors import ADDRESS_IN_USE, INVALID_CONFIG, STATE_MISSING, CniError
from ..cni.gojson import fold_fields
from . import hostsfile
from .registry import Registry, data_dir_problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..bridge.undo import UndoStack
    from ..cni.jsonio import JSONObject
    from ..cni.skel import CmdArgs
    from ..firewall.isolation import LinkAccess

MAX_NAME = 253
MAX_NAMESPACE = 63
# The CNI_ARGS keys the bridge accepts (the same list BridgeConfig checks).
CNI_ARGS_KEYS = (
    "MAC",
    "IP",
    "K8S_POD_NAME",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
)
_LINK_FIELDS = ("name", "alias")


def name_problem(name: object) -> str | None:
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


def _check_name(name: object, what: str) -> str:
    problem = name_problem(name)
    if problem or not isinstance(name, str):  # (for the checker: a non-string has one)
        raise CniError(INVALID_CONFIG, f"invalid {what}", f"{name!r} {problem}")
    return name


def _check_namespace(ns: str) -> str:
    """A Kubernetes namespace is an RFC 1123 label."""
    if (
        not ns
        or len(ns) > MAX_NAMESPACE
        or not ns.isascii()
        or not ns[0].isalnum()
        or not ns[-1].isalnum()
        or any(not (c.isalnum() or c == "-") for c in ns)
    ):
        raise CniError(INVALID_CONFIG, "invalid K8S_POD_NAMESPACE", f"{ns!r} is not a DNS label")
    return ns


class LinkPlan:
    """What ADD will register and write, checked: built by ``prepare``."""

    __slots__ = ("data_dir", "hosts", "hosts_file", "links", "names", "pod", "scope")

    def __init__(self, req: CmdArgs, data_dir: str = "") -> None:
        rc = req.runtime_config
        args = req.cni_args(CNI_ARGS_KEYS)
        namespace = args.get("K8S_POD_NAMESPACE")
        self.scope = _check_namespace(namespace) if namespace else ""
        pod_name = args.get("K8S_POD_NAME") or None
        if pod_name is not None:
            _check_name(pod_name, "K8S_POD_NAME")
        aliases = rc.get("aliases")
        if isinstance(aliases, dict):  # podman: {"<network>": [...]}
            aliases = aliases.get(req.network) or []
        if aliases is not None and not isinstance(aliases, list):
            raise CniError(INVALID_CONFIG, "invalid aliases", "expected a list or a map of lists")
        names: list[str] = []
        # K8S_POD_NAME is the runtime's identity of the container (the
        # pod's name, podman's container name): never a reason to fail ADD
        # (see the module's doc).  Aliases are the user's request.
        self.pod = pod_name
        for name in aliases or []:
            name = _check_name(name, "container name")
            if name not in names:
                names.append(name)
        self.names = names
        links: list[tuple[str, str]] = []
        target: object
        alias: object
        if not isinstance(rc.get("links") or [], list):
            raise CniError(INVALID_CONFIG, "invalid links", "expected a list")
        for item in rc.get("links") or []:
            if isinstance(item, str):
                target, _, alias = item.partition(":")
                alias = alias or target
            elif isinstance(item, dict):
                item = fold_fields(item, _LINK_FIELDS)
                target, alias = item.get("name"), item.get("alias") or item.get("name")
            else:
                raise CniError(INVALID_CONFIG, "invalid link", repr(item))
            links.append((_check_name(target, "link name"), _check_name(alias, "link alias")))
        self.links = links
        problem = data_dir_problem(data_dir)
        if problem:
            raise CniError(INVALID_CONFIG, "invalid ipam dataDir", f"{data_dir!r}: {problem}")
        self.data_dir = data_dir
        hosts = rc.get("hostsFile")
        if hosts is not None:
            problem = hostsfile.path_problem(hosts, data_dir)
            if problem:
                raise CniError(INVALID_CONFIG, f"invalid hostsFile: it {problem}", repr(hosts))
        self.hosts_file: str | None = hosts
        self.hosts: str | None = hosts or hostsfile.netns_hosts_path(req.netns)
        if links:
            if not self.hosts:
                raise CniError(
                    INVALID_CONFIG,
                    "links need a hosts file",
                    "pass the hostsFile capability, or use a named netns under /run/netns",
                )
            # A runtime's file must be there; the netns one is made if missing.
            hostsfile.check(self.hosts, data_dir, must_exist=bool(hosts))

    @property
    def empty(self) -> bool:
        return not (self.names or self.pod or self.links)


def prepare(req: CmdArgs, data_dir: str = "") -> LinkPlan:
    """Parse and check the request's names, links and hosts file; changes
    nothing.  Errors are code 7."""
    return LinkPlan(req, data_dir)


# The name the code had before prepare existed.
LinkRequest = LinkPlan


def lines_for(entry: JSONObject, reg: Registry) -> list[str]:
    lines = []
    scope = entry.get("scope", "")
    for name, alias in entry.get("links", []):
        owner = reg.owner_of(name, scope)
        if owner is None:
            continue
        for ip in reg.entries[owner].get("ips", []):
            lines.append(hostsfile.link_line(ip, alias, name, entry["tag"]))
    return lines


def _warn(msg: str) -> None:
    import sys

    sys.stderr.write(f"dockline links: {msg}\n")


def _refresh_dependants(
    reg: Registry, scope: str, names: list[str], skip: str, data_dir: str
) -> None:
    for key in reg.dependants(scope, names, skip):
        entry = reg.entries[key]
        if entry.get("hosts"):
            try:
                hostsfile.rewrite(
                    entry["hosts"], entry["tag"], lines_for(entry, reg), data_dir=data_dir
                )
            except (CniError, OSError) as exc:
                # That container's hosts file is gone, unsafe now, or its
                # edit lock is busy: its line stays as it was.
                _warn(f"not updating {entry['hosts']!r}: {exc}")


def _addresses(ips: list[str]) -> list[str]:
    import ipaddress

    try:
        return [str(ipaddress.ip_address(ip)) for ip in ips]
    except ValueError as exc:
        raise CniError(
            INVALID_CONFIG, "links: IPAM returned an invalid address", str(exc)
        ) from None


def on_add(
    req: CmdArgs,
    data_dir: str,
    ips: list[str],
    undo: UndoStack,
    plan: LinkPlan | None = None,
    access: LinkAccess | None = None,
) -> None:
    plan = plan or prepare(req, data_dir)
    if plan.empty:
        return
    ips = _addresses(ips)
    key = req.attachment.key
    tag = req.attachment.hosts_tag
    hosts = plan.hosts
    with Registry(req.network, data_dir) as reg:
        _check_conflicts(reg, req, plan, key, data_dir, drop_stale=True)
        entry = {
            "scope": plan.scope,
            "names": plan.names,
            "ips": ips,
            "hosts": hosts,
            "tag": tag,
            "links": [list(link) for link in plan.links],
            "netns": req.netns,
        }
        if plan.pod:
            entry["pod"] = plan.pod
        reg.put(key, entry)
        reg.save()  # DEL finds the lines below by this entry, even if we die now
        # (and so does this undo: unregistering drops the entry's lines)
        undo.push("unregister names", lambda: on_del(req, data_dir))
        if plan.links:
            assert hosts is not None  # prepare refuses links without a hosts file
            created = hostsfile.rewrite(
                hosts,
                tag,
                lines_for(entry, reg),
                create_default=not plan.hosts_file,
                data_dir=data_dir,
            )
            if created:
                undo.push(f"remove {hosts}", lambda: hostsfile.remove(hosts))
        _refresh_dependants(
            reg, plan.scope, plan.names + ([plan.pod] if plan.pod else []), key, data_dir
        )
        # --- isolation (firewall.isolation): on an icc-off network, links
        # are access; it follows the registry under this lock.
        if access is not None:
            access.after_add(reg, key)
        # ---


def _check_conflicts(
    reg: Registry, req: CmdArgs, plan: LinkPlan, key: str, data_dir: str, drop_stale: bool
) -> None:
    """A name another container asked for (100), a link to a name nobody
    has (7).  ``drop_stale``: a stale holder's registration is removed
    (under the lock ADD writes in); otherwise it is only read as free."""
    for name in plan.names:
        owner = reg.explicit_owner(plan.scope, name, skip=key)
        if owner is not None and _stale(reg.entries[owner]):
            if drop_stale:
                stale = reg.remove(owner)
                _isolation_after_remove(reg, [stale])
                _drop_own_lines(stale, data_dir)
            owner = None
        if owner is not None:
            where = f" in namespace {plan.scope!r}" if plan.scope else ""
            raise CniError(
                ADDRESS_IN_USE,
                f"the name {name!r} is already taken on network {req.network!r}{where}",
                f"by {owner}",
            )
    for name, _ in plan.links:
        if reg.owner_of(name, plan.scope) is None:
            raise CniError(
                INVALID_CONFIG,
                f"cannot link to {name!r}",
                f"no container named {name!r} on network {req.network!r}"
                + (f" in namespace {plan.scope!r}" if plan.scope else ""),
            )


def check_registry(req: CmdArgs, plan: LinkPlan) -> None:
    """What ``on_add`` would refuse for the registry's sake, found before
    ADD creates anything (nothing is written; on_add checks again under
    the lock it writes in, for what changed in between)."""
    if not (plan.names or plan.links):
        return
    registry = Registry(req.network, plan.data_dir)
    if not registry.exists():
        if plan.links:
            name = plan.links[0][0]
            raise CniError(
                INVALID_CONFIG,
                f"cannot link to {name!r}",
                f"no container named {name!r} on network {req.network!r}",
            )
        return
    with registry as reg:
        _check_conflicts(
            reg,
            req,
            plan,
            req.attachment.key,
            plan.data_dir,
            drop_stale=False,
        )


def _stale(entry: JSONObject) -> bool:
    """A registration whose network namespace is gone lost its DEL (a
    crash, a reboot with /var/lib/cni on disk): its names are free.  Only
    root can remove a namespace, so this cannot be used to steal a name."""
    netns = entry.get("netns")
    if not isinstance(netns, str) or not netns.startswith("/"):
        return False  # registered before dockline recorded it: keep
    try:
        os.lstat(netns)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def _drop_own_lines(entry: JSONObject | None, data_dir: str) -> None:
    """Remove the link lines a departing container had in its hosts file;
    one that is gone, unsafe or busy is skipped (DEL and GC still succeed)."""
    if entry and entry.get("links") and entry.get("hosts"):
        try:
            hostsfile.rewrite(entry["hosts"], entry["tag"], [], data_dir=data_dir)
        except (CniError, OSError) as exc:
            _warn(f"left the link lines in {entry['hosts']!r}: {exc}")


def _isolation_after_remove(reg: Registry, gone: list[JSONObject | None]) -> None:
    """Entries of an icc-off network carry the firewall elements their
    links made (firewall.isolation); removed, those go, and their linkers
    lose access to them.  Nothing is imported for other networks."""
    if any(entry and "isolation" in entry for entry in gone):
        from ..firewall import isolation

        isolation.after_remove(reg, gone)


def on_del(req: CmdArgs, data_dir: str) -> None:
    if data_dir_problem(data_dir):
        return  # ADD refuses such a dataDir: nothing was registered
    registry = Registry(req.network, data_dir)
    if not registry.exists():
        return
    with registry as reg:
        entry = reg.remove(req.attachment.key)
        _isolation_after_remove(reg, [entry])
    _drop_own_lines(entry, data_dir)


def on_gc(network: str, data_dir: str, valid: set[Attachment]) -> None:
    if data_dir_problem(data_dir):
        return
    keep = {a.key for a in valid}
    registry = Registry(network, data_dir)
    if not registry.exists():
        return
    with registry as reg:
        gone = [reg.remove(key) for key in [k for k in reg.entries if k not in keep]]
        _isolation_after_remove(reg, gone)
    for entry in gone:
        _drop_own_lines(entry, data_dir)


def on_check(req: CmdArgs, data_dir: str) -> None:
    plan = prepare(req, data_dir)
    if not plan.links:
        return
    key = req.attachment.key
    with Registry(req.network, data_dir) as reg:
        entry = reg.entries.get(key)
        if entry is None:
            raise CniError(STATE_MISSING, "links: the container is not registered on the network")
        expected = lines_for(entry, reg)
    have = hostsfile.marked_lines(entry["hosts"], entry["tag"])
    missing = [line for line in expected if line not in have]
    if missing:
        raise CniError(
            STATE_MISSING,
            "links: hosts file lines missing or stale",
            "; ".join(line.split("\t# ")[0].replace("\t", " ") for line in missing),
        )

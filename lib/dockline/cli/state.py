"""What is really there for a network, gathered read-only from the places
the plugins keep it: the host-local store, the host's veths on the
network's bridge, the names registry, the firewall tables and libcni's
result cache.  For ``networks``, ``inspect`` and ``gc``: an operator
tool, so it may read whole tables (never on a plugin's path).

Each source is read defensively: one that cannot be read is reported as
a problem, it does not hide the others.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field

from ..bridge.config import BridgeConfig
from ..cni.attachment import HOST_VETH_PREFIX, Attachment
from ..cni.errors import CniError
from ..cni.skel import CmdArgs
from ..ipam import config as ipam_config
from ..ipam.disk import DEFAULT_DATA_DIR, DiskStore
from ..names import registry as names_registry
from . import libcni

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cni.jsonio import JSONObject
    from ..ipam.ranges import Range, RangeSet


@dataclass
class AttachmentState:
    container_id: str
    ifname: str
    addresses: list[str] = field(default_factory=list)
    cached: bool = False
    netns: str = ""  # from the cache (libcni records it)
    netns_alive: bool | None = None  # None: unknown
    host_veth: str = ""  # the name dockline's bridge gives it
    host_veth_present: bool = False
    names: list[str] = field(default_factory=list)
    pod: str = ""
    links: list[str] = field(default_factory=list)
    hosts_file: str = ""
    ports: list[str] = field(default_factory=list)
    firewall: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # where it was seen

    @property
    def alive(self) -> bool:
        """Its container still exists, as far as anything shows: the netns
        path the cache recorded exists, or its veth does (a veth pair dies
        with the namespace of its container end)."""
        return bool(self.netns_alive) or self.host_veth_present

    @property
    def stale(self) -> bool:
        """Left by a container that is gone and that no runtime knows."""
        return not self.cached and not self.alive

    def to_json(self) -> JSONObject:
        out = {_JSON_KEYS.get(k, k): v for k, v in asdict(self).items()}
        out["alive"] = self.alive
        out["stale"] = self.stale
        return out


# --json spells keys as CNI does (camelCase)
_JSON_KEYS = {
    "container_id": "containerID",
    "netns_alive": "netnsAlive",
    "host_veth": "hostVeth",
    "host_veth_present": "hostVethPresent",
    "hosts_file": "hostsFile",
}


def _ip_order(text: str) -> tuple[int, int]:
    try:
        ip = ipaddress.ip_address(text)
        return (ip.version, int(ip))
    except ValueError:
        return (9, 0)


@dataclass
class RangeUse:
    subnet: str
    range: str
    size: int
    used: int

    @property
    def free(self) -> int:
        return max(self.size - self.used, 0)


@dataclass
class NetworkState:
    net: libcni.NetworkList
    chain: list[str] = field(default_factory=list)
    bridge: str = ""
    data_dir: str = ""
    ranges: list[RangeUse] = field(default_factory=list)
    attachments: list[AttachmentState] = field(default_factory=list)
    orphan_veths: list[str] = field(default_factory=list)
    orphan_firewall: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _request(net: libcni.NetworkList, plugin: JSONObject) -> CmdArgs:
    conf = libcni.plugin_config(net, plugin, None, None)
    return CmdArgs("ADD", {}, b"", conf, net.cni_version or "0.1.0")


def _run(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.decode(errors="replace") if proc.returncode == 0 else None


def host_links() -> list[JSONObject]:
    out = _run(["ip", "-j", "-d", "link", "show"])
    try:
        return json.loads(out) if out else []
    except ValueError:
        return []


def _range_size(rng: Range) -> int:
    size = int(rng.end) - int(rng.start) + 1
    if int(rng.start) <= int(rng.gateway) <= int(rng.end):
        size -= 1
    return size


def _ipam(state: NetworkState, plugin: JSONObject) -> list[RangeSet]:
    """dataDir and range sets of a host-local IPAM, by its own loader."""
    ipam = plugin.get("ipam")
    if not isinstance(ipam, dict) or ipam.get("type") != "host-local":
        return []
    req = _request(state.net, plugin)
    try:
        conf = ipam_config.load(req)
        state.data_dir = conf.data_dir
        return conf.range_sets
    except CniError as exc:
        state.problems.append(f"ipam: {exc}")
        state.data_dir = ipam_config.data_dir_for_cleanup(req.config) or ""
        return []


def _firewall_objects(network: str) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """(objects by tag, published ports by tag, problems): every firewall
    object carrying a tag of this network, in either backend (the firewall
    package's own inventory: it knows its backends' layouts)."""
    from ..firewall import inventory

    return inventory.objects(network)


def _registry(state: NetworkState) -> dict[str, JSONObject]:
    """The names registry's entries, read without its lock (nothing is
    changed) and without trusting their shape: the format may evolve."""
    base = os.path.join(state.data_dir or DEFAULT_DATA_DIR, state.net.name)
    out: dict[str, JSONObject] = {}
    directory = os.path.join(base, names_registry.DIR)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        names = []
    except OSError as exc:
        state.problems.append(f"names registry {directory}: {exc}")
        names = []
    for name in names:
        if not name.startswith("e-"):
            continue
        try:
            with open(os.path.join(directory, name), "rb") as f:
                doc = json.loads(f.read())
        except (OSError, ValueError) as exc:
            state.problems.append(f"names registry {directory}/{name}: {exc}")
            continue
        ok = isinstance(doc, dict) and isinstance(doc.get("key"), str)
        if ok and isinstance(doc.get("entry"), dict):
            out[doc["key"]] = doc["entry"]
    legacy = os.path.join(base, names_registry.FILE)  # before the first call converts it
    try:
        with open(legacy, "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        return out
    except (OSError, ValueError) as exc:
        state.problems.append(f"names registry {legacy}: {exc}")
        return out
    entries = doc.get("attachments") if isinstance(doc, dict) else None
    for key, entry in entries.items() if isinstance(entries, dict) else []:
        if isinstance(entry, dict):
            out.setdefault(key, entry)
    return out


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _cached_ports(entry: JSONObject) -> dict[tuple[str, str], str]:
    """(hostPort, proto) -> containerPort from the cached portMappings."""
    caps_value = entry.get("capabilityArgs")
    caps = caps_value if isinstance(caps_value, dict) else {}
    out = {}
    for m in caps.get("portMappings") or [] if isinstance(caps.get("portMappings"), list) else []:
        if isinstance(m, dict):
            low = {str(k).lower(): v for k, v in m.items()}
            out[(str(low.get("hostport")), str(low.get("protocol") or "tcp").lower())] = str(
                low.get("containerport")
            )
    return out


def gather(net: libcni.NetworkList, with_firewall: bool = True) -> NetworkState:
    state = NetworkState(net=net, chain=[str(p.get("type")) for p in net.plugins])
    range_sets: list[RangeSet] = []
    has_bridge = False
    for plugin in net.plugins:
        if plugin.get("type") == "bridge":
            has_bridge = True
            try:
                state.bridge = BridgeConfig(_request(net, plugin), for_cleanup=True).bridge
            except CniError as exc:
                state.problems.append(f"bridge: {exc}")
        if not range_sets:
            range_sets = _ipam(state, plugin)
    found: dict[tuple[str, str], AttachmentState] = {}

    def get(cid: str, ifname: str, source: str) -> AttachmentState:
        att = found.get((cid, ifname))
        if att is None:
            att = found[(cid, ifname)] = AttachmentState(cid, ifname)
        if source not in att.sources:
            att.sources.append(source)
        return att

    reservations = []
    if state.data_dir:
        try:
            reservations = list(DiskStore(net.name, state.data_dir).reservations())
        except CniError as exc:  # e.g. a planted symlink the store refuses to follow
            state.problems.append(f"ipam store: {exc}")
    for res in reservations:
        if res.container_id:
            get(res.container_id, res.ifname or "?", "ipam").addresses.append(res.ip)
    for rs in range_sets:
        for rng in rs.ranges:
            used = 0
            for res in reservations:
                try:
                    if rng.contains(ipaddress.ip_address(res.ip)):
                        used += 1
                except ValueError:
                    continue
            state.ranges.append(
                RangeUse(str(rng.subnet), f"{rng.start}-{rng.end}", _range_size(rng), used)
            )
    cached_ports: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
    for entry in libcni.cached_entries(net.name):
        att = get(entry["containerId"], entry["ifName"], "cache")
        att.cached = True
        cached_netns = entry.get("netns")
        att.netns = cached_netns if isinstance(cached_netns, str) else ""
        att.netns_alive = os.path.exists(att.netns) if att.netns else None
        cached_ports[(att.container_id, att.ifname)] = _cached_ports(entry)
        cached_result = entry.get("result")
        result = cached_result if isinstance(cached_result, dict) else {}
        if not att.addresses:
            att.addresses = [
                str(ip.get("address", "")).split("/")[0]
                for ip in result.get("ips") or []
                if isinstance(ip, dict)
            ]
    for key, entry in _registry(state).items():
        cid, _, ifname = key.rpartition(":")
        if not cid:
            continue
        att = get(cid, ifname, "names")
        att.names = _strings(entry.get("names"))
        att.pod = str(entry.get("pod") or "")
        att.links = (
            [
                ":".join(_strings(link)) if isinstance(link, list) else str(link)
                for link in entry.get("links") or []
            ]
            if isinstance(entry.get("links"), list)
            else []
        )
        att.hosts_file = str(entry.get("hosts") or "")
        netns = entry.get("netns")
        if not att.netns and isinstance(netns, str) and netns.startswith("/"):
            att.netns = netns  # newer registries record it
            att.netns_alive = os.path.exists(netns)
    # veths: dockline's bridge names the host end after the attachment
    links = host_links() if has_bridge else []
    on_bridge = {
        link.get("ifname") for link in links if state.bridge and link.get("master") == state.bridge
    }
    if has_bridge:
        for att in found.values():
            att.host_veth = Attachment(net.name, att.container_id, att.ifname).host_veth
            att.host_veth_present = att.host_veth in on_bridge
            if att.host_veth_present:
                att.sources.append("veth")
        known = {att.host_veth for att in found.values()}
        state.orphan_veths = sorted(
            n for n in on_bridge if n and n.startswith(HOST_VETH_PREFIX) and n not in known
        )
    if with_firewall:
        objects, ports, problems = _firewall_objects(net.name)
        state.problems += problems
        tags: dict[str, AttachmentState] = {}
        for att in found.values():
            tags[Attachment(net.name, att.container_id, att.ifname).tag] = att
        for tag, objs in objects.items():
            owner = tags.get(tag)
            if owner is None:
                state.orphan_firewall += objs
            else:
                owner.firewall += objs
                if "firewall" not in owner.sources:
                    owner.sources.append("firewall")
        for tag, published in ports.items():
            owner = tags.get(tag)
            if owner is None:
                continue
            wanted = cached_ports.get((owner.container_id, owner.ifname), {})
            for p in published:
                host, _, proto = p.partition("/")
                to = wanted.get((host.rpartition(":")[2], proto))
                owner.ports.append(f"{p}->{to}" if to else p)
    for att in found.values():
        att.addresses.sort(key=_ip_order)
    state.attachments = sorted(found.values(), key=lambda a: (a.container_id, a.ifname))
    return state

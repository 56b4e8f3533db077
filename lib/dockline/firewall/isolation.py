"""Isolation: Docker's ``icc`` switch, with links as the exceptions, and no
traffic between networks.

A bridge network with ``"icc": false`` gives its containers no path to one
another except the ones its links open (web linked to db: web opens
connections to db, on every port, or only on the ports db declares with
the ``expose`` capability; replies come back; db does not open to web).
A network with ``"isolate": true`` exchanges no traffic with another
bridge of the host, except published ports, replies, and the bridges its
``isolateExcept`` names.

How, for ``icc`` false (why it is built this way):

- No layer-2 path.  Each container routes its own subnet via the gateway
  (two routes, each half the subnet, more specific than the connected
  route), and the bridge family drops IP frames going straight from one
  container's port to another's.  Traffic between containers is therefore
  routed by the host and always reaches the ``inet`` forward hook, where
  connection tracking exists, whatever br_netfilter does.  (Stateful
  filtering of bridged frames would need nf_conntrack_bridge, which many
  kernels lack, and this one: a ``ct`` match in the bridge family is
  refused there.)  One exception: with br_netfilter, a packet the host
  DNATs or un-NATs to a container of the same bridge (a published port,
  its replies) is bridged from the sender's port by br_netfilter; it went
  through the ``icc`` chain first, which marks what it judges (bit 24,
  cleared again in the bridge's forward chain), and the bridge's drop
  spares marked frames.  Not the kernel's isolated-port flag: it would
  drop those frames too.  The host's ICMP redirects onto such a bridge are
  dropped, or a container would be told to go direct, where it cannot.
- Who is sending.  A routed packet no longer says which port it came in
  by, so the bridge family checks where it does: a packet entering from a
  container's port must carry one of that container's addresses (its
  IPv4 and IPv6 addresses; IPv6 link-local and unspecified for neighbour
  discovery; ARP likewise), else it is dropped.  The port is known by its
  name (``iifname``, dockline's host veth: ``meta ibrname`` needs
  CONFIG_NFT_BRIDGE_META, see ra_guard): set ``icc_ports`` holds it,
  commented with the network's tag and the addresses, so DEL (which knows
  the name) and GC (which reads the comments) find the ``port . address``
  elements of ``src4``/``src6`` without other state.
- What is allowed.  table ``inet dockline_isolation``, chain ``icc``
  (traffic in and out of the same icc-off bridge): established and related
  packets, connections to published ports (``ct status dnat``: portmap from
  the host, from other containers, hairpin), neighbour discovery (bridged
  under br_netfilter from ports that are not containers'), and what a
  link opens: ``bridge . src . dst`` in ``link4``/``link6``, or ``bridge .
  src . dst . protocol . port`` in ``dport4``/``dport6`` (hash sets) or,
  for a range, ``port4``/``port6`` (interval sets); everything else is
  dropped.  The elements a container's links make are recorded in its
  entry of the name registry (``isolation``), and changed under the
  registry's lock when it or its targets come and go: a target re-added
  with a new address moves its linkers' access with it, as their hosts
  lines move.
- br_netfilter.  When it is on, frames bridged between a container port and
  another port (an uplink) also traverse the ``inet`` forward hook, with
  the bridge as both interfaces: the ``icc`` chain accepts neighbour
  discovery there, so IPv6 is not cut.  When it is off nothing here
  depends on it.  Both are tested.

Every rule is constant: the tables are written by one idempotent ``nft
-f`` when a netfilter netlink query finds one missing (as ra_guard does).
ADD, DEL, CHECK and GC only add, delete or get set elements, in-process
over netfilter netlink (``nfnl``): no process, no listing, a cost that does
not grow with the number of containers (GC dumps one set).
"""

from __future__ import annotations

from .. import proc
from ..cni.errors import INVALID_CONFIG, STATE_MISSING, CniError
from . import nft_apply, tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..bridge.config import BridgeConfig
    from ..cni.attachment import Attachment
    from ..cni.jsonio import JSONObject
    from ..cni.skel import CmdArgs
    from ..names.registry import Registry
    from ..netlink import Link, Netns
    from . import nfnl

NAME = "dockline_isolation"
INET = f"inet {NAME}"
BRIDGE = f"bridge {NAME}"
RECORD = "isolation"  # the key of a registry entry's record
MAX_EXPOSE = 256
# The packet mark bit that carries "DNATed, accepted" from the inet forward
# hook to the bridge's (br_netfilter only); cleared there.  Not portmap's
# (bit 13 by default) nor kube-proxy's (14, 15).
MARK = 1 << 24

# A registry entry's record: {"bridge": name, "elements": [element, ...]},
# an element being [kind, src, dst] (kind "l": every port) or
# [kind, src, dst, proto, lo, hi] (kind "p": declared ports).
if TYPE_CHECKING:
    Element = tuple[str | int, ...]  # as above


# --- options -----------------------------------------------------------------


def parse_expose(value: object) -> list[tuple[str, int, int]]:
    """The ports a container declares (capability ``expose``): Docker's
    ``"5432/tcp"``, ``"53/udp"``, ``"8000-8010/tcp"``, ``"80"`` (tcp).
    Anything else is code 7."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise CniError(INVALID_CONFIG, "invalid expose", "expected a list of 'port[/protocol]'")
    if len(value) > MAX_EXPOSE:
        raise CniError(INVALID_CONFIG, "invalid expose", f"more than {MAX_EXPOSE} entries")
    out: list[tuple[str, int, int]] = []
    for item in value:
        if not isinstance(item, str) or not item.isascii() or len(item) > 20:
            raise CniError(INVALID_CONFIG, "invalid expose entry", repr(item)[:80])
        ports, _, proto = item.partition("/")
        proto = tokens.protocol(proto or "tcp", "expose protocol")
        lo_text, dash, hi_text = ports.partition("-")
        lo, hi = _port_text(lo_text, item), _port_text(hi_text if dash else lo_text, item)
        if lo > hi:
            raise CniError(INVALID_CONFIG, "invalid expose entry", f"{item!r}: {lo} > {hi}")
        if (proto, lo, hi) not in out:
            out.append((proto, lo, hi))
    return out


def _port_text(text: str, item: str) -> int:
    if not (text.isdigit() and text.isascii() and len(text) <= 5) or not 0 < int(text) < 65536:
        raise CniError(INVALID_CONFIG, "invalid expose entry", f"{item!r}: not a port 1-65535")
    return int(text)


def parse_except(value: object) -> list[str]:
    """``isolateExcept``: bridge names, each an interface name."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 64:
        raise CniError(INVALID_CONFIG, "invalid isolateExcept", "expected a list of bridge names")
    names: list[str] = []
    for name in value:
        name = tokens.ifname(name, "isolateExcept bridge name")
        if name not in names:
            names.append(name)
    return names


# --- the constant tables -----------------------------------------------------


def _inet_base() -> list[str]:
    t = INET
    v4 = "ipv4_addr"
    v6 = "ipv6_addr"
    lines = [f"add table {t}"]
    for name, kind in (
        ("icc_br", "ifname"),
        ("icc_self", "ifname . ifname"),
        ("iso_br", "ifname"),
        ("iso_self", "ifname . ifname"),
        ("allowed", "ifname . ifname"),
        ("link4", f"ifname . {v4} . {v4}"),
        ("link6", f"ifname . {v6} . {v6}"),
    ):
        lines.append(f"add set {t} {name} {{ type {kind}; }}")
    for name, addr in (("dport4", v4), ("dport6", v6)):  # single ports: hash sets
        lines.append(
            f"add set {t} {name} {{ type ifname . {addr} . {addr} . inet_proto . inet_service; }}"
        )
    # Port ranges: interval sets (pipapo), whose updates grow with their
    # size, so only ranges go there.
    for name, addr in (("port4", v4), ("port6", v6)):
        lines.append(
            f"add set {t} {name} {{ type ifname . {addr} . {addr} . inet_proto . inet_service; "
            "flags interval; }"
        )
    lines += [
        f"add chain {t} forward {{ type filter hook forward priority -5; policy accept; }}",
        f"add chain {t} output {{ type filter hook output priority -5; policy accept; }}",
        f"add chain {t} icc",
        f"add chain {t} between",
    ]
    lines += [f"flush chain {t} {c}" for c in ("forward", "output", "icc", "between")]
    transport = "meta l4proto { tcp, udp, sctp }"
    lines += [
        f"add rule {t} forward iifname . oifname @icc_self goto icc",
        f"add rule {t} forward iifname . oifname @iso_self accept",
        f'add rule {t} forward iifname @iso_br meta oifkind "bridge" goto between',
        f'add rule {t} forward meta iifkind "bridge" oifname @iso_br goto between',
        # Marked: what this chain accepts and br_netfilter bridges (a packet
        # it un-NATs or DNATs to a container of the same bridge) may then
        # pass from port to port, see _bridge_base.
        f"add rule {t} icc meta mark set meta mark or {MARK:#x}",
        f"add rule {t} icc ct state established,related accept",
        f"add rule {t} icc ct status dnat accept",
        f"add rule {t} icc icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept",
        f"add rule {t} icc iifname . ip saddr . ip daddr @link4 accept",
        f"add rule {t} icc iifname . ip6 saddr . ip6 daddr @link6 accept",
        f"add rule {t} icc {transport} iifname . ip saddr . ip daddr . meta l4proto . th dport "
        "@dport4 accept",
        f"add rule {t} icc {transport} iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport "
        "@dport6 accept",
        f"add rule {t} icc {transport} iifname . ip saddr . ip daddr . meta l4proto . th dport "
        "@port4 accept",
        f"add rule {t} icc {transport} iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport "
        "@port6 accept",
        f"add rule {t} icc drop",
        f"add rule {t} between ct state established,related accept",
        f"add rule {t} between ct status dnat accept",
        f"add rule {t} between iifname . oifname @allowed accept",
        f"add rule {t} between drop",
        f"add rule {t} output oifname @icc_br icmp type redirect drop",
        f"add rule {t} output oifname @icc_br icmpv6 type nd-redirect drop",
    ]
    return lines


def _bridge_base() -> list[str]:
    t = BRIDGE
    return [
        f"add table {t}",
        # A container port of an icc-off network, commented with its
        # network's tag and its addresses (so DEL finds its other elements)
        f"add set {t} icc_ports {{ type ifname; }}",
        f"add set {t} src4 {{ type ifname . ipv4_addr; }}",  # port . its address
        f"add set {t} src6 {{ type ifname . ipv6_addr; }}",
        f"add chain {t} prerouting {{ type filter hook prerouting priority -200; policy accept; }}",
        f"add chain {t} forward {{ type filter hook forward priority 100; policy accept; }}",
        f"add chain {t} guard",
        f"flush chain {t} prerouting",
        f"flush chain {t} forward",
        f"flush chain {t} guard",
        f"add rule {t} prerouting iifname @icc_ports jump guard",
        # A container sends with its own addresses only (and ARP probes,
        # IPv6 neighbour discovery and DAD with theirs).
        f"add rule {t} guard meta protocol ip iifname . ip saddr @src4 return",
        f"add rule {t} guard meta protocol arp arp saddr ip 0.0.0.0 return",
        f"add rule {t} guard meta protocol arp iifname . arp saddr ip @src4 return",
        f"add rule {t} guard meta protocol ip6 ip6 saddr {{ ::, fe80::/10 }} return",
        f"add rule {t} guard meta protocol ip6 iifname . ip6 saddr @src6 return",
        f"add rule {t} guard meta protocol {{ ip, ip6, arp }} drop",
        # No IP frame goes from one container's port straight to another's:
        # they route via the gateway.  Except, with br_netfilter, a packet
        # the host DNATs or un-NATs to a container of the same bridge,
        # which br_netfilter bridges from the sender's port; the icc chain
        # marked it (this chain runs after br_netfilter's forward hook).
        f"add rule {t} forward iifname @icc_ports oifname @icc_ports "
        f"meta protocol {{ ip, ip6 }} meta mark & {MARK:#x} != {MARK:#x} drop",
        f"add rule {t} forward meta mark & {MARK:#x} == {MARK:#x} "
        f"meta mark set meta mark and {~MARK & 0xFFFFFFFF:#x}",
    ]


def table_exists(family: str) -> bool | None:
    """Whether our table of ``family`` exists in this network namespace:
    one GETTABLE on nfnl's socket (a socket of its own would wait, when
    closed, for the kernel's deferred work after a delete: ~15 ms).  None
    when the kernel would not say."""
    from . import nfnl

    try:
        return nfnl.get_table(nfnl.FAMILIES[family], NAME)
    except OSError:
        return None


def _base_lines(icc: bool) -> list[str]:
    """The constant tables, when one is missing (a first ADD), or lacks the
    newest of its sets (written by an older dockline): one GETSET each.
    The bridge-family table only filters icc-off networks: a network that
    is only isolated from others does not need it."""
    from . import nfnl

    lines: list[str] = []
    tables = [("inet", "dport4", _inet_base)]
    if not icc:
        tables.append(("bridge", "src4", _bridge_base))
    for family, probe, base in tables:
        try:
            present = nfnl.get_set(nfnl.FAMILIES[family], NAME, probe)
        except OSError:
            present = False  # the install is idempotent
        if not present:
            lines += base()
    return lines


def _needs_nft() -> None:
    if not proc.which("nft"):
        raise CniError(INVALID_CONFIG, "icc and isolate need nftables", "nft is not installed")


def _addr(address: str) -> bytes:
    from . import nfnl

    return nfnl.ipv6(address) if ":" in address else nfnl.ipv4(address)


# --- per network -------------------------------------------------------------


def _network_elements(
    bridge: str, icc: bool, isolate: bool, allow: list[str]
) -> dict[str, list[nfnl.Element]]:
    """The network's own elements (its bridge in the sets); adding them
    again is no error.  They stay while the bridge does, as the bridge
    itself stays."""
    from . import nfnl

    br = nfnl.ifname(bridge, "bridge name")
    pair = nfnl.concat(br, br)
    out: dict[str, list[nfnl.Element]] = {}
    if not icc:
        out["icc_br"] = [nfnl.Element(br)]
        out["icc_self"] = [nfnl.Element(pair)]
    if isolate:
        out["iso_br"] = [nfnl.Element(br)]
        out["iso_self"] = [nfnl.Element(pair)]
        allowed = []
        for other in allow:
            name = nfnl.ifname(other, "isolateExcept bridge name")
            allowed += [nfnl.Element(nfnl.concat(br, name)), nfnl.Element(nfnl.concat(name, br))]
        if allowed:
            out["allowed"] = allowed
    return out


# --- per attachment: the port's source check ---------------------------------

_MAX_COMMENT = 250


def _port_elements(att: Attachment, port: str, ips: list[str]) -> dict[str, list[nfnl.Element]]:
    """The port in icc_ports (commented: the network's tag, then the
    addresses) and ``port . address`` in src4/src6."""
    import ipaddress

    from . import nfnl

    name = nfnl.ifname(port, "host interface")
    addrs = [str(ipaddress.ip_interface(ip).ip) for ip in ips]
    text = " ".join([tokens.hex_tag(att.network_tag), *addrs])
    if len(text) > _MAX_COMMENT:
        raise CniError(
            INVALID_CONFIG, "icc false: too many addresses on one interface", ", ".join(addrs)
        )
    return {
        "icc_ports": [nfnl.Element(name, userdata=nfnl.comment(text))],
        "src4": [nfnl.Element(nfnl.concat(name, _addr(a))) for a in addrs if ":" not in a],
        "src6": [nfnl.Element(nfnl.concat(name, _addr(a))) for a in addrs if ":" in a],
    }


def _apply(table_family: int, elements: dict[str, list[nfnl.Element]]) -> None:
    from . import nfnl

    batch = nfnl.Batch(table_family, NAME)
    for set_name, items in elements.items():
        batch.add_elements(set_name, items)
    batch.commit()


def _port_keys(port: str) -> dict[str, list[nfnl.Element]] | None:
    """What ADD made for ``port``, found from its icc_ports element's
    comment; None when the port is not there."""
    from . import nfnl

    name = nfnl.ifname(port, "host interface")
    found = nfnl.get_element(nfnl.BRIDGE, NAME, "icc_ports", name)
    if found is None:
        return None
    keys: dict[str, list[nfnl.Element]] = {
        "icc_ports": [nfnl.Element(name)],
        "src4": [],
        "src6": [],
    }
    for word in (found.comment or "").split()[1:]:
        try:
            key = nfnl.Element(nfnl.concat(name, _addr(word)))
        except CniError:
            continue  # not an address: not ours to act on
        keys["src6" if ":" in word else "src4"].append(key)
    return keys


def _subnet_via_gateway(ns: Netns, link: Link, ips: list[JSONObject]) -> None:
    """The container routes its own subnet through the gateway: the two
    halves of the subnet beat the connected route (longest prefix)."""
    import ipaddress

    for ip in ips:
        net = ipaddress.ip_interface(ip["address"]).network
        gateway = ip.get("gateway")
        if not gateway or net.prefixlen >= net.max_prefixlen:
            continue
        for half in net.subnets(prefixlen_diff=1):
            ns.add_route(str(half), gateway=gateway, link=link, onlink=True, exist_ok=True)


def add_port(
    att: Attachment,
    bridge: str,
    port: str,
    ips: list[JSONObject],
    ns: Netns,
    container_link: Link,
    *,
    icc: bool,
    isolate: bool,
    allow: list[str],
) -> None:
    """ADD: the tables (first time: one nft process), the network's
    elements, and for an icc-off network the port's source check and the
    container's routes; over netfilter netlink, no process."""
    from . import nfnl

    _needs_nft()
    base = _base_lines(icc)
    if base:
        nft_apply(base, "installing the isolation tables")
    _apply(nfnl.INET, _network_elements(bridge, icc, isolate, allow))
    if not icc:
        _apply(nfnl.BRIDGE, _port_elements(att, port, [ip["address"] for ip in ips]))
        _subnet_via_gateway(ns, container_link, ips)


def delete_port(att: Attachment) -> None:
    """DEL: the port's source check.  A GETTABLE when the table was never
    made, else a GETSETELEM and one transaction; what is gone is fine."""
    if not table_exists("bridge"):
        return
    from . import nfnl

    keys = _port_keys(att.host_veth)
    if keys:
        nfnl.delete_many(nfnl.BRIDGE, NAME, keys)


def gc_ports(network_tag: str, keep: set[str]) -> None:
    """GC: the source checks of this network's ports not in ``keep`` (host
    veth names): one dump of icc_ports."""
    if not table_exists("bridge"):
        return
    from . import nfnl

    for element in nfnl.dump_elements(nfnl.BRIDGE, NAME, "icc_ports"):
        words = (element.comment or "").split()
        port = element.key.rstrip(b"\0").decode(errors="replace")
        if not words or words[0] != network_tag or port in keep:
            continue
        keys = _port_keys(port) if port.isascii() and port.isprintable() else None
        if keys:
            nfnl.delete_many(nfnl.BRIDGE, NAME, keys)


def check_port(att: Attachment) -> None:
    """CHECK: the port's elements."""
    from . import nfnl

    keys = _port_keys(att.host_veth)
    missing = keys is None or any(
        nfnl.get_element(nfnl.BRIDGE, NAME, set_name, key.key) is None
        for set_name, items in keys.items()
        for key in items
    )
    if missing:
        raise CniError(STATE_MISSING, "isolation: the container port's source check is missing")


# --- links: the elements, kept with the name registry ------------------------


def _set_element(bridge: str, e: Element) -> tuple[str, nfnl.Element]:
    """(set, element) for a recorded element, from parsed values only."""
    import ipaddress

    from . import nfnl

    br = nfnl.ifname(bridge, "bridge name")
    src, dst = ipaddress.ip_address(e[1]), ipaddress.ip_address(e[2])
    if src.version != dst.version:
        raise ValueError("mixed address families")
    fam = "4" if src.version == 4 else "6"
    pair = nfnl.concat(br, _addr(str(src)), _addr(str(dst)))
    if e[0] == "l" and len(e) == 3:
        return "link" + fam, nfnl.Element(pair)
    if e[0] == "p" and len(e) == 6:
        proto = nfnl.proto(tokens.protocol(e[3]))
        lo, hi = tokens.port(e[4]), tokens.port(e[5])
        key = nfnl.concat(pair, proto, nfnl.port(lo))
        if lo == hi:
            return "dport" + fam, nfnl.Element(key)
        return "port" + fam, nfnl.Element(key, key_end=nfnl.concat(pair, proto, nfnl.port(hi)))
    raise ValueError(f"not an isolation element: {e!r}")


def _by_set(bridge: str, elements: list[Element]) -> dict[str, list[nfnl.Element]]:
    out: dict[str, list[nfnl.Element]] = {}
    for e in elements:
        name, element = _set_element(bridge, e)
        out.setdefault(name, []).append(element)
    return out


def _names_of(entry: JSONObject) -> list[str]:
    names = list(entry.get("names") or [])
    if entry.get("pod"):
        names.append(entry["pod"])
    return names


def _desired(reg: Registry, key: str) -> list[Element]:
    """What the links of ``key`` open, from the registry as it is now."""
    entry = reg.entries[key]
    scope = entry.get("scope", "")
    out: list[Element] = []
    for link in entry.get("links") or []:
        owner = reg.owner_of(link[0], scope)
        if owner is None or owner == key:
            continue
        target = reg.entries[owner]
        expose = target.get("expose") or []
        for src in entry.get("ips") or []:
            for dst in target.get("ips") or []:
                if (":" in src) != (":" in dst):
                    continue
                if not expose:
                    e: Element = ("l", src, dst)
                    if e not in out:
                        out.append(e)
                for proto, lo, hi in expose:
                    e = ("p", src, dst, proto, lo, hi)
                    if e not in out:
                        out.append(e)
    return out


def _dependants(reg: Registry, names: list[str], scope: str, skip: str) -> list[str]:
    """This host's containers linking to ``names`` (the registry's index)
    that carry link elements."""
    return [key for key in reg.dependants(scope, names, skip) if RECORD in reg.entries[key]]


def _record(entry: JSONObject) -> list[Element]:
    rec = entry.get(RECORD)
    elements = rec.get("elements") if isinstance(rec, dict) else None
    return [tuple(e) for e in elements] if isinstance(elements, list) else []


def _sync(reg: Registry, keys: list[str], gone: list[JSONObject]) -> bool:
    """Bring the elements of ``keys`` to what the registry says, and remove
    those of the ``gone`` entries (netfilter netlink: one transaction of
    deletes, what is gone being fine, and one of adds).  The registry is
    saved with the union first, so an interrupted change leaves nothing
    that DEL or GC would not find."""
    from . import nfnl

    plans = []
    doomed: list[tuple[str, list[Element]]] = []
    added: list[tuple[str, list[Element]]] = []
    for entry in gone:
        old = _record(entry)
        if old:
            doomed.append((entry[RECORD]["bridge"], old))
    for key in keys:
        entry = reg.entries[key]
        bridge = entry[RECORD]["bridge"]
        old, new = _record(entry), _desired(reg, key)
        doomed.append((bridge, [e for e in old if e not in new]))
        added.append((bridge, [e for e in new if e not in old]))
        plans.append((entry, new))
        entry[RECORD] = {
            "bridge": bridge,
            "elements": [list(e) for e in old + [e for e in new if e not in old]],
        }
    if not any(items for _, items in doomed + added):
        return False
    reg.save()
    deletes: dict[str, list[nfnl.Element]] = {}
    for bridge, items in doomed:
        for name, elements in _by_set(bridge, items).items():
            deletes.setdefault(name, []).extend(elements)
    nfnl.delete_many(nfnl.INET, NAME, deletes)
    batch = nfnl.Batch(nfnl.INET, NAME)
    for bridge, items in added:
        for name, elements in _by_set(bridge, items).items():
            batch.add_elements(name, elements)
    batch.commit()
    for entry, new in plans:
        entry[RECORD] = {"bridge": entry[RECORD]["bridge"], "elements": [list(e) for e in new]}
    reg.save()
    return True


class LinkAccess:
    """Given to dockerlinks.on_add on an icc-off network: links become
    access, kept in step with the registry."""

    __slots__ = ("bridge", "expose")

    def __init__(self, bridge: str, expose: list[tuple[str, int, int]]) -> None:
        self.bridge = tokens.ifname(bridge, "bridge name")
        self.expose = expose

    def after_add(self, reg: Registry, key: str) -> None:
        entry = reg.entries[key]
        entry["expose"] = [list(e) for e in self.expose]
        entry.setdefault(RECORD, {"bridge": self.bridge, "elements": []})
        scope = entry.get("scope", "")
        if not _sync(reg, [key, *_dependants(reg, _names_of(entry), scope, key)], []):
            reg.save()  # the entry's expose and record, with nothing to apply


def after_remove(reg: Registry, gone: list[JSONObject | None]) -> None:
    """DEL and GC: the removed entries' elements go, and those linking to
    them lose their access to them."""
    gone_entries = [e for e in gone if e and RECORD in e]
    if not gone_entries:
        return
    keys: list[str] = []
    for entry in gone_entries:
        for key in _dependants(reg, _names_of(entry), entry.get("scope", ""), ""):
            if key not in keys:
                keys.append(key)
    _sync(reg, keys, gone_entries)


def check_links(reg: Registry, key: str) -> None:
    """CHECK: the container's recorded elements are the ones its links
    call for, and are in place."""
    entry = reg.entries.get(key)
    if entry is None or RECORD not in entry:
        return
    have, want = _record(entry), _desired(reg, key)
    if sorted(map(str, have)) != sorted(map(str, want)):
        raise CniError(STATE_MISSING, "isolation: the links' rules are stale")
    from . import nfnl

    for e in have:
        name, element = _set_element(entry[RECORD]["bridge"], e)
        if nfnl.get_element(nfnl.INET, NAME, name, element.key) is None:
            raise CniError(STATE_MISSING, "isolation: a link's rule is missing", repr(e))


def check(req: CmdArgs, data_dir: str, conf: BridgeConfig) -> None:
    """CHECK: the tables and the network's elements; on an icc-off network
    the port's source check and the container's link elements."""
    from . import nfnl

    for family in ("inet",) if conf.icc else ("inet", "bridge"):
        if table_exists(family) is False:
            raise CniError(STATE_MISSING, f"isolation: table {family} {NAME} is missing")
    wanted = _network_elements(conf.bridge, conf.icc, conf.isolate, conf.isolate_except)
    for set_name, items in wanted.items():
        if any(nfnl.get_element(nfnl.INET, NAME, set_name, e.key) is None for e in items):
            raise CniError(
                STATE_MISSING, f"isolation: bridge {conf.bridge!r} is missing from {set_name}"
            )
    if conf.icc:
        return
    check_port(req.attachment)
    from ..names.registry import Registry

    registry = Registry(req.network, data_dir)
    if registry.exists():
        with registry as reg:
            check_links(reg, req.attachment.key)

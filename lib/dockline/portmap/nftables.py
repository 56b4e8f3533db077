"""portmap's nftables backend: table ``inet dockline_portmap``.

Constant chains and rules, written once (one ``nft -f`` when a netlink
GETRULE finds them missing or different); an attachment is then only
elements of maps and sets, commented ``dl-<tag>``, added in one netlink
transaction on ADD and deleted in one on DEL (the record,
``firewall.records`` kind ``portmap``, lists their keys).  Cost is the
same at 1 or 1,000 containers.

prerouting and output (nat, dstnat), for local destinations, in order::

    ip daddr . meta l4proto . th dport vmap @ports4      (claims, see below)
    ip6 daddr . meta l4proto . th dport vmap @ports6
    meta l4proto . th dport vmap @ports
    dnat ip to ip daddr . meta l4proto . th dport map @at4    (hostIP given)
    dnat ip6 to ip6 daddr . meta l4proto . th dport map @at6
    dnat ip to meta l4proto . th dport map @any4              (every address)
    dnat ip6 to meta l4proto . th dport map @any6

``ports``/``ports4``/``ports6`` hold one element per published host port
(proto . port, optionally after the host address), taken with ``create``:
a second container asking for the same one fails atomically.  Its verdict
is ``continue`` (on to the DNAT maps), or, for a config with nft
``conditionsV4``/``V6`` (operator text only nft can compile), ``jump
c-<tag>``: a per-attachment chain with the conditional DNAT rules, written
by ``nft -f`` on that ADD (the one case with a process per ADD).

postrouting (nat, srcnat): connections DNATed to a container are
masqueraded when they come from 127.0.0.0/8 (set ``lo4``, with
route_localnet, see ``firewall.localnet``), from anywhere with ``masqAll``
(``masqall4``/``masqall6``), or from the container's subnet (hairpin: map
``hp4``/``hp6`` from the container's address to its subnet's chain
``h4-<net>-<len>``: ``ip saddr <subnet> masquerade``, one per subnet).
All are hashes keyed by the container's address: an element costs the
same to add or delete at any size.  No packet mark is needed, so
``markMasqBit`` only matters to the iptables backend.

input (filter): the route_localnet guard (``localnet.nft_guard``).
"""

from __future__ import annotations

from ..cni.attachment import Attachment
from ..cni.errors import ADDRESS_IN_USE, CniError
from ..firewall import FirewallError, localnet, nfnl, nft_apply, records, tokens
from ..firewall.masquerade import ensure_subnet_chain, subnet_chain

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import PortmapConfig
    from .rules import Entry

TABLE = "dockline_portmap"
KIND = "portmap"
_T = f"inet {TABLE}"
SETS = (
    "ports",
    "ports4",
    "ports6",
    "any4",
    "any6",
    "at4",
    "at6",
    "hp4",
    "hp6",
    "lo4",
    "masqall4",
    "masqall6",
)
_DNAT_RULES = (
    ("fib daddr type local ip daddr . meta l4proto . th dport vmap @ports4", "claims v4"),
    ("fib daddr type local ip6 daddr . meta l4proto . th dport vmap @ports6", "claims v6"),
    ("fib daddr type local meta l4proto . th dport vmap @ports", "claims"),
    ("fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @at4", "at v4"),
    ("fib daddr type local dnat ip6 to ip6 daddr . meta l4proto . th dport map @at6", "at v6"),
    (
        "fib daddr type local meta nfproto ipv4 dnat ip to meta l4proto . th dport map @any4",
        "any v4",
    ),
    (
        "fib daddr type local meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @any6",
        "any v6",
    ),
)
_SNAT_RULES = (
    # Containers published before this layout: their c-<tag> chains mark
    # for masquerade (the default markMasqBit, 13), as the old layout did.
    ("meta mark & 0x2000 == 0x2000 masquerade", "marked (older layout)"),
    ("ct status dnat ip saddr 127.0.0.0/8 ip daddr @lo4 masquerade", "localhost v4"),
    ("ct status dnat ip daddr @masqall4 masquerade", "masqAll v4"),
    ("ct status dnat ip6 daddr @masqall6 masquerade", "masqAll v6"),
    ("ct status dnat ip daddr vmap @hp4", "hairpin v4"),
    ("ct status dnat ip6 daddr vmap @hp6", "hairpin v6"),
)
_GUARD_COMMENTS = ["dockline localnet: dnat", "dockline localnet: drop"]


def _comments(rules: tuple[tuple[str, str], ...]) -> list[str]:
    return [f"dockline portmap: {c}" for _, c in rules]


def _base_lines() -> list[str]:
    t = _T
    lines = [
        f"add table {t}",
        f"add map {t} ports {{ type inet_proto . inet_service : verdict; }}",
        f"add map {t} ports4 {{ type ipv4_addr . inet_proto . inet_service : verdict; }}",
        f"add map {t} ports6 {{ type ipv6_addr . inet_proto . inet_service : verdict; }}",
        f"add map {t} any4 {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}",
        f"add map {t} any6 {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}",
        f"add map {t} at4 {{ type ipv4_addr . inet_proto . inet_service : "
        "ipv4_addr . inet_service; }",
        f"add map {t} at6 {{ type ipv6_addr . inet_proto . inet_service : "
        "ipv6_addr . inet_service; }",
        f"add map {t} hp4 {{ type ipv4_addr : verdict; }}",
        f"add map {t} hp6 {{ type ipv6_addr : verdict; }}",
        f"add set {t} lo4 {{ type ipv4_addr; }}",
        f"add set {t} masqall4 {{ type ipv4_addr; }}",
        f"add set {t} masqall6 {{ type ipv6_addr; }}",
    ]
    for chain, hook, prio in (
        ("prerouting", "prerouting", -100),
        ("output", "output", -100),
        ("postrouting", "postrouting", 100),
    ):
        lines += [
            f"add chain {t} {chain} {{ type nat hook {hook} priority {prio}; policy accept; }}",
            f"flush chain {t} {chain}",
        ]
    for chain in ("prerouting", "output"):
        lines += [
            f'add rule {t} {chain} {rule} comment "dockline portmap: {c}"'
            for rule, c in _DNAT_RULES
        ]
    lines += [
        f'add rule {t} postrouting {rule} comment "dockline portmap: {c}"'
        for rule, c in _SNAT_RULES
    ]
    return lines + localnet.nft_guard(t)


def ensure_base() -> None:
    nfnl.ensure_rules(
        "inet",
        TABLE,
        {
            "prerouting": _comments(_DNAT_RULES),
            "output": _comments(_DNAT_RULES),
            "postrouting": _comments(_SNAT_RULES),
            "localnet": _GUARD_COMMENTS,
        },
        _base_lines(),
        "installing the portmap table",
    )


def _chain(att: Attachment) -> str:
    return f"c-{att.tag}"


def _claim(e: Entry) -> tuple[str, bytes]:
    m = e.mapping
    key = nfnl.concat(nfnl.proto(m.protocol), nfnl.port(m.host_port))
    if m.host_ip is None:
        return "ports", key
    return f"ports{m.host_ip.version}", nfnl.concat(m.host_ip.packed, key)


def _dnat(e: Entry) -> tuple[str, bytes, bytes]:
    m, ip = e.mapping, e.ip
    key = nfnl.concat(nfnl.proto(m.protocol), nfnl.port(m.host_port))
    data = nfnl.concat(ip.address.packed, nfnl.port(m.container_port))
    if m.host_ip is None:
        return f"any{ip.version}", key, data
    return f"at{ip.version}", nfnl.concat(m.host_ip.packed, key), data


def _snat(conf: PortmapConfig, todo: list[Entry]) -> list[tuple[str, nfnl.Element]]:
    out: list[tuple[str, nfnl.Element]] = []
    if not conf.snat:
        return out
    for ip in {id(e.ip): e.ip for e in todo}.values():
        addr = ip.address.packed
        if conf.masq_all:
            out.append((f"masqall{ip.version}", nfnl.Element(addr)))
            continue
        chain = subnet_chain("h", ip.subnet)
        out.append((f"hp{ip.version}", nfnl.Element(addr, verdict=(nfnl.JUMP, chain))))
        if ip.version == 4:
            out.append(("lo4", nfnl.Element(addr)))
    return out


def _elements(
    att: Attachment, conf: PortmapConfig, todo: list[Entry]
) -> dict[str, list[nfnl.Element]]:
    """Every element the attachment owns, by set, with comment and data."""
    note = nfnl.comment(f"dl-{tokens.hex_tag(att.tag)}")
    chained = bool(conf.conditions_v4 or conf.conditions_v6)
    verdict = (nfnl.JUMP, _chain(att)) if chained else (nfnl.CONTINUE, None)
    out: dict[str, dict[bytes, nfnl.Element]] = {}
    for e in todo:
        name, key = _claim(e)
        out.setdefault(name, {})[key] = nfnl.Element(key, verdict=verdict, userdata=note)
        if not chained:
            name, key, data = _dnat(e)
            out.setdefault(name, {})[key] = nfnl.Element(key, data=data, userdata=note)
    for name, elem in _snat(conf, todo):
        elem.userdata = note
        out.setdefault(name, {})[elem.key] = elem
    return {name: list(by_key.values()) for name, by_key in out.items()}


def _chain_lines(att: Attachment, conf: PortmapConfig, todo: list[Entry]) -> list[str]:
    """The per-attachment chain of a config with nft conditions."""
    chain = _chain(att)
    lines = [f"add chain {_T} {chain}", f"flush chain {_T} {chain}"]
    for e in todo:
        m, ip = e.mapping, e.ip
        fam = "ip6" if ip.version == 6 else "ip"
        nfproto = "ipv6" if ip.version == 6 else "ipv4"
        conds = " ".join(conf.conditions_v6 if ip.version == 6 else conf.conditions_v4)
        dest = f"[{ip.address}]" if ip.version == 6 else str(ip.address)
        lines.append(
            f"add rule {_T} {chain} meta nfproto {nfproto} "
            + (f"{conds} " if conds else "")
            + (f"{fam} daddr {m.host_ip} " if m.host_ip else "")
            + f"{m.protocol} dport {m.host_port} dnat {fam} to {dest}:{m.container_port}"
        )
    return lines


def _ensure_hairpin(conf: PortmapConfig, todo: list[Entry]) -> None:
    """The hairpin chain of each container subnet (one per subnet)."""
    if not conf.snat or conf.masq_all:
        return
    for ip in {id(e.ip): e.ip for e in todo}.values():
        fam = "ip6" if ip.version == 6 else "ip"
        ensure_subnet_chain(
            "inet",
            TABLE,
            subnet_chain("h", ip.subnet),
            f"{fam} saddr {ip.subnet} masquerade",
            "installing the portmap table",
        )


def add(att: Attachment, conf: PortmapConfig, todo: list[Entry], released: list[str]) -> None:
    ensure_base()
    _ensure_hairpin(conf, todo)
    elements = _elements(att, conf, todo)
    chained = bool(conf.conditions_v4 or conf.conditions_v6)
    records.write(
        KIND,
        att.tag,
        {
            "backend": "nftables",
            "chain": chained,
            "elements": [
                [name, e.key.hex(), e.key_end.hex() if e.key_end else None]
                for name, items in elements.items()
                for e in items
            ],
            "released": released,
        },
    )
    batch = nfnl.Batch(nfnl.INET, TABLE)
    for name, items in elements.items():
        # Claims are created (a taken key fails the whole transaction);
        # the rest is added.
        batch.add_elements(name, items, create=name.startswith("ports"))
    try:
        if chained:
            nft_apply(_chain_lines(att, conf, todo), "publishing ports")
        batch.commit()
    except nfnl.NfnlError as exc:
        # Nothing of the batch happened, and the keys it would have added
        # may be another container's: only our chain and record go.  (Any
        # other failure leaves the record to DEL, which removes only
        # elements carrying our comment.)
        if chained:
            _drop_chain(att)
        records.remove(KIND, att.tag)
        if exc.errno == nfnl.EEXIST:
            raise CniError(
                ADDRESS_IN_USE,
                "host port already in use",
                "another container publishes the same host port and protocol "
                "on the same host address",
            ) from None
        raise FirewallError.of("publishing ports", str(exc)) from None


def _recorded(doc: dict[str, Any]) -> dict[str, list[nfnl.Element]]:
    """The record's elements, checked: known sets, hex keys of sane size."""
    out: dict[str, list[nfnl.Element]] = {}
    items = doc.get("elements")
    for item in items if isinstance(items, list) else []:
        if not (isinstance(item, list) and len(item) == 3 and item[0] in SETS):
            continue
        key, end = item[1], item[2]
        try:
            raw = bytes.fromhex(key) if isinstance(key, str) else b""
            raw_end = bytes.fromhex(end) if isinstance(end, str) else None
        except ValueError:
            continue
        if 0 < len(raw) <= 64 and (raw_end is None or len(raw_end) == len(raw)):
            out.setdefault(item[0], []).append(nfnl.Element(raw, key_end=raw_end))
    return out


def remove(att: Attachment, doc: dict[str, Any]) -> None:
    """Delete what the record lists (whatever is still there)."""
    owner = f"dl-{tokens.hex_tag(att.tag)}"
    nfnl.delete_many(nfnl.INET, TABLE, _recorded(doc), owner)
    if doc.get("chain") is True:
        _drop_chain(att)


def _drop_chain(att: Attachment) -> None:
    if nfnl.get_chain(nfnl.INET, TABLE, _chain(att)):
        try:
            nfnl.Batch(nfnl.INET, TABLE).delete_chain(_chain(att)).commit()
        except nfnl.NfnlError as exc:
            if exc.errno != nfnl.ENOENT:
                raise


def remove_legacy(att: Attachment) -> None:
    """No record: an attachment published by an older dockline, whose
    chain ``c-<tag>`` the claim maps jump to.  Found by one GETCHAIN; only
    then are the claim maps listed to drop the elements that jump there."""
    chain = _chain(att)
    if not nfnl.get_chain(nfnl.INET, TABLE, chain):
        return
    doomed = {
        name: [
            nfnl.Element(e.key)
            for e in nfnl.dump_elements(nfnl.INET, TABLE, name)
            if e.verdict is not None and e.verdict[1] == chain
        ]
        for name in ("ports", "ports4", "ports6")
    }
    nfnl.delete_many(nfnl.INET, TABLE, doomed)
    _drop_chain(att)


def check(att: Attachment, conf: PortmapConfig, todo: list[Entry]) -> str | None:
    """What is missing (None: the attachment's ports are all in place)."""
    for chain, want in (
        ("prerouting", _comments(_DNAT_RULES)),
        ("output", _comments(_DNAT_RULES)),
        ("postrouting", _comments(_SNAT_RULES)),
    ):
        if nfnl.rule_comments(nfnl.INET, TABLE, chain) != want:
            return f"the chain {_T} {chain} is missing or changed"
    for name, items in _elements(att, conf, todo).items():
        for e in items:
            found = nfnl.get_element(nfnl.INET, TABLE, name, e.key)
            if (
                found is None
                or found.comment != f"dl-{att.tag}"
                or found.data != e.data
                or found.verdict != e.verdict
            ):
                return f"an element of {name} is missing or changed"
    return None


def gc(prefix: str, keep: set[str]) -> None:
    """Remove every element and chain of the network not kept (lists)."""
    for name in SETS:
        stale = [
            nfnl.Element(e.key, key_end=e.key_end)
            for e in nfnl.dump_elements(nfnl.INET, TABLE, name)
            if (e.comment or "").startswith("dl-" + prefix) and (e.comment or "")[3:] not in keep
        ]
        nfnl.delete_elements_missing_ok(nfnl.INET, TABLE, name, stale)
    from .. import proc
    from ..cni import jsonio

    if not proc.which("nft"):
        return
    listed = proc.run(["nft", "-j", "list", "chains", "inet"])
    if listed.returncode != 0:
        return
    doomed = set()
    for item in jsonio.loads(listed.stdout).get("nftables", []):
        chain = item.get("chain") if isinstance(item, dict) else None
        name = chain.get("name", "") if isinstance(chain, dict) else ""
        if (
            chain
            and chain.get("table") == TABLE
            and name.startswith("c-" + prefix)
            and tokens.HEX_CHARS.issuperset(name[2:])
            and name[2:] not in keep
        ):
            doomed.add(name)
    if not doomed:
        return
    # Elements without a comment (the layout before records) jumping there.
    nfnl.delete_many(
        nfnl.INET,
        TABLE,
        {
            name: [
                nfnl.Element(e.key)
                for e in nfnl.dump_elements(nfnl.INET, TABLE, name)
                if e.verdict is not None and e.verdict[1] in doomed
            ]
            for name in ("ports", "ports4", "ports6")
        },
    )
    for name in sorted(doomed):
        try:
            nfnl.Batch(nfnl.INET, TABLE).delete_chain(name).commit()
        except nfnl.NfnlError:
            pass  # still referenced (an element not ours to drop): left

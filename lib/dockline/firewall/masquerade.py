"""Source NAT for traffic leaving a container's subnet (bridge ``ipMasq``).

One interface, two backends (``NFTABLES``, ``IPTABLES``): ``add`` writes
the attachment's record (``records``, kind ``masq``) then its rules;
``delete`` reads the record and removes exactly that, whatever backend
the record names (so DEL needs no config); ``check`` verifies by
structure; ``gc`` removes what belongs to attachments no longer valid
(the one call that lists).  ipMasqBackend is validated once, in
``BridgeConfig``.

nftables (table ``inet dockline_masq``), constant rules written once (one
``nft -f`` when a GETRULE finds them missing or different), then per
attachment only map elements, commented ``dl-<tag>``, added and deleted
over netfilter netlink in one transaction:

    srcnat (nat):      ip saddr vmap @src4          (ip6: @src6)
    n4-<net>-<len>:    ip daddr != <subnet> ip daddr != 224.0.0.0/4 masquerade

``src4`` maps the container's address to its subnet's chain (``goto``);
one chain per subnet, written when its first container comes.  Maps are
hashes: adding or deleting an element costs the same at any size (an
interval set of address . subnet did not: its deletes grew with N).

iptables (nat table), the reference's shape: a chain ``DL-<tag>`` with
``-d <subnet> -j ACCEPT`` and ``! -d <multicast> -j MASQUERADE``, entered
from POSTROUTING by ``-s <ip> -j DL-<tag>``; DEL deletes those exact rules
(no ``iptables-save``), and only when that transaction fails (rules removed
by hand) lists the table to remove what is left.  DEL also removes the
chain the reference bridge would have made for the same container
(``CNI-<hash>``), so a container it added is cleaned up too.
"""

from __future__ import annotations

from .. import proc
from ..cni.attachment import Attachment, network_tag
from . import (
    FirewallError,
    default_backend,
    iptables_nat_rules,
    iptables_restore_nat,
    nfnl,
    nft_remove_tagged,
    records,
    tokens,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .tokens import Network

IPT_CHAIN_PREFIX = "DL-"
NFT_TABLE = "dockline_masq"
LEGACY_CHAIN = "postrouting"  # the layout before sets: one rule per address
KIND = "masq"
_MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


def choose_backend(name: str | None) -> str:
    """The configured backend (checked by BridgeConfig), else the default."""
    return name or default_backend("ipMasq")


def _checked(ips: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """(address, subnet, family) re-rendered from parsed values: IPAM's
    output is input too (a static IPAM config can say anything)."""
    out: list[tuple[str, str, int]] = []
    for cidr, subnet in ips:
        iface = tokens.interface(cidr, "masquerade address")
        net = tokens.network(subnet, "masquerade subnet")
        out.append((str(iface.ip), str(net), iface.version))
    return out


def _from_record(doc: dict[str, Any]) -> list[tuple[str, str, int]]:
    items = doc.get("ips")
    if not isinstance(items, list):
        return []
    pairs = [(i[0], i[1]) for i in items if isinstance(i, list) and len(i) == 2 and i[0] and i[1]]
    return _checked([(f"{a}/{32 if ':' not in a else 128}", n) for a, n in pairs])


def _comment(att: Attachment) -> str:
    return f"dl-{tokens.hex_tag(att.tag)}"


# --- nftables ----------------------------------------------------------------------

_NFT_RULES = (
    ("ip saddr vmap @src4", "dockline masq: v4"),
    ("ip6 saddr vmap @src6", "dockline masq: v6"),
)
MAPS = ("src4", "src6")
_NOTE = "dockline masq: subnet"


def subnet_chain(kind: str, net: Network) -> str:
    """A chain per subnet, named after it (``n4-0a590000-24``): constant
    while containers come and go, so an attachment is one map element."""
    return f"{kind}{net.version}-{net.network_address.packed.hex()}-{net.prefixlen}"


def ensure_subnet_chain(family: str, table: str, chain: str, rule: str, what: str) -> None:
    """The chain with its one rule (commented ``_NOTE``), written by one
    ``nft -f`` when a GETRULE does not find it: the first container of a
    subnet, or after someone flushed it."""
    nfnl.ensure_rules(
        family,
        table,
        {chain: [_NOTE]},
        [
            f"add chain {family} {table} {chain}",
            f"flush chain {family} {table} {chain}",
            f'add rule {family} {table} {chain} {rule} comment "{_NOTE}"',
        ],
        what,
    )


def _nft_ensure(ips: list[tuple[str, str, int]]) -> None:
    import ipaddress

    t = f"inet {NFT_TABLE}"
    lines = [
        f"add table {t}",
        f"add map {t} src4 {{ type ipv4_addr : verdict; }}",
        f"add map {t} src6 {{ type ipv6_addr : verdict; }}",
        f"add chain {t} srcnat {{ type nat hook postrouting priority srcnat; policy accept; }}",
        f"flush chain {t} srcnat",
    ]
    lines += [f'add rule {t} srcnat {rule} comment "{c}"' for rule, c in _NFT_RULES]
    nfnl.ensure_rules(
        "inet",
        NFT_TABLE,
        {"srcnat": [c for _, c in _NFT_RULES]},
        lines,
        "installing the masquerade table",
    )
    for subnet in dict.fromkeys(n for _, n, _ in ips):
        net = ipaddress.ip_network(subnet)
        fam = "ip6" if net.version == 6 else "ip"
        ensure_subnet_chain(
            "inet",
            NFT_TABLE,
            subnet_chain("n", net),
            f"{fam} daddr != {net} {fam} daddr != {_MULTICAST[net.version]} masquerade",
            "installing the masquerade table",
        )


def _nft_elements(
    ips: list[tuple[str, str, int]], userdata: bytes | None
) -> dict[str, list[nfnl.Element]]:
    """src4/src6: the container's address, going to its subnet's chain."""
    import ipaddress

    out: dict[str, list[nfnl.Element]] = {}
    for address, subnet, family in ips:
        chain = subnet_chain("n", ipaddress.ip_network(subnet))
        out.setdefault(f"src{family}", []).append(
            nfnl.Element(
                ipaddress.ip_address(address).packed,
                verdict=(nfnl.GOTO, chain),
                userdata=userdata,
            )
        )
    return out


def _nft_add(att: Attachment, ips: list[tuple[str, str, int]]) -> None:
    _nft_ensure(ips)
    batch = nfnl.Batch(nfnl.INET, NFT_TABLE)
    for name, elements in _nft_elements(ips, nfnl.comment(_comment(att))).items():
        batch.add_elements(name, elements)
    try:
        batch.commit()
    except nfnl.NfnlError as exc:
        raise FirewallError.of("installing masquerade rules", str(exc)) from None


def _nft_remove(att: Attachment, ips: list[tuple[str, str, int]]) -> None:
    nfnl.delete_many(nfnl.INET, NFT_TABLE, _nft_elements(ips, None), _comment(att))


def _nft_check(att: Attachment, ips: list[tuple[str, str, int]]) -> str | None:
    if nfnl.rule_comments(nfnl.INET, NFT_TABLE, "srcnat") != [c for _, c in _NFT_RULES]:
        return f"the chain inet {NFT_TABLE} srcnat is missing or changed"
    for name, elements in _nft_elements(ips, None).items():
        for e in elements:
            found = nfnl.get_element(nfnl.INET, NFT_TABLE, name, e.key)
            if found is None or found.comment != _comment(att) or found.verdict != e.verdict:
                return f"an element of map {name} is missing or changed"
            chain = (e.verdict or (0, ""))[1] or ""
            if nfnl.rule_comments(nfnl.INET, NFT_TABLE, chain) != [_NOTE]:
                return f"the chain inet {NFT_TABLE} {chain} is missing or changed"
    return None


def _nft_gc(prefix: str, keep: set[str]) -> None:
    stale: dict[str, list[nfnl.Element]] = {}
    for name in MAPS:
        for e in nfnl.dump_elements(nfnl.INET, NFT_TABLE, name):
            tag = (e.comment or "")[3:]
            if tag.startswith(prefix) and tag not in keep:
                stale.setdefault(name, []).append(nfnl.Element(e.key))
    nfnl.delete_many(nfnl.INET, NFT_TABLE, stale)


# --- iptables ----------------------------------------------------------------------


def _ipt_chain(att: Attachment) -> str:
    return IPT_CHAIN_PREFIX + att.tag  # 27 characters: under iptables' 28


def _ipt_comment(att: Attachment) -> str:
    # Only dockline's hex tag: a network name, container ID or ifname in
    # a quoted comment (an ifname may end in a backslash) would change how
    # iptables-restore reads the rest of the line.
    return f"dockline masq dl-{tokens.hex_tag(att.tag)}"


def _ipt_jump(att: Attachment, ip: str) -> str:
    return f'POSTROUTING -s {ip} -m comment --comment "{_ipt_comment(att)}" -j {_ipt_chain(att)}'


def _ipt_add(att: Attachment, ips: list[tuple[str, str, int]]) -> None:
    chain = _ipt_chain(att)
    comment = _ipt_comment(att)
    for family in (4, 6):
        mine = [(ip, net) for ip, net, fam in ips if fam == family]
        if not mine:
            continue
        lines = [f":{chain} - [0:0]"]
        for subnet in dict.fromkeys(net for _, net in mine):
            lines.append(f'-A {chain} -d {subnet} -m comment --comment "{comment}" -j ACCEPT')
        lines.append(
            f'-A {chain} ! -d {_MULTICAST[family]} -m comment --comment "{comment}" -j MASQUERADE'
        )
        lines += [f"-A {_ipt_jump(att, ip)}" for ip, _ in mine]
        iptables_restore_nat(family, lines, "installing masquerade rules")


def _ipt_delete_chains(family: int, chains: set[str], saved: list[str]) -> None:
    existing = {line[1:].split()[0] for line in saved if line.startswith(":")}
    chains = chains & existing
    if not chains:
        return
    lines = []
    for line in saved:
        parts = line.split()
        if len(parts) > 2 and parts[0] == "-A" and parts[-2] == "-j" and parts[-1] in chains:
            lines.append("-D " + line[3:])
    for chain in sorted(chains):
        lines += [f"-F {chain}", f"-X {chain}"]
    iptables_restore_nat(family, lines, "removing masquerade rules")


def reference_chain(network: str, container_id: str) -> str:
    """The chain the reference bridge names for the same container, so a
    container it added is cleaned up by dockline's DEL too."""
    try:
        from _sha512 import sha512
    except ImportError:  # pragma: no cover
        from hashlib import sha512
    return "CNI-" + sha512((network + container_id).encode()).hexdigest()[:24]


_IS_NFT: list[bool] = []


def iptables_is_nft() -> bool:
    """Whether iptables is iptables-nft (Debian 12's default): its chains
    are then nftables chains that one netlink GETCHAIN finds by name."""
    if not _IS_NFT:
        import os

        exe = proc.which("iptables-restore")
        _IS_NFT.append(bool(exe) and "nft" in os.path.basename(os.path.realpath(exe or "")))
    return _IS_NFT[0]


def _ipt_chain_exists(family: int, chain: str) -> bool | None:
    """One GETCHAIN on iptables-nft's nat table; None when iptables is not
    nft-based (then only a listing can tell)."""
    if not iptables_is_nft():
        return None
    return nfnl.get_chain(nfnl.IPV6 if family == 6 else nfnl.IPV4, "nat", chain)


def _ipt_remove(att: Attachment, ips: list[tuple[str, str, int]]) -> None:
    chain = _ipt_chain(att)
    for family in (4, 6):
        mine = [ip for ip, _, fam in ips if fam == family]
        if not mine:
            continue
        lines = [f"-D {_ipt_jump(att, ip)}" for ip in mine] + [f"-F {chain}", f"-X {chain}"]
        try:
            iptables_restore_nat(family, lines, "removing masquerade rules")
        except FirewallError:
            # Something was removed by hand: find what is left by listing.
            _ipt_delete_chains(family, {chain}, iptables_nat_rules(family))


def _ipt_remove_reference(att: Attachment) -> None:
    chain = reference_chain(att.network, att.container_id)
    for family in (4, 6):
        if _ipt_chain_exists(family, chain) is False:
            continue
        _ipt_delete_chains(family, {chain}, iptables_nat_rules(family))


def _ipt_gc(prefix: str, keep: set[str]) -> None:
    start = IPT_CHAIN_PREFIX + prefix
    for family in (4, 6):
        saved = iptables_nat_rules(family)
        stale = {line[1:].split()[0] for line in saved if line.startswith(":" + start)}
        stale -= {IPT_CHAIN_PREFIX + t for t in keep}
        _ipt_delete_chains(family, stale, saved)


# --- the interface -------------------------------------------------------------------


def add(backend: str, att: Attachment, ips: list[tuple[str, str]]) -> None:
    """Masquerade traffic from each (ip/prefix, subnet) leaving its subnet.
    The record is written first: no rule of ours exists without one."""
    checked = _checked(ips)
    records.write(KIND, att.tag, {"backend": backend, "ips": [[a, n] for a, n, _ in checked]})
    (_nft_add if backend == "nftables" else _ipt_add)(att, checked)


def delete(backend: str, att: Attachment) -> None:
    """Remove what the attachment's ADD installed (the record says where;
    ``backend`` only matters without one).  Nothing to remove is fine."""
    doc = records.read(KIND, att.tag)
    if doc is not None:
        ips = _from_record(doc)
        if doc.get("backend") == "nftables":
            _nft_remove(att, ips)
        elif proc.which("iptables-restore"):
            _ipt_remove(att, ips)
    elif nfnl.get_chain(nfnl.INET, NFT_TABLE, LEGACY_CHAIN):
        # No record: added by an older dockline, one rule per address in
        # this chain (a listing of it, which only such containers pay).
        nft_remove_tagged(
            "inet", NFT_TABLE, LEGACY_CHAIN, att.tag, lambda t: t == att.tag, "removing masquerade"
        )
    if doc is None and proc.which("iptables-save"):
        # No record: an ADD by an older dockline, found by its chain's name
        # (one GETCHAIN; legacy iptables can only list).
        chain = _ipt_chain(att)
        for family in (4, 6):
            exists = _ipt_chain_exists(family, chain)
            if exists or (exists is None and backend == "iptables"):
                _ipt_delete_chains(family, {chain}, iptables_nat_rules(family))
    if proc.which("iptables-save"):
        _ipt_remove_reference(att)
    records.remove(KIND, att.tag)


def check(backend: str, att: Attachment, ips: list[tuple[str, str]]) -> str | None:
    """What is missing of the attachment's rules (None: all there), read
    from the kernel by structure: its elements and the constant chain
    (nftables), its chain by name (iptables-nft; legacy iptables is not
    checked: that would need a listing)."""
    checked = _checked(ips)
    if backend == "nftables":
        return _nft_check(att, checked)
    chain = _ipt_chain(att)
    for family in {f for _, _, f in checked}:
        if _ipt_chain_exists(family, chain) is False:
            return f"chain {chain} is missing"
    return None


def gc(backend: str, network: str, valid: set[Attachment]) -> None:
    """Remove the network's rules whose attachment is not in ``valid``, in
    both backends (the default may have changed since an ADD)."""
    prefix = network_tag(network)
    keep = {a.tag for a in valid}
    for tag in records.tags(KIND, prefix):
        if tag not in keep:
            records.remove(KIND, tag)  # their elements go below, by comment
    _nft_gc(prefix, keep)
    if nfnl.get_chain(nfnl.INET, NFT_TABLE, LEGACY_CHAIN):
        nft_remove_tagged(
            "inet", NFT_TABLE, LEGACY_CHAIN, prefix, lambda t: t not in keep, "removing masquerade"
        )
    if proc.which("iptables-save"):
        _ipt_gc(prefix, keep)

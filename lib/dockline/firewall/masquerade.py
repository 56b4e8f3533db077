"""Source NAT for traffic leaving a container's subnet (bridge ``ipMasq``).

Two backends with one interface: ``add`` installs an attachment's rules in
one transaction, ``delete`` removes them by tag (addresses only speed it
up), ``gc`` removes the rules of attachments no longer valid.

iptables layout (nat table), per attachment: a chain ``DL-<tag>`` with
``-d <subnet> -j ACCEPT`` and ``! -d <multicast> -j MASQUERADE``, entered from
POSTROUTING by ``-s <ip> -j DL-<tag>``.
nftables layout: table ``inet dockline_masq``, chain ``postrouting`` (nat
hook), one rule per address, commented ``dl-<tag>``.
"""

from __future__ import annotations

from .. import proc
from ..cni.attachment import Attachment, network_tag
from ..cni.errors import INVALID_CONFIG, CniError
from . import (
    default_backend,
    iptables_nat_rules,
    iptables_restore_nat,
    nft_apply,
    nft_remove_tagged,
    tokens,
)

IPT_CHAIN_PREFIX = "DL-"
NFT_TABLE = "dockline_masq"
_MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


def choose_backend(name: str | None) -> str:
    """The configured backend, else iptables where it exists, else nft."""
    if name:
        if name not in ("iptables", "nftables"):
            raise CniError(
                INVALID_CONFIG,
                "invalid ipMasqBackend",
                f'{name!r}: expected "iptables" or "nftables"',
            )
        return name
    return default_backend("ipMasq")


# --- iptables ------------------------------------------------------------


def _ipt_chain(att: Attachment) -> str:
    return IPT_CHAIN_PREFIX + att.tag  # 27 characters: under iptables' 28


def _ipt_comment(att: Attachment) -> str:
    # Only dockline's hex tag: a network name, container ID or ifname in
    # a quoted comment (an ifname may end in a backslash) would change how
    # iptables-restore reads the rest of the line.
    return f"dockline masq dl-{tokens.hex_tag(att.tag)}"


def _checked(ips: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """(address, subnet, family) re-rendered from parsed values: IPAM's
    output is input too (a static IPAM config can say anything)."""
    out = []
    for cidr, subnet in ips:
        iface = tokens.interface(cidr, "masquerade address")
        net = tokens.network(subnet, "masquerade subnet")
        out.append((str(iface.ip), str(net), iface.version))
    return out


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
        for ip, _ in mine:
            lines.append(f'-A POSTROUTING -s {ip} -m comment --comment "{comment}" -j {chain}')
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


def _ipt_delete(att: Attachment) -> None:
    chains = {_ipt_chain(att), reference_chain(att.network, att.container_id)}
    for family in (4, 6):
        _ipt_delete_chains(family, chains, iptables_nat_rules(family))


def _ipt_gc(network_tag: str, valid_tags: set[str]) -> None:
    prefix = IPT_CHAIN_PREFIX + network_tag
    for family in (4, 6):
        saved = iptables_nat_rules(family)
        stale = {line[1:].split()[0] for line in saved if line.startswith(":" + prefix)}
        stale -= {IPT_CHAIN_PREFIX + t for t in valid_tags}
        _ipt_delete_chains(family, stale, saved)


# --- nftables ------------------------------------------------------------


def _nft_add(att: Attachment, ips: list[tuple[str, str, int]]) -> None:
    lines = [
        f"add table inet {NFT_TABLE}",
        f"add chain inet {NFT_TABLE} postrouting "
        "{ type nat hook postrouting priority srcnat; policy accept; }",
    ]
    for address, subnet, family in ips:
        fam = "ip6" if family == 6 else "ip"
        lines.append(
            f"add rule inet {NFT_TABLE} postrouting {fam} saddr {address} "
            f"{fam} daddr != {subnet} {fam} daddr != {_MULTICAST[family]} "
            f'masquerade comment "dl-{tokens.hex_tag(att.tag)}"'
        )
    nft_apply(lines, "installing masquerade rules")


def _nft_remove(tag_prefix: str, doomed) -> None:
    nft_remove_tagged(
        "inet", NFT_TABLE, "postrouting", tag_prefix, doomed, "removing masquerade rules"
    )


# --- the interface -------------------------------------------------------


def add(backend: str, att: Attachment, ips: list[tuple[str, str]]) -> None:
    """Masquerade traffic from each (ip/prefix, subnet) leaving its subnet."""
    (_nft_add if backend == "nftables" else _ipt_add)(att, _checked(ips))


def delete(backend: str, att: Attachment) -> None:
    """Remove the attachment's rules; nothing to remove is not an error."""
    if backend == "nftables":
        _nft_remove(att.tag, lambda tag: tag == att.tag)
    elif proc.which("iptables-save"):
        _ipt_delete(att)


def gc(backend: str, network: str, valid: set[Attachment]) -> None:
    """Remove the network's rules whose attachment is not in ``valid``."""
    prefix = network_tag(network)
    valid_tags = {a.tag for a in valid}
    if backend == "nftables":
        _nft_remove(prefix, lambda tag: tag not in valid_tags)
    elif proc.which("iptables-save"):
        _ipt_gc(prefix, valid_tags)

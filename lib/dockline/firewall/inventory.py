"""Every firewall object of one network, by attachment tag, in both
backends: for ``dockline inspect`` and ``dockline gc`` (operator
commands, allowed to list whole tables; no plugin call imports this).
"""

from __future__ import annotations

from .. import proc
from ..cni.attachment import network_tag
from . import iptables_nat_rules, masquerade, nfnl, nft_tagged_rules, spoofcheck

_PROTOS = {6: "tcp", 17: "udp", 132: "sctp"}


def _claim_text(name: str, key: bytes) -> str | None:
    """'[host:]port/proto' of a claim element's key."""
    import ipaddress

    try:
        if name == "ports":
            where, rest = "", key
        elif name == "ports4":
            where, rest = f"{ipaddress.IPv4Address(key[:4])}:", key[4:]
        else:
            where, rest = f"{ipaddress.IPv6Address(key[:16])}:", key[16:]
        proto = _PROTOS.get(rest[0], str(rest[0]))
        return f"{where}{int.from_bytes(rest[4:6], 'big')}/{proto}"
    except (IndexError, ValueError):
        return None


def objects(network: str) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """(objects by tag, published ports by tag, problems)."""
    from ..portmap import iptables as pm_ipt
    from ..portmap import nftables as pm_nft

    prefix = network_tag(network)
    found: dict[str, list[str]] = {}
    ports: dict[str, list[str]] = {}
    problems: list[str] = []
    try:
        for family in (4, 6) if proc.which("iptables-save") else ():
            ipt = "iptables" if family == 4 else "ip6tables"
            for line in iptables_nat_rules(family):
                if line.startswith(":"):
                    chain = line[1:].split()[0]
                    for p in (masquerade.IPT_CHAIN_PREFIX, pm_ipt.PREFIX):
                        if chain.startswith(p + prefix):
                            found.setdefault(chain[len(p) :], []).append(f"{ipt} nat chain {chain}")
                tagged = pm_ipt.tag_of(line)
                if (
                    tagged
                    and tagged[0].startswith(prefix)
                    and line.startswith(f"-A {pm_ipt.CHAIN} ")
                ):
                    proto, _, rest = tagged[1].partition("/")
                    port, _, host_ip = rest.partition("/")
                    where = f"{host_ip}:" if host_ip not in ("", "0.0.0.0", "::", "*") else ""
                    ports.setdefault(tagged[0], []).append(f"{where}{port}/{proto}")
    except Exception as exc:  # a tool's output we cannot read: say so
        problems.append(f"iptables: {exc}")
    try:
        for table, sets in (
            (masquerade.NFT_TABLE, masquerade.MAPS),
            (pm_nft.TABLE, pm_nft.SETS),
        ):
            for name in sets:
                for e in nfnl.dump_elements(nfnl.INET, table, name):
                    tag = (e.comment or "")[3:]
                    if not tag.startswith(prefix):
                        continue
                    found.setdefault(tag, []).append(f"nft inet {table} {name} element")
                    if table == pm_nft.TABLE and name.startswith("ports"):
                        text = _claim_text(name, e.key)
                        if text:
                            ports.setdefault(tag, []).append(text)
        for tag, port in spoofcheck.tags(prefix):
            found.setdefault(tag, []).append(
                f"nft bridge {spoofcheck.TABLE} {spoofcheck.PORTS} element {port}"
            )
        if proc.which("nft") and nfnl.get_table(nfnl.BRIDGE, spoofcheck.LEGACY_TABLE):
            legacy = spoofcheck.LEGACY_TABLE
            for tag, handle in nft_tagged_rules("bridge", legacy, "prerouting", prefix):
                found.setdefault(tag, []).append(f"nft bridge {legacy} prerouting rule {handle}")
    except Exception as exc:
        problems.append(f"nftables: {exc}")
    for tag in ports:
        ports[tag] = sorted(set(ports[tag]))
    for tag in found:
        found[tag] = sorted(set(found[tag]))
    return found, ports, problems

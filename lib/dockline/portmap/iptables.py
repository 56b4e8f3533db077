"""portmap's iptables backend (nat table), the reference's shape.

Chain ``DOCKLINE-HOSTPORTS`` (entered from PREROUTING and OUTPUT for local
destinations) jumps per mapping to ``DLP-<tag>``, which marks for
masquerade and DNATs; ``DOCKLINE-HOSTPORTS-MASQ`` (from POSTROUTING)
masquerades marked packets.  Rules carry the comment
``dl-<tag> <proto>/<port>/<hostIP>``.

ADD claims each host port (iptables has no unique keys) with a file
under a lock (``records.claim``), and finds the shared chains with a
netlink GETCHAIN where iptables is iptables-nft: no ``iptables-save``
unless they are missing (or iptables is the legacy one).  DEL deletes the exact rules the record
lists (one ``iptables-restore`` per family, no ``iptables-save``); only
when that fails (rules removed by hand) does it list the table to remove
what is left.  CHECK lists the attachment's own chain only.
"""

from __future__ import annotations

from .. import proc
from ..cni.attachment import Attachment
from ..cni.errors import ADDRESS_IN_USE, CniError
from ..firewall import FirewallError, iptables_nat_rules, iptables_restore_nat, nfnl, records

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import PortmapConfig
    from .rules import Entry

CHAIN = "DOCKLINE-HOSTPORTS"
MASQ_CHAIN = "DOCKLINE-HOSTPORTS-MASQ"
PREFIX = "DLP-"
LOCK_PATH = "/var/lib/cni/dockline/portmap.lock"
_LISTS = {4: "iptables", 6: "ip6tables"}


def tag_of(line: str) -> tuple[str, str] | None:
    """(tag, mapping key) from a rule's 'dl-<tag> <key>' comment."""
    if '--comment "dl-' not in line:
        return None
    text = line.split('--comment "dl-', 1)[1].split('"', 1)[0]
    tag, _, key = text.partition(" ")
    return tag, key


def _ensure_base(family: int, saved: list[str]) -> None:
    chains = {line[1:].split()[0] for line in saved if line.startswith(":")}
    if CHAIN in chains and MASQ_CHAIN in chains:
        return
    lines = []
    if CHAIN not in chains:
        lines += [
            f"-N {CHAIN}",
            "-A PREROUTING -m addrtype --dst-type LOCAL "
            f'-m comment --comment "dockline portmap" -j {CHAIN}',
            "-A OUTPUT -m addrtype --dst-type LOCAL "
            f'-m comment --comment "dockline portmap" -j {CHAIN}',
        ]
    if MASQ_CHAIN not in chains:
        lines += [
            f"-N {MASQ_CHAIN}",
            f'-I POSTROUTING -m comment --comment "dockline portmap" -j {MASQ_CHAIN}',
        ]
    iptables_restore_nat(family, lines, "creating the portmap chains")


def claim_key(family: int, e: Entry) -> str:
    """The unique key of a published port in one family's nat table:
    iptables has no unique keys, so ADD claims it in ``records``."""
    m = e.mapping
    return f"{family}-{m.protocol}-{m.host_port}-{m.host_ip or 'any'}".replace(":", "_")


def _chain_exists(family: int, chain: str) -> bool | None:
    """One GETCHAIN where iptables is iptables-nft; None otherwise."""
    from ..firewall.masquerade import iptables_is_nft

    if not iptables_is_nft():
        return None
    return nfnl.get_chain(nfnl.IPV6 if family == 6 else nfnl.IPV4, "nat", chain)


def _base_present(family: int) -> bool:
    """Whether the shared chains exist: one netlink GETCHAIN each where
    iptables is iptables-nft; a listing of the table otherwise."""
    return bool(_chain_exists(family, CHAIN) and _chain_exists(family, MASQ_CHAIN))


def _dest(e: Entry) -> str:
    ip, port = e.ip, e.mapping.container_port
    return f"[{ip.address}]:{port}" if ip.version == 6 else f"{ip.address}:{port}"


def add(att: Attachment, conf: PortmapConfig, todo: list[Entry]) -> dict[str, list[str]]:
    """Install the rules (the caller holds ``LOCK_PATH``); returns, by
    family, the shared-chain rules to delete on DEL (for the record)."""
    chain = PREFIX + att.tag
    mark = f"{conf.mark:#x}/{conf.mark:#x}"
    shared: dict[str, list[str]] = {}
    for family in (4, 6):
        mine = [e for e in todo if e.ip.version == family]
        if not mine:
            continue
        if not _base_present(family):
            _ensure_base(family, iptables_nat_rules(family))
        for e in mine:
            other = records.claim(claim_key(family, e), att.tag)
            if other:
                raise CniError(
                    ADDRESS_IN_USE,
                    "host port already in use",
                    f"{e.mapping.key()} is published by another container",
                )
        conds = " ".join(conf.conditions_v6 if family == 6 else conf.conditions_v4)
        lines = [f":{chain} - [0:0]"]
        mine_shared = []
        for e in mine:
            m, ip = e.mapping, e.ip
            comment = f'-m comment --comment "dl-{att.tag} {m.key()}"'
            dst = f"-d {m.host_ip} " if m.host_ip else ""
            match = f"-p {m.protocol} -m {m.protocol} --dport {m.host_port} {dst}"
            jump = f"{CHAIN} {match}{conds} {comment} -j {chain}".replace("  ", " ")
            lines.append(f"-A {jump}")
            mine_shared.append(jump)
            if conf.snat:
                setmark = (
                    f"-j {conf.external_mark_chain}"
                    if conf.external_mark_chain
                    else f"-j MARK --set-xmark {mark}"
                )
                sources = (
                    [""]
                    if conf.masq_all
                    else [f"-s {ip.subnet} "] + (["-s 127.0.0.1/32 "] if family == 4 else [])
                )
                for src in sources:
                    lines.append(f"-A {chain} {match}{src}{comment} {setmark}")
            lines.append(f"-A {chain} {match}{comment} -j DNAT --to-destination {_dest(e)}")
        if conf.snat:
            masq = (
                f'{MASQ_CHAIN} -m comment --comment "dl-{att.tag} masq" '
                f"-m mark --mark {mark} -j MASQUERADE"
            )
            lines.append(f"-A {masq}")
            mine_shared.append(masq)
        shared[str(family)] = mine_shared
        iptables_restore_nat(family, lines, "publishing ports")
    return shared


def _recorded(att: Attachment, doc: dict[str, Any], family: int) -> list[str] | None:
    """The record's shared-chain rules of one family, each checked to be
    one of ours (right chain, right tag, one line); None if unusable."""
    rules = doc.get("rules")
    items = rules.get(str(family)) if isinstance(rules, dict) else None
    if not isinstance(items, list):
        return None
    mark = f'--comment "dl-{att.tag} '
    for rule in items:
        if not (
            isinstance(rule, str)
            and rule.startswith((f"{CHAIN} ", f"{MASQ_CHAIN} "))
            and mark in rule
            and not any(ch in rule for ch in "\n\r\0")
        ):
            return None
    return items


def remove(att: Attachment, doc: dict[str, Any] | None) -> list[str]:
    """Delete the attachment's rules: the recorded ones exactly, else (no
    record, or a delete that fails because something is already gone)
    whatever a listing finds.  Returns released 'proto/port' pairs."""
    released: list[str] = []
    chain = PREFIX + att.tag
    recorded = doc.get("rules") if doc is not None else None
    for family in (4, 6):
        if isinstance(recorded, dict) and str(family) not in recorded:
            continue  # the ADD installed nothing in this family
        rules = _recorded(att, doc, family) if doc is not None else None
        if rules is not None:
            lines = [f"-D {r}" for r in rules] + [f"-F {chain}", f"-X {chain}"]
            try:
                iptables_restore_nat(family, lines, "removing published ports")
                continue
            except FirewallError:
                pass  # something was removed by hand: list what is left
        elif _chain_exists(family, chain) is False:
            continue  # no record and no chain (a repeated DEL): nothing to list for
        released += _remove_listed(family, {chain})
    return released


def _remove_listed(family: int, doomed: set[str], prefix: str | None = None) -> list[str]:
    saved = iptables_nat_rules(family)
    chains = {line[1:].split()[0] for line in saved if line.startswith(":" + PREFIX)}
    if prefix is not None:  # GC: every chain of the network but the kept ones
        doomed = {c for c in chains if c.startswith(PREFIX + prefix)} - doomed
    lines = []
    released = []
    for line in saved:
        found = tag_of(line)
        if (
            found
            and PREFIX + found[0] in doomed
            and line.startswith((f"-A {CHAIN} ", f"-A {MASQ_CHAIN} "))
        ):
            lines.append("-D " + line[3:])
            if line.startswith(f"-A {CHAIN} "):
                proto, port, _ = (found[1].split("/") + ["", "", ""])[:3]
                released.append(f"{proto}/{port}")
    for chain in sorted(doomed & chains):
        lines += [f"-F {chain}", f"-X {chain}"]
    if lines:
        iptables_restore_nat(family, lines, "removing published ports")
    return released


def gc(prefix: str, keep: set[str]) -> list[str]:
    released: list[str] = []
    for key, owner in records.claims(prefix):
        if owner not in keep:
            records.unclaim(key, owner)
    for family in (4, 6):
        released += _remove_listed(family, {PREFIX + t for t in keep}, prefix)
    return released


def check(att: Attachment, todo: list[Entry], doc: dict[str, Any] | None) -> str | None:
    """Lists the attachment's own chain (``-S DLP-<tag>``), not the table,
    and asks for each recorded rule of the shared chains (``-C``)."""
    import shlex

    chain = PREFIX + att.tag
    for family in (4, 6):
        mine = [e for e in todo if e.ip.version == family]
        if not mine:
            continue
        shared = _recorded(att, doc, family) if doc is not None else None
        if shared is None:
            return f"no record of the IPv{family} rules"
        for rule in shared:
            found = proc.run([_LISTS[family], "-w", "5", "-t", "nat", "-C", *shlex.split(rule)])
            if found.returncode != 0:
                return f"rule missing: {rule}"
        listed = proc.run([_LISTS[family], "-w", "5", "-t", "nat", "-S", chain])
        have = set()
        if listed.returncode == 0:
            for line in listed.stdout.decode(errors="replace").splitlines():
                tagged = tag_of(line)
                if tagged and tagged[0] == att.tag and "-j DNAT" in line:
                    have.add(tagged[1])
        for e in mine:
            if e.mapping.key() not in have:
                return f"{e.mapping.key()} (IPv{family})"
    return None

"""Published ports: DNAT from host ports to a container, owned by the
attachment, one firewall transaction per change.

nftables (table ``inet dockline_portmap``): three verdict maps keyed by
(protocol . port), (IPv4 host address . protocol . port) and (IPv6 host
address . protocol . port) send local-destined traffic to a per-attachment
chain ``c-<tag>`` holding the DNAT and masquerade-mark rules.  Lookups are
constant time however many ports are published, a map key can be taken
only once (``create element``: a second container asking for the same host
port fails atomically), and DEL finds the attachment's keys by reading the
maps, so it does not need the runtime to resend portMappings.

iptables (nat table): chain ``DOCKLINE-HOSTPORTS`` (entered from PREROUTING
and OUTPUT for local destinations) jumps per mapping to ``DLP-<tag>``;
``DOCKLINE-HOSTPORTS-MASQ`` (from POSTROUTING) masquerades marked packets.
Rules carry the comment ``dl-<tag> <proto>/<port>/<hostIP>`` by which DEL and
GC find them and ADD detects host ports already taken (under a lock, since
iptables has no unique keys).
"""

from __future__ import annotations

from .. import proc
from ..cni import jsonio
from ..cni.attachment import Attachment, network_tag
from ..cni.errors import ADDRESS_IN_USE, STATE_MISSING, CniError
from ..filelock import FileLock
from . import (
    FirewallError,
    default_backend,
    iptables_nat_rules,
    iptables_restore_nat,
    localnet,
    nft_apply,
    tokens,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..portmap.config import ContainerIP, Mapping, PortmapConfig

NFT_TABLE = "dockline_portmap"
IPT_CHAIN = "DOCKLINE-HOSTPORTS"
IPT_MASQ_CHAIN = "DOCKLINE-HOSTPORTS-MASQ"
IPT_PREFIX = "DLP-"
LOCK_PATH = "/var/lib/cni/dockline/portmap.lock"
_MAPS = {None: "ports", 4: "ports4", 6: "ports6"}


def choose_backend(conf: PortmapConfig) -> str:
    if conf.backend:
        return conf.backend
    if conf.has_nft_conditions:
        return "nftables"  # nft-syntax conditions say which backend is meant
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


def _dest(ip: ContainerIP, port: int) -> str:
    return f"[{ip.address}]:{port}" if ip.version == 6 else f"{ip.address}:{port}"


# --- nftables ------------------------------------------------------------


def _nft(lines: list[str], what: str) -> None:
    try:
        nft_apply(lines, what)
    except FirewallError as err:
        if "File exists" in err.output and "element" in err.output:
            raise CniError(
                ADDRESS_IN_USE,
                "host port already in use",
                "another container publishes the same host port and protocol "
                "on the same host address",
            ) from None
        raise


def _nft_base(mark: int) -> list[str]:
    t = f"inet {NFT_TABLE}"
    lines = [f"add table {t}"]
    for chain, hook, prio in (
        ("prerouting", "prerouting", -100),
        ("output", "output", -100),
        ("postrouting", "postrouting", 100),
    ):
        lines.append(
            f"add chain {t} {chain} {{ type nat hook {hook} priority {prio}; policy accept; }}"
        )
    lines += [
        f"add map {t} ports {{ type inet_proto . inet_service : verdict; }}",
        f"add map {t} ports4 {{ type ipv4_addr . inet_proto . inet_service : verdict; }}",
        f"add map {t} ports6 {{ type ipv6_addr . inet_proto . inet_service : verdict; }}",
    ]
    # The base chains are constant-size; rewriting them in the same
    # transaction keeps them right whatever state they were left in.
    for chain in ("prerouting", "output"):
        lines += [
            f"flush chain {t} {chain}",
            f"add rule {t} {chain} fib daddr type local ip daddr . meta l4proto . th dport vmap @ports4",
            f"add rule {t} {chain} fib daddr type local ip6 daddr . meta l4proto . th dport vmap @ports6",
            f"add rule {t} {chain} fib daddr type local meta l4proto . th dport vmap @ports",
        ]
    lines += [
        f"flush chain {t} postrouting",
        f"add rule {t} postrouting meta mark & {mark:#x} == {mark:#x} masquerade",
    ]
    return lines + localnet.nft_guard(t)


def _nft_add(att: Attachment, conf: PortmapConfig, todo: list[Entry]) -> None:
    t = f"inet {NFT_TABLE}"
    chain = f"c-{att.tag}"
    lines = _nft_base(conf.mark) + [f"add chain {t} {chain}", f"flush chain {t} {chain}"]
    keys: dict[str, set[str]] = {}
    for e in todo:
        m, ip = e.mapping, e.ip
        fam = "ip6" if ip.version == 6 else "ip"
        nfproto = "ipv6" if ip.version == 6 else "ipv4"
        conds = " ".join(conf.conditions_v6 if ip.version == 6 else conf.conditions_v4)
        match = (
            f"meta nfproto {nfproto} "
            + (f"{conds} " if conds else "")
            + (f"{fam} daddr {m.host_ip} " if m.host_ip else "")
        )
        match += f"{m.protocol} dport {m.host_port}"
        if conf.snat:
            if conf.masq_all:
                lines.append(f"add rule {t} {chain} {match} meta mark set mark or {conf.mark:#x}")
            else:
                sources = [str(ip.subnet)] + (["127.0.0.0/8"] if ip.version == 4 else [])
                lines.append(
                    f"add rule {t} {chain} {match} {fam} saddr {{ {', '.join(sources)} }} "
                    f"meta mark set mark or {conf.mark:#x}"
                )
        lines.append(f"add rule {t} {chain} {match} dnat {fam} to {_dest(ip, m.container_port)}")
        version = m.host_ip.version if m.host_ip else None
        key = (f"{m.host_ip} . " if m.host_ip else "") + f"{m.protocol} . {m.host_port}"
        keys.setdefault(_MAPS[version], set()).add(key)
    for map_name, map_keys in keys.items():
        for key in sorted(map_keys):
            lines.append(f"create element {t} {map_name} {{ {key} : jump {chain} }}")
    _nft(lines, "publishing ports")


def _nft_elements() -> list[tuple[str, str, str]]:
    """(map, key text, target chain) of every element in our maps."""
    result = proc.run(["nft", "-j", "list", "maps"])
    if result.returncode != 0:
        return []
    found = []
    for item in jsonio.loads(result.stdout).get("nftables", []):
        m = item.get("map")
        if not m or m.get("table") != NFT_TABLE or m.get("family") != "inet":
            continue
        if m.get("name") not in _MAPS.values():
            continue
        for key, verdict in m.get("elem") or []:
            parts = key["concat"] if isinstance(key, dict) and "concat" in key else [key]
            target = (verdict.get("jump") or verdict.get("goto") or {}).get("target", "")
            text = " . ".join(str(p) for p in parts)
            # Read back from the kernel, written by us: still only tokens
            # go back into a script (an element we could not have made is
            # left alone).
            if _KEY_CHARS.issuperset(text) and _safe_chain(target):
                found.append((m["name"], text, target))
    return found


_KEY_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEF.: ")


def _safe_chain(name: str) -> bool:
    return name.startswith("c-") and tokens.HEX_CHARS.issuperset(name[2:]) and len(name) < 40


def _nft_chains() -> set[str]:
    result = proc.run(["nft", "-j", "list", "chains", "inet"])
    if result.returncode != 0:
        return set()
    return {
        item["chain"]["name"]
        for item in jsonio.loads(result.stdout).get("nftables", [])
        if "chain" in item
        and item["chain"].get("table") == NFT_TABLE
        and _safe_chain(item["chain"].get("name", ""))
    }


def _nft_remove(tags: set[str], elements, chains: set[str]) -> list[str]:
    """Delete the elements and chains of the given tags; returns the
    released 'proto/port' pairs (for the conntrack flush)."""
    t = f"inet {NFT_TABLE}"
    lines, released = [], []
    for map_name, key, target in elements:
        if target.startswith("c-") and target[2:] in tags:
            lines.append(f"delete element {t} {map_name} {{ {key} }}")
            parts = key.split(" . ")
            released.append(f"{parts[-2]}/{parts[-1]}")
    for tag in sorted(tags):
        if f"c-{tag}" in chains:
            lines += [f"flush chain {t} c-{tag}", f"delete chain {t} c-{tag}"]
    if lines:
        _nft(lines, "removing published ports")
    return released


# --- iptables ------------------------------------------------------------


def _ipt_tag_of(line: str) -> tuple[str, str] | None:
    """(tag, mapping key) from a rule's 'dl-<tag> <key>' comment."""
    if '--comment "dl-' not in line:
        return None
    text = line.split('--comment "dl-', 1)[1].split('"', 1)[0]
    tag, _, key = text.partition(" ")
    return tag, key


def _ipt_ensure_base(family: int, saved: list[str]) -> None:
    chains = {line[1:].split()[0] for line in saved if line.startswith(":")}
    if IPT_CHAIN in chains and IPT_MASQ_CHAIN in chains:
        return
    lines = []
    if IPT_CHAIN not in chains:
        lines += [
            f"-N {IPT_CHAIN}",
            f'-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "dockline portmap" -j {IPT_CHAIN}',
            f'-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "dockline portmap" -j {IPT_CHAIN}',
        ]
    if IPT_MASQ_CHAIN not in chains:
        lines += [
            f"-N {IPT_MASQ_CHAIN}",
            f'-I POSTROUTING -m comment --comment "dockline portmap" -j {IPT_MASQ_CHAIN}',
        ]
    iptables_restore_nat(family, lines, "creating the portmap chains")


def _ipt_add(att: Attachment, conf: PortmapConfig, todo: list[Entry]) -> None:
    chain = IPT_PREFIX + att.tag
    mark = f"{conf.mark:#x}/{conf.mark:#x}"
    for family in (4, 6):
        mine = [e for e in todo if e.ip.version == family]
        if not mine:
            continue
        saved = iptables_nat_rules(family)
        _ipt_ensure_base(family, saved)
        taken = {}
        for line in saved:
            found = _ipt_tag_of(line)
            if found and line.startswith(f"-A {IPT_CHAIN} "):
                taken[found[1]] = found[0]
        for e in mine:
            other = taken.get(e.mapping.key())
            if other and other != att.tag:
                raise CniError(
                    ADDRESS_IN_USE,
                    "host port already in use",
                    f"{e.mapping.key()} is published by another container",
                )
        conds = " ".join(conf.conditions_v6 if family == 6 else conf.conditions_v4)
        lines = [f":{chain} - [0:0]"]
        for e in mine:
            m, ip = e.mapping, e.ip
            comment = f'-m comment --comment "dl-{att.tag} {m.key()}"'
            dst = f"-d {m.host_ip} " if m.host_ip else ""
            match = f"-p {m.protocol} -m {m.protocol} --dport {m.host_port} {dst}"
            lines.append(f"-A {IPT_CHAIN} {match}{conds} {comment} -j {chain}".replace("  ", " "))
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
            lines.append(
                f"-A {chain} {match}{comment} -j DNAT --to-destination "
                f"{_dest(ip, m.container_port)}"
            )
        if conf.snat:
            lines.append(
                f'-A {IPT_MASQ_CHAIN} -m comment --comment "dl-{att.tag} masq" '
                f"-m mark --mark {mark} -j MASQUERADE"
            )
        iptables_restore_nat(family, lines, "publishing ports")


def _ipt_remove(tags: set[str], prefix: str | None = None) -> list[str]:
    released = []
    for family in (4, 6):
        saved = iptables_nat_rules(family)
        chains = {line[1:].split()[0] for line in saved if line.startswith(":" + IPT_PREFIX)}
        doomed = {IPT_PREFIX + t for t in tags}
        if prefix is not None:  # GC: every chain of the network but the kept ones
            doomed = {c for c in chains if c.startswith(IPT_PREFIX + prefix)} - doomed
        lines = []
        for line in saved:
            found = _ipt_tag_of(line)
            if (
                found
                and IPT_PREFIX + found[0] in doomed
                and line.startswith((f"-A {IPT_CHAIN} ", f"-A {IPT_MASQ_CHAIN} "))
            ):
                lines.append("-D " + line[3:])
                if line.startswith(f"-A {IPT_CHAIN} "):
                    proto, port, _ = (found[1].split("/") + ["", "", ""])[:3]
                    released.append(f"{proto}/{port}")
        for chain in sorted(doomed & chains):
            lines += [f"-F {chain}", f"-X {chain}"]
        if lines:
            iptables_restore_nat(family, lines, "removing published ports")
    return released


# --- conntrack ---------------------------------------------------


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


# --- the interface -----------------------------------------------------------


def add(backend: str, att: Attachment, conf: PortmapConfig) -> None:
    todo = entries(conf)
    if not todo:
        return
    if backend == "nftables":
        _nft_add(att, conf, todo)
    else:
        with FileLock(LOCK_PATH):
            _ipt_add(att, conf, todo)
    if conf.snat and any(e.ip.version == 4 for e in todo):
        try:
            localnet.acquire(
                att.tag,
                localnet.towards_container([e.ip.address for e in todo if e.ip.version == 4]),
                backend,
            )
        except BaseException:
            delete((backend,), att)  # an ADD that fails leaves nothing
            raise
    flush_udp_conntrack([f"{e.mapping.protocol}/{e.mapping.host_port}" for e in todo])


BOTH = ("iptables", "nftables")


def delete(backends: tuple[str, ...], att: Attachment) -> None:
    """Remove the attachment's rules from each of ``backends`` (both when
    the config cannot say which) and its hold on route_localnet.  Every
    step runs even if one before failed; the first failure is raised."""
    released: list[str] = []
    errors: list[BaseException] = []
    for backend in backends:
        try:
            if backend == "nftables":
                if proc.which("nft"):
                    released += _nft_remove({att.tag}, _nft_elements(), _nft_chains())
            elif proc.which("iptables-save"):
                with FileLock(LOCK_PATH):
                    released += _ipt_remove({att.tag})
        except Exception as exc:  # the other backend and the sysctl still get their turn
            errors.append(exc)
    for step in (
        lambda: localnet.release(lambda tag: tag == att.tag),
        lambda: flush_udp_conntrack(released),
    ):
        try:
            step()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def gc(backends: tuple[str, ...], network: str, valid: set[Attachment]) -> None:
    prefix = network_tag(network)
    keep = {a.tag for a in valid}
    released: list[str] = []
    for backend in backends:
        if backend == "nftables":
            if not proc.which("nft"):
                continue
            elements, chains = _nft_elements(), _nft_chains()
            tags = {c[2:] for c in chains if c.startswith("c-" + prefix)}
            tags |= {
                target[2:] for _, _, target in elements if target.startswith("c-" + prefix)
            }
            released += _nft_remove(tags - keep, elements, chains)
        elif proc.which("iptables-save"):
            with FileLock(LOCK_PATH):
                released += _ipt_remove(keep, prefix=prefix)
    localnet.release(lambda tag: tag.startswith(prefix) and tag not in keep)
    flush_udp_conntrack(released)


def check(backend: str, att: Attachment, conf: PortmapConfig) -> None:
    todo = entries(conf)
    if not todo:
        return
    if backend == "nftables":
        have = {(m, k) for m, k, target in _nft_elements() if target == f"c-{att.tag}"}
        for e in todo:
            m = e.mapping
            key = (f"{m.host_ip} . " if m.host_ip else "") + f"{m.protocol} . {m.host_port}"
            if (_MAPS[m.host_ip.version if m.host_ip else None], key) not in have:
                raise CniError(STATE_MISSING, "portmap CHECK: a published port is missing", m.key())
        return
    for family in (4, 6):
        mine = [e for e in todo if e.ip.version == family]
        if not mine:
            continue
        keys = set()
        for line in iptables_nat_rules(family):
            found = _ipt_tag_of(line)
            if found and found[0] == att.tag and line.startswith(f"-A {IPT_CHAIN} "):
                keys.add(found[1])
        for e in mine:
            if e.mapping.key() not in keys:
                raise CniError(
                    STATE_MISSING,
                    "portmap CHECK: a published port is missing",
                    f"{e.mapping.key()} (IPv{family})",
                )

"""Every value that reaches an ``iptables-restore`` or ``nft -f`` script
passes through here first.

Those scripts are line-oriented programs: a newline (or, for nft, a ``;``)
in a value ends the command and starts one of the caller's choosing, a
quote or a trailing backslash changes how the rest of the line is read.
So a script is built only from tokens checked against a strict character
set, and values with structure (addresses, ports, protocols) are parsed
and rendered again from the parsed object, never copied from the input
text.  Anything that fails is code 7 (invalid configuration), raised while
the request is validated, before any side effect.

Operator-supplied extra matches (portmap ``conditionsV4``/``conditionsV6``)
are checked token by token: iptables syntax against a grammar of known
options and match modules, nft syntax against a conservative character
set with statement keywords refused.
"""

from __future__ import annotations

from ..cni.errors import INVALID_CONFIG, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Callable
    from typing import TypeAlias

    Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
    Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
    Interface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface
    # A value checker: (text, what) -> the rendered token, or CniError.
    Check = Callable[[str, str], str]

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_ALNUM = frozenset(_LOWER + _LOWER.upper() + "0123456789")
IFNAME_CHARS = _ALNUM | frozenset("_.-")
CHAIN_CHARS = _ALNUM | frozenset("_-")
HEX_CHARS = frozenset("0123456789abcdef")
_ADDRESS_CHARS = frozenset("0123456789abcdefABCDEF.:")
_CIDR_CHARS = _ADDRESS_CHARS | {"/"}
IFNAME_MAX = 15
PROTOCOLS = ("tcp", "udp", "sctp")


def bad(what: str, value: object, why: str) -> CniError:
    return CniError(INVALID_CONFIG, f"invalid {what}", f"{_show(value)} {why}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _only(value: object, chars: frozenset[str], what: str, max_len: int, min_len: int = 1) -> str:
    if not isinstance(value, str):
        raise bad(what, value, "is not a string")
    if not min_len <= len(value) <= max_len:
        raise bad(what, value, f"must be {min_len} to {max_len} characters long")
    for ch in value:
        if ch not in chars:
            raise bad(what, value, f"contains the character {ch!r}")
    return value


# --- names -----------------------------------------------------------------


def ifname(value: object, what: str = "interface name") -> str:
    """A kernel interface name as it may appear in a rule: ASCII letters,
    digits, ``_ . -``, at most 15 bytes, no wildcard."""
    name = _only(value, IFNAME_CHARS, what, IFNAME_MAX)
    if name in (".", ".."):
        raise bad(what, value, "is not an interface name")
    return name


def chain(value: object, what: str = "chain name", max_len: int = 28) -> str:
    """An iptables chain name (28 is iptables' limit) or nft chain name."""
    return _only(value, CHAIN_CHARS, what, max_len)


def hex_tag(value: object, what: str = "tag") -> str:
    """dockline's own rule tags and comments: lowercase hex only."""
    return _only(value, HEX_CHARS, what, 64)


def mac(value: object, what: str = "MAC address") -> str:
    text = _only(value, frozenset("0123456789abcdefABCDEF:"), what, 17, 17)
    parts = text.split(":")
    if len(parts) != 6 or any(len(p) != 2 for p in parts):
        raise bad(what, value, "is not a MAC address")
    return text.lower()


# --- numbers ---------------------------------------------------------------


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def port(value: object, what: str = "port") -> int:
    number = _int(value)
    if number is None or not 0 < number < 65536:
        raise bad(what, value, "is not a port number (1-65535)")
    return number


def mark_bit(value: object, what: str = "markMasqBit") -> int:
    number = _int(value)
    if number is None or not 0 <= number <= 31:
        raise bad(what, value, "is not a bit number (0-31)")
    return number


def protocol(value: object, what: str = "protocol") -> str:
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return value.lower()
    raise bad(what, value, f"is not one of {', '.join(PROTOCOLS)}")


# --- addresses ---------------------------------------------------------------


def address(value: object, what: str = "address") -> Address:
    """An IPv4/IPv6 address without zone id; render it with ``str()``."""
    text = _only(value, _ADDRESS_CHARS, what, 45)
    import ipaddress  # loaded only by callers with addresses (bridge, portmap)

    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        raise bad(what, value, "is not an IP address") from None
    if getattr(parsed, "scope_id", None) is not None:  # belt and braces: '%' is refused above
        raise bad(what, value, "carries a zone id")
    return parsed


def interface(value: object, what: str = "address") -> Interface:
    """``address/prefix`` (host bits allowed), as in a CNI result."""
    text = _only(value, _CIDR_CHARS, what, 49)
    if text.count("/") != 1:
        raise bad(what, value, "is not of the form address/prefix")
    import ipaddress

    try:
        parsed = ipaddress.ip_interface(text)
    except ValueError:
        raise bad(what, value, "is not an address/prefix") from None
    if getattr(parsed.ip, "scope_id", None) is not None:
        raise bad(what, value, "carries a zone id")
    return parsed


def network(value: object, what: str = "network") -> Network:
    """An address or CIDR as a match value; host bits are masked off, as
    iptables itself does."""
    text = _only(value, _CIDR_CHARS, what, 49)
    import ipaddress

    try:
        parsed = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise bad(what, value, "is not an address or CIDR") from None
    if getattr(parsed.network_address, "scope_id", None) is not None:
        raise bad(what, value, "carries a zone id")
    return parsed


# --- operator-supplied conditions ----------------------------------------------


def _split(conditions: object, what: str) -> list[str]:
    """The tokens of a list of condition strings (each may hold several,
    separated by spaces or tabs; nothing else counts as a separator)."""
    if conditions is None:
        return []
    if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
        raise bad(what, conditions, "is not a list of strings")
    tokens = []
    for cond in conditions:
        for ch in cond:
            if not (" " <= ch <= "~" or ch == "\t"):
                raise bad(what, cond, f"contains the character {ch!r}")
        tokens += cond.split()
    return tokens


def is_iptables_syntax(conditions: list[str]) -> bool:
    return any(c.strip().startswith(("-", "! -")) for c in conditions if isinstance(c, str))


def _port_or_range(text: str, what: str) -> str:
    parts = text.split(":")
    if len(parts) > 2 or not all(p.isdigit() and p.isascii() and len(p) <= 5 for p in parts):
        raise bad(what, text, "is not a port or port range")
    numbers = [port(int(p), what) for p in parts]
    return ":".join(str(n) for n in numbers)


def _port_list(text: str, what: str) -> str:
    items = text.split(",")
    if len(items) > 15:
        raise bad(what, text, "lists more than 15 ports")
    return ",".join(_port_or_range(i, what) for i in items)


def _word_list(allowed: tuple[str, ...]) -> Check:
    def check(text: str, what: str) -> str:
        items = text.split(",")
        if not all(i.upper() in allowed for i in items):
            raise bad(what, text, f"is not a comma-separated list of {', '.join(allowed)}")
        return ",".join(i.upper() for i in items)

    return check


def _mark(text: str, what: str) -> str:
    out = []
    for part in text.split("/", 1):
        digits = part[2:] if part[:2].lower() == "0x" else part
        base = 16 if digits is not part else 10
        ok = (
            bool(digits)
            and len(digits) <= 10
            and all(
                ch in ("0123456789abcdefABCDEF" if base == 16 else "0123456789") for ch in digits
            )
        )
        number = int(digits, base) if ok else -1
        if not 0 <= number <= 0xFFFFFFFF:
            raise bad(what, text, "is not a mark value[/mask]")
        out.append(f"{number:#x}")
    return "/".join(out)


def _range(text: str, what: str) -> str:
    parts = text.split("-")
    if len(parts) != 2:
        raise bad(what, text, "is not an address range first-last")
    first, last = address(parts[0], what), address(parts[1], what)
    if first.version != last.version:
        raise bad(what, text, "mixes address families")
    return f"{first}-{last}"


def _ipset(text: str, what: str) -> str:
    return _only(text, IFNAME_CHARS, what, 31)


def _net(text: str, what: str) -> str:
    return str(network(text, what))


def _iface(text: str, what: str) -> str:
    return ifname(text, what)


def _proto(text: str, what: str) -> str:
    if text.lower() in ("tcp", "udp", "sctp", "icmp", "icmpv6", "ipv6-icmp", "all"):
        return text.lower()
    raise bad(what, text, "is not a protocol dockline accepts here")


_ADDRTYPES = (
    "UNSPEC",
    "UNICAST",
    "LOCAL",
    "BROADCAST",
    "ANYCAST",
    "MULTICAST",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
)
_CTSTATES = ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "SNAT", "DNAT")
_SET_FLAGS = ("SRC", "DST")

# Options outside any match module: option -> value checker.
_IPT_BASE = {
    "-s": _net,
    "--source": _net,
    "-d": _net,
    "--destination": _net,
    "-i": _iface,
    "--in-interface": _iface,
    "-o": _iface,
    "--out-interface": _iface,
    "-p": _proto,
    "--protocol": _proto,
}
# Match modules (-m NAME) and their options; None: the option takes no value.
_IPT_MODULES: dict[str, dict[str, Check | None]] = {
    "tcp": {
        "--dport": _port_or_range,
        "--destination-port": _port_or_range,
        "--sport": _port_or_range,
        "--source-port": _port_or_range,
    },
    "multiport": {
        "--dports": _port_list,
        "--destination-ports": _port_list,
        "--sports": _port_list,
        "--source-ports": _port_list,
        "--ports": _port_list,
    },
    "addrtype": {
        "--src-type": _word_list(_ADDRTYPES),
        "--dst-type": _word_list(_ADDRTYPES),
        "--limit-iface-in": None,
        "--limit-iface-out": None,
    },
    "iprange": {"--src-range": _range, "--dst-range": _range},
    "mark": {"--mark": _mark},
    "conntrack": {"--ctstate": _word_list(_CTSTATES), "--ctorigsrc": _net, "--ctorigdst": _net},
    "set": {"--match-set": None},  # two values, checked below
    "mac": {"--mac-source": lambda text, what: mac(text, what)},
}
_ADDRESS_OPTS = frozenset(
    (
        "-s",
        "--source",
        "-d",
        "--destination",
        "--src-range",
        "--dst-range",
        "--ctorigsrc",
        "--ctorigdst",
    )
)
_IPT_MODULES["udp"] = _IPT_MODULES["tcp"]
_IPT_MODULES["sctp"] = _IPT_MODULES["tcp"]


def iptables_conditions(
    conditions: object, what: str = "conditions", family: int | None = None
) -> list[str]:
    """Extra iptables matches, checked against a whitelist grammar and
    rendered again token by token.  No target (-j/-g), no comment, no
    option dockline does not know.  With ``family``, every address must be
    of that family (ip6tables would refuse an IPv4 one half-way through
    an ADD)."""
    tokens = _split(conditions, what)
    out: list[str] = []
    modules: set[str] = set()
    i = 0

    def value(opt: str) -> str:
        if i + 1 >= len(tokens):
            raise bad(what, opt, "needs a value")
        return tokens[i + 1]

    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            if i + 1 >= len(tokens) or tokens[i + 1] in ("!", "-m", "--match"):
                raise bad(what, " ".join(tokens), "has a '!' not followed by a match option")
            out.append("!")
            i += 1
            continue
        if tok in ("-m", "--match"):
            name = value(tok)
            if name not in _IPT_MODULES:
                raise bad(
                    what,
                    name,
                    f"is not a match module dockline accepts ({', '.join(sorted(_IPT_MODULES))})",
                )
            modules.add(name)
            out += ["-m", name]
            i += 2
            continue
        if tok in _IPT_BASE:
            rendered = _IPT_BASE[tok](value(tok), f"{what} {tok}")
            if family and tok in _ADDRESS_OPTS and network(rendered).version != family:
                raise bad(what, tokens[i + 1], f"is not an IPv{family} address")
            if tok in ("-p", "--protocol") and rendered in ("tcp", "udp", "sctp"):
                modules.add(rendered)  # iptables loads the protocol's match itself
            out += [tok, rendered]
            i += 2
            continue
        owner = next((m for m in sorted(modules) if tok in _IPT_MODULES[m]), None)
        if owner is None:
            raise bad(what, tok, "is not an option dockline accepts in iptables conditions")
        check = _IPT_MODULES[owner][tok]
        if owner == "set":
            if i + 2 >= len(tokens):
                raise bad(what, tok, "needs a set name and flags")
            out += [
                tok,
                _ipset(tokens[i + 1], f"{what} {tok}"),
                _word_list(_SET_FLAGS)(tokens[i + 2], f"{what} {tok}").lower(),
            ]
            i += 3
        elif check is None:
            out.append(tok)
            i += 1
        else:
            rendered = check(value(tok), f"{what} {tok}")
            if (
                family
                and tok in _ADDRESS_OPTS
                and (network(rendered.split("-")[0]).version != family)
            ):
                raise bad(what, tokens[i + 1], f"is not an IPv{family} address")
            out += [tok, rendered]
            i += 2
    if out and out[-1] == "!":
        raise bad(what, " ".join(tokens), "ends with '!'")
    return out


NFT_CHARS = _ALNUM | frozenset("._:/,!=<>&|^@-")
# Statements and verdicts: a condition only matches, it never acts.
_NFT_FORBIDDEN = frozenset(
    (
        "accept",
        "drop",
        "reject",
        "jump",
        "goto",
        "queue",
        "continue",
        "return",
        "set",
        "dnat",
        "snat",
        "masquerade",
        "redirect",
        "log",
        "counter",
        "quota",
        "notrack",
        "dup",
        "fwd",
        "tproxy",
        "synproxy",
        "flow",
        "add",
        "update",
        "delete",
        "meter",
        "include",
        "define",
        "redefine",
        "undefine",
        "table",
        "chain",
        "rule",
        "map",
        "element",
        "flush",
        "insert",
        "replace",
        "create",
        "destroy",
        "reset",
        "list",
        "export",
        "import",
        "monitor",
        "describe",
        "comment",
    )
)


def nft_conditions(conditions: object, what: str = "conditions") -> list[str]:
    """Extra nft matches: tokens of a conservative character set (no
    ``; { } # " ' \\ $`` nor any line break), without statement or verdict
    keywords, so the condition can only narrow the rule it sits in."""
    tokens = _split(conditions, what)
    for tok in tokens:
        _only(tok, NFT_CHARS, what, 64)
        if tok.lower() in _NFT_FORBIDDEN:
            raise bad(what, tok, "is a statement, not a match (refused in nft conditions)")
    return tokens

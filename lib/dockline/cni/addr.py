"""Addresses as they enter dockline: one parser per kind, used everywhere.

Every address a config, CNI_ARGS, a capability, a prevResult or a file
hands us goes through ``parse_ip``, ``parse_interface`` or
``parse_network``, and is written out again from the parsed object (never
the input text), so what reaches a file name, a result or the kernel is
canonical: lower-case, zero-compressed IPv6; an IPv4-mapped IPv6 address is
the IPv4 address, as Go's net.IP (the reference's) renders it.

Stricter than Python's ipaddress, as strict as Go's net.ParseIP and
net.ParseCIDR: no IPv6 zone ("fe80::1%eth0": ipaddress keeps any text
after the ``%``, newlines included, and a zone has no meaning in a
container's config or a file name), no white space, no netmask after the
slash, ASCII only.

ipaddress is imported on first use: it costs ~8 ms, and the paths that
never parse an address (most DELs) should not pay for it.
"""

from __future__ import annotations

from .errors import INVALID_CONFIG, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress

    IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
    IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The longest IPv6 text ("ffff:...:255.255.255.255/128") is 49 characters.
_MAX_TEXT = 64
_ALLOWED = frozenset("0123456789abcdefABCDEF.:/")


def _checked_text(text: object, what: str, code: int) -> str:
    if not isinstance(text, str):
        raise CniError(code, f"invalid {what}", f"{text!r} is not a string")
    if "%" in text:
        raise CniError(code, f"invalid {what}", f"{text!r}: IPv6 scope ids (%zone) are not allowed")
    if not text or len(text) > _MAX_TEXT or not _ALLOWED.issuperset(text):
        raise CniError(code, f"invalid {what}", f"{text!r} is not an IP address")
    return text


def _address(text: str, what: str, code: int) -> IPAddress:
    import ipaddress

    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise CniError(code, f"invalid {what}", f"{text!r} is not an IP address") from None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _prefix(text: str, ip: IPAddress, what: str, code: int) -> int:
    # Digits only: ipaddress also takes a netmask ("/255.255.255.0"), Go does not.
    if not text.isdigit() or len(text) > 3 or int(text) > ip.max_prefixlen:
        raise CniError(code, f"invalid {what}", f"{text!r} is not a prefix length for {ip}")
    return int(text)


def parse_ip(
    text: object, what: str, code: int = INVALID_CONFIG, *, prefix_ok: bool = False
) -> IPAddress:
    """An address; with ``prefix_ok`` also ``address/prefix``, of which the
    address is kept (requested IPs may be written either way)."""
    text = _checked_text(text, what, code)
    if "/" in text:
        if not prefix_ok:
            raise CniError(
                code, f"invalid {what}", f"{text!r}: expected an address without /prefix"
            )
        return parse_interface(text, what, code).ip
    return _address(text, what, code)


def parse_interface(text: object, what: str, code: int = INVALID_CONFIG) -> IPInterface:
    """``address/prefix`` (host bits kept), as Go's net.ParseCIDR reads it.
    An IPv4-mapped address with prefix >= 96 is the IPv4 address with
    prefix - 96, which is how Go prints such a net.IPNet."""
    text = _checked_text(text, what, code)
    import ipaddress

    addr, sep, plen = text.partition("/")
    if not sep:
        raise CniError(
            code, f"invalid {what}", f"{text!r} is not in CIDR notation (address/prefix)"
        )
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise CniError(code, f"invalid {what}", f"{text!r} is not an address/prefix") from None
    prefix = _prefix(plen, ip, what, code)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        if prefix < 96:
            raise CniError(
                code,
                f"invalid {what}",
                f"{text!r}: an IPv4-mapped address needs a prefix of at least 96",
            )
        ip, prefix = ip.ipv4_mapped, prefix - 96
    return ipaddress.ip_interface((ip, prefix))


def parse_network(text: object, what: str, code: int = INVALID_CONFIG) -> IPNetwork:
    """A network: ``address/prefix`` with the host bits zero."""
    iface = parse_interface(text, what, code)
    if iface.ip != iface.network.network_address:
        raise CniError(code, f"invalid {what}", f"{text!r} has host bits set")
    if ":" in str(text) and iface.version == 4:  # (text is a str once parsed)
        # Go keeps an IPv4-mapped network 16 bytes long and the reference
        # refuses it (mask/address version mismatch): so do we.
        raise CniError(code, f"invalid {what}", f"{text!r}: IPv4-mapped networks are not allowed")
    return iface.network


def render_interface(iface: IPInterface) -> str:
    """``address/prefix``, host bits kept (str(iface) in ipaddress keeps a
    scope id and may differ between Python versions for mapped addresses)."""
    return f"{iface.ip}/{iface.network.prefixlen}"


def parse_int(value: object, what: str, low: int, high: int, code: int = INVALID_CONFIG) -> int:
    """A JSON integer in [low, high]: not a bool, not a float, not huge."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CniError(code, f"invalid {what}", f"{value!r} is not an integer in {low}..{high}")
    return value

"""IP addresses on links."""

import socket
from errno import EADDRNOTAVAIL, EEXIST, EINVAL
from typing import Any, NamedTuple

from ._pyroute2 import ifaddrmsg
from .base import LinkRef, OpsBase, describe
from .errors import NetlinkError
from .rtnl import NLM_F_CREATE, NLM_F_EXCL, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR, RtnlRequest

__all__ = ["Address", "AddressOps", "AddressWriteOps", "parse_cidr"]

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
IFA_F_NODAD = 0x02
IFA_F_NOPREFIXROUTE = 0x200


class Address(NamedTuple):
    # the kernel's name for the field; it shadows tuple.index, unused here
    index: int  # type: ignore[assignment]
    family: int
    address: str
    prefixlen: int
    scope: int
    flags: int  # IFA_F_* bits
    broadcast: str | None
    label: str | None

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


def parse_cidr(value: Any) -> tuple[int, str, int]:
    """``'10.1.2.3/24'`` → (AF_INET, '10.1.2.3', 24); no /prefix means a host
    address.  Accepts anything whose str() has that form (ipaddress and
    netaddr objects)."""
    text = str(value)
    addr, slash, plen = text.partition("/")
    family = AF_INET6 if ":" in addr else AF_INET
    bits = 128 if family == AF_INET6 else 32
    try:
        socket.inet_pton(family, addr)
        prefixlen = int(plen) if slash else bits
    except (OSError, ValueError):
        raise NetlinkError(EINVAL, f"invalid address {text!r}") from None
    if not 0 <= prefixlen <= bits:
        raise NetlinkError(EINVAL, f"invalid prefix length in {text!r}")
    return family, addr, prefixlen


def _broadcast(addr: str, prefixlen: int) -> str | None:
    if prefixlen >= 31:
        return None
    value = int.from_bytes(socket.inet_aton(addr), "big") | ((1 << (32 - prefixlen)) - 1)
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def _addr_msg(index: int, family: int, addr: str, prefixlen: int) -> Any:
    msg = ifaddrmsg()
    msg["family"] = family
    msg["prefixlen"] = prefixlen
    msg["index"] = index
    msg["attrs"] = [("IFA_LOCAL", addr), ("IFA_ADDRESS", addr)]
    return msg


class AddressWriteOps(OpsBase):
    def add_address(
        self,
        link: LinkRef,
        address: Any,
        *,
        nodad: bool = False,
        noprefixroute: bool = False,
        broadcast: bool = True,
        exist_ok: bool = False,
    ) -> None:
        """Add ``address`` ('10.0.0.2/24', 'fd00::2/64') to ``link``.  IPv4
        gets the broadcast address of its prefix (unless /31, /32 or
        ``broadcast=False``); ``nodad`` skips IPv6 duplicate address
        detection.  An existing address is EEXIST unless ``exist_ok``."""
        family, addr, prefixlen = parse_cidr(address)
        msg = _addr_msg(self._ifindex(link), family, addr, prefixlen)
        flags = (IFA_F_NODAD if nodad else 0) | (IFA_F_NOPREFIXROUTE if noprefixroute else 0)
        if flags:
            msg["flags"] = flags & 0xFF
            msg["attrs"].append(("IFA_FLAGS", flags))
        if family == AF_INET and broadcast:
            brd = _broadcast(addr, prefixlen)
            if brd:
                msg["attrs"].append(("IFA_BROADCAST", brd))
        self._submit(
            RtnlRequest(
                RTM_NEWADDR,
                NLM_F_CREATE | NLM_F_EXCL,
                msg,
                f"add address {addr}/{prefixlen} to {describe(link)}",
                frozenset({EEXIST}) if exist_ok else frozenset(),
            )
        )

    def del_address(self, link: LinkRef, address: Any, *, missing_ok: bool = False) -> None:
        family, addr, prefixlen = parse_cidr(address)
        msg = _addr_msg(self._ifindex(link), family, addr, prefixlen)
        self._submit(
            RtnlRequest(
                RTM_DELADDR,
                0,
                msg,
                f"delete address {addr}/{prefixlen} from {describe(link)}",
                frozenset({EADDRNOTAVAIL}) if missing_ok else frozenset(),
            )
        )


class AddressOps(AddressWriteOps):
    def list_addresses(self, link: LinkRef | None = None, family: int = 0) -> list[Address]:
        """Addresses (of ``link`` if given; of ``family`` AF_INET/AF_INET6 if given)."""
        index = self._ifindex(link) if link is not None else None
        msg = ifaddrmsg()
        msg["family"] = family
        request = RtnlRequest(RTM_GETADDR, 0, msg, "list addresses")
        if index is not None:
            # one link's addresses, selected by the kernel: a host bridge's
            # do not cost a dump of every veth's link-local address
            msg["index"] = index
        found = []
        for reply in self._rtnl.dump(request, filtered=index is not None):
            if index is not None and reply["index"] != index:
                continue
            get = reply.get_attr
            found.append(
                Address(
                    index=reply["index"],
                    family=reply["family"],
                    address=get("IFA_LOCAL") or get("IFA_ADDRESS"),
                    prefixlen=reply["prefixlen"],
                    scope=reply["scope"],
                    flags=get("IFA_FLAGS") or reply["flags"],
                    broadcast=get("IFA_BROADCAST"),
                    label=get("IFA_LABEL"),
                )
            )
        return found

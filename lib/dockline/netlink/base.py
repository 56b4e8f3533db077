"""What every operation mixin stands on: a socket, a way to submit
requests (now, or later as part of a batch), and link-name resolution."""

from errno import ENODEV
from typing import Any, NamedTuple

from ._pyroute2 import ifinfmsg
from .errors import NetlinkError
from .rtnl import RTM_GETLINK, Result, RtnlRequest, RtnlSocket

IFF_UP = 0x1
IFF_PROMISC = 0x100
IFLA_EXT_MASK_SKIP_STATS = 1 << 3  # RTEXT_FILTER_SKIP_STATS


class Link(NamedTuple):
    """A network interface as the kernel reports it."""

    # the kernel's name for the field; it shadows tuple.index, unused here
    index: int  # type: ignore[assignment]
    name: str
    kind: str | None  # 'bridge', 'veth', ... (None: no rtnl_link_ops, e.g. lo)
    mac: str | None  # 'aa:bb:cc:dd:ee:ff'
    mtu: int
    flags: int  # IFF_* bits
    operstate: str  # as ip(8) shows it: 'UP', 'DOWN', 'UNKNOWN', 'LOWERLAYERDOWN', ...
    master: int | None  # ifindex of the master (bridge), if enslaved
    link: int | None  # IFLA_LINK: for a veth, the peer's ifindex (in the peer's netns)
    link_netnsid: int | None  # set when IFLA_LINK refers to another netns

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


LinkRef = Link | int | str
"""A link given as a Link, an ifindex, or an interface name."""


def link_from_msg(msg: Any) -> Link:
    get = msg.get_attr
    info = get("IFLA_LINKINFO")
    return Link(
        index=msg["index"],
        name=get("IFLA_IFNAME"),
        kind=info.get_attr("IFLA_INFO_KIND") if info is not None else None,
        mac=get("IFLA_ADDRESS"),
        mtu=get("IFLA_MTU"),
        flags=msg["flags"],
        operstate=get("IFLA_OPERSTATE") or "UNKNOWN",
        master=get("IFLA_MASTER"),
        link=get("IFLA_LINK"),
        link_netnsid=get("IFLA_LINK_NETNSID"),
    )


def link_msg(ref: LinkRef, *, family: int = 0) -> Any:
    """An ifinfmsg addressing ``ref`` by index or (index 0 +) IFLA_IFNAME."""
    msg = ifinfmsg()
    msg["family"] = family
    if isinstance(ref, str):
        msg["index"] = 0
        msg["attrs"] = [("IFLA_IFNAME", ref)]
    else:
        msg["index"] = ref if isinstance(ref, int) else ref.index
        msg["attrs"] = []
    return msg


def describe(ref: LinkRef) -> str:
    if isinstance(ref, Link):
        return ref.name
    return str(ref) if isinstance(ref, str) else f"ifindex {ref}"


def get_link_request(ref: LinkRef) -> RtnlRequest:
    msg = link_msg(ref)
    msg["attrs"].append(("IFLA_EXT_MASK", IFLA_EXT_MASK_SKIP_STATS))
    return RtnlRequest(RTM_GETLINK, 0, msg, f"get link {describe(ref)}", frozenset({ENODEV}))


def link_from_result(result: Result) -> Link | None:
    return link_from_msg(result.replies[0]) if result.replies else None


class OpsBase:
    """Shared plumbing of Netns (runs each operation now) and Batch (queues
    them for one sendmsg)."""

    _rtnl: RtnlSocket

    def _submit(self, request: RtnlRequest) -> None:
        raise NotImplementedError

    def _ifindex(self, ref: LinkRef) -> int:
        """ifindex of ``ref``; a name costs one lookup round trip."""
        if isinstance(ref, Link):
            return ref.index
        if isinstance(ref, int):
            return ref
        result = self._rtnl.execute([get_link_request(ref)])[0]
        if not result.replies:
            raise NetlinkError(ENODEV, f"link {ref!r} not found")
        index: int = result.replies[0]["index"]
        return index

"""Routes."""

from errno import EEXIST, EINVAL, ESRCH
from typing import Any, NamedTuple

from ._pyroute2 import rtmsg
from .addrs import AF_INET, AF_INET6, parse_cidr
from .base import LinkRef, OpsBase, describe
from .errors import NetlinkError
from .rtnl import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    RTM_DELROUTE,
    RTM_GETROUTE,
    RTM_NEWROUTE,
    RtnlRequest,
)

__all__ = ["Route", "RouteOps", "RouteWriteOps"]

RT_TABLE_UNSPEC, RT_TABLE_MAIN = 0, 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RTN_UNICAST = 1
RTNH_F_ONLINK = 4


class Route(NamedTuple):
    family: int
    dst: str  # always a CIDR: '0.0.0.0/0' for the default route
    gateway: str | None
    oif: int | None  # output ifindex
    table: int
    metric: int | None  # RTA_PRIORITY
    scope: int
    proto: int
    type: int
    prefsrc: str | None
    mtu: int | None
    advmss: int | None


def _route_msg(dst: str, gateway: Any, table: int | None) -> Any:
    """An rtmsg with family, destination and table filled in."""
    if dst == "default":
        family = parse_cidr(gateway)[0] if gateway is not None else AF_INET
        addr, prefixlen = None, 0
    else:
        family, addr, prefixlen = parse_cidr(dst)
    msg = rtmsg()
    msg["family"] = family
    msg["dst_len"] = prefixlen
    table = RT_TABLE_MAIN if table is None else table
    msg["table"] = table if table < 256 else RT_TABLE_UNSPEC
    msg["attrs"] = [("RTA_TABLE", table)]
    if prefixlen:
        msg["attrs"].append(("RTA_DST", addr))
    if gateway is not None:
        gw_family, gw, _ = parse_cidr(gateway)
        if gw_family != family:
            raise NetlinkError(EINVAL, f"gateway {gateway} is not of the family of {dst}")
        msg["attrs"].append(("RTA_GATEWAY", gw))
    return msg


def _describe(dst: str, gateway: Any, link: LinkRef | None) -> str:
    text = f"route {dst}"
    if gateway is not None:
        text += f" via {gateway}"
    if link is not None:
        text += f" dev {describe(link)}"
    return text


class RouteWriteOps(OpsBase):
    def add_route(
        self,
        dst: Any,
        *,
        gateway: Any = None,
        link: LinkRef | None = None,
        metric: int | None = None,
        table: int | None = None,
        scope: int | None = None,
        proto: int = RTPROT_BOOT,
        src: Any = None,
        mtu: int | None = None,
        advmss: int | None = None,
        onlink: bool = False,
        exist_ok: bool = False,
        replace: bool = False,
    ) -> None:
        """``ip route add DST [via GATEWAY] [dev LINK] [metric M] [table T]
        [scope S] [src SRC] [mtu MTU] [advmss N] [onlink]``.

        ``dst`` is a CIDR or 'default' (family taken from the gateway).  As
        with ip(8), an IPv4 route without gateway gets scope link unless
        ``scope`` says otherwise.  ``replace`` makes it ``ip route replace``;
        an existing route is EEXIST unless ``exist_ok``.
        """
        dst = str(dst)
        msg = _route_msg(dst, gateway, table)
        if scope is None:
            scope = (
                RT_SCOPE_LINK if gateway is None and msg["family"] == AF_INET else RT_SCOPE_UNIVERSE
            )
        msg["proto"] = proto
        msg["scope"] = scope
        msg["type"] = RTN_UNICAST
        msg["flags"] = RTNH_F_ONLINK if onlink else 0
        attrs = msg["attrs"]
        if link is not None:
            attrs.append(("RTA_OIF", self._ifindex(link)))
        if metric is not None:
            attrs.append(("RTA_PRIORITY", metric))
        if src is not None:
            attrs.append(("RTA_PREFSRC", parse_cidr(src)[1]))
        metrics = [(k, v) for k, v in (("RTAX_MTU", mtu), ("RTAX_ADVMSS", advmss)) if v is not None]
        if metrics:
            attrs.append(("RTA_METRICS", {"attrs": metrics}))
        flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
        self._submit(
            RtnlRequest(
                RTM_NEWROUTE,
                flags,
                msg,
                "add " + _describe(dst, gateway, link),
                frozenset({EEXIST}) if exist_ok else frozenset(),
            )
        )

    def del_route(
        self,
        dst: Any,
        *,
        gateway: Any = None,
        link: LinkRef | None = None,
        metric: int | None = None,
        table: int | None = None,
        missing_ok: bool = False,
    ) -> None:
        """``ip route del DST [via GATEWAY] [dev LINK] [metric M] [table T]``:
        deletes the first route matching all that is given.  A missing route
        is ESRCH unless ``missing_ok``."""
        dst = str(dst)
        msg = _route_msg(dst, gateway, table)
        msg["scope"] = RT_SCOPE_NOWHERE  # match any scope
        if link is not None:
            msg["attrs"].append(("RTA_OIF", self._ifindex(link)))
        if metric is not None:
            msg["attrs"].append(("RTA_PRIORITY", metric))
        self._submit(
            RtnlRequest(
                RTM_DELROUTE,
                0,
                msg,
                "delete " + _describe(dst, gateway, link),
                frozenset({ESRCH}) if missing_ok else frozenset(),
            )
        )


class RouteOps(RouteWriteOps):
    def list_routes(
        self, link: LinkRef | None = None, family: int = 0, table: int | None = RT_TABLE_MAIN
    ) -> list[Route]:
        """Routes of ``table`` (main by default, None: all tables), through
        ``link`` if given, of ``family`` if given."""
        index = self._ifindex(link) if link is not None else None
        msg = rtmsg()
        msg["family"] = family
        # the kernel selects the table and the link (strict dump filters)
        attrs: list[tuple[str, int]] = []
        if table is not None:
            attrs.append(("RTA_TABLE", table))
        if index is not None:
            attrs.append(("RTA_OIF", index))
        routes = []
        if attrs:
            msg["attrs"] = attrs
            replies = self._rtnl.dump(
                RtnlRequest(RTM_GETROUTE, 0, msg, "list routes"), filtered=True
            )
        else:
            replies = self._rtnl.dump(RtnlRequest(RTM_GETROUTE, 0, msg, "list routes"))
        for reply in replies:
            get = reply.get_attr
            route_table = get("RTA_TABLE") or reply["table"]
            if table is not None and route_table != table:
                continue
            oif = get("RTA_OIF")
            if index is not None and oif != index:
                continue
            fam = reply["family"]
            dst = get("RTA_DST") or ("::" if fam == AF_INET6 else "0.0.0.0")
            metrics = get("RTA_METRICS")
            routes.append(
                Route(
                    family=fam,
                    dst=f"{dst}/{reply['dst_len']}",
                    gateway=get("RTA_GATEWAY"),
                    oif=oif,
                    table=route_table,
                    metric=get("RTA_PRIORITY"),
                    scope=reply["scope"],
                    proto=reply["proto"],
                    type=reply["type"],
                    prefsrc=get("RTA_PREFSRC"),
                    mtu=metrics.get_attr("RTAX_MTU") if metrics is not None else None,
                    advmss=metrics.get_attr("RTAX_ADVMSS") if metrics is not None else None,
                )
            )
        return routes

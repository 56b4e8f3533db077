"""Netlink helpers for CNI plugins (the analogue of the reference plugins'
pkg/ns, pkg/ip and pkg/link), on pyroute2's message classes and one small
synchronous rtnetlink socket per network namespace.

    from dockline.netlink import current_netns, open_netns, NetlinkError

    with current_netns() as host, open_netns(cni_netns) as ns:
        bridge = host.ensure_bridge("cni0", mtu=1500)
        eth0, veth = ns.add_veth("eth0", peer_ns=host, mtu=1500)
        host.set_master(veth, bridge)
        host.link_up(veth)
        ns.add_address(eth0, "10.22.0.5/16")
        ns.link_up(eth0)
        ns.add_route("default", gateway="10.22.0.1", link=eth0)

Every failure is a NetlinkError (an OSError: ``.errno`` and ``.message``);
NetnsError, its subclass, is about the namespace path itself.

Names are imported on first use, so importing this package is free; the
first use of a netlink name loads pyroute2's message classes (~20 ms, see
bench/netlink_startup.md), while NetlinkError and the sysctl helpers do not.
"""

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
_EXPORTS = {
    "NetlinkError": "errors",
    "NetnsError": "errors",
    "sysctl_get": "sysctl",
    "sysctl_set": "sysctl",
    "sysctl_path": "sysctl",
    "Link": "base",
    "LinkRef": "base",
    "Address": "addrs",
    "parse_cidr": "addrs",
    "Route": "routes",
    "Netns": "netns",
    "Batch": "netns",
    "open_netns": "netns",
    "current_netns": "netns",
    "check_netns": "netns",
    "RtnlSocket": "rtnl",
    "RtnlRequest": "rtnl",
}

__all__ = [  # literal, so linters and type checkers see the re-exports
    "Address",
    "Batch",
    "Link",
    "LinkRef",
    "NetlinkError",
    "Netns",
    "NetnsError",
    "Route",
    "RtnlRequest",
    "RtnlSocket",
    "check_netns",
    "current_netns",
    "open_netns",
    "parse_cidr",
    "sysctl_get",
    "sysctl_path",
    "sysctl_set",
]

if TYPE_CHECKING:
    from .addrs import Address, parse_cidr
    from .base import Link, LinkRef
    from .errors import NetlinkError, NetnsError
    from .netns import Batch, Netns, check_netns, current_netns, open_netns
    from .routes import Route
    from .rtnl import RtnlRequest, RtnlSocket
    from .sysctl import sysctl_get, sysctl_path, sysctl_set


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

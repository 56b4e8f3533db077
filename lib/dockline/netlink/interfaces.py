"""Links: lookup, bridges, veth pairs, up/down/master, bridge port flags and
bridge VLAN entries."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from errno import EEXIST, EINVAL, ENODEV, ENOENT

from . import devconf
from ._pyroute2 import ifinfmsg
from .base import (
    IFF_PROMISC,
    IFF_UP,
    IFLA_EXT_MASK_SKIP_STATS,
    Link,
    LinkRef,
    OpsBase,
    describe,
    get_link_request,
    link_from_msg,
    link_from_result,
    link_msg,
)
from .devconf import set_ipv4_conf_request
from .errors import NetlinkError
from .rtnl import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWLINK,
    RTM_SETLINK,
    RtnlRequest,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from .netns import Netns

    T = TypeVar("T")

__all__ = ["Link", "LinkOps", "LinkRef", "LinkWriteOps"]

AF_BRIDGE = 7
NLA_F_NESTED = 0x8000
RTEXT_FILTER_BRVLAN = 1 << 1
BRIDGE_FLAGS_SELF = 2
BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED = 0x2, 0x4
VETH_NAME_TRIES = 16


def random_mac() -> str:
    """A random unicast, locally administered MAC (like eth_random_addr)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def _optional(**attrs: T | None) -> list[tuple[str, T]]:
    """NLA list of the given attributes that are not None."""
    return [(name, value) for name, value in attrs.items() if value is not None]


def _set_flags(msg: Any, flags: int, change: int) -> None:
    msg["flags"] = flags
    msg["change"] = change


class LinkWriteOps(OpsBase):
    """Link changes that can also be queued in a Batch."""

    def set_link(
        self,
        link: LinkRef,
        *,
        up: bool | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        master: LinkRef | None = None,
        promisc: bool | None = None,
        name: str | None = None,
    ) -> None:
        """Change several properties of ``link`` in one request.
        ``master=0`` releases the link from its master; ``name`` renames."""
        if name is not None and isinstance(link, str):
            link = self._ifindex(link)
        msg = link_msg(link)
        flags = change = 0
        if up is not None:
            change |= IFF_UP
            flags |= IFF_UP if up else 0
        if promisc is not None:
            change |= IFF_PROMISC
            flags |= IFF_PROMISC if promisc else 0
        _set_flags(msg, flags, change)
        if master is not None and master != 0:
            master = self._ifindex(master)
        msg["attrs"] += _optional(
            IFLA_IFNAME=name, IFLA_MTU=mtu, IFLA_ADDRESS=mac, IFLA_MASTER=master
        )
        self._submit(RtnlRequest(RTM_SETLINK, 0, msg, f"set link {describe(link)}"))

    def set_ipv4_conf(self, link: LinkRef, **values: int) -> None:
        """IPv4 settings of ``link`` (``arp_notify=1``), as the sysctls under
        /proc/sys/net/ipv4/conf/LINK would set them; over netlink, so no
        /proc/sys path is looked up (devconf module docstring)."""
        index = self._ifindex(link)
        self._submit(set_ipv4_conf_request(index, values, f"set IPv4 settings of {describe(link)}"))

    def link_up(self, link: LinkRef) -> None:
        self.set_link(link, up=True)

    def link_down(self, link: LinkRef) -> None:
        self.set_link(link, up=False)

    def set_master(self, link: LinkRef, master: LinkRef) -> None:
        """Enslave ``link`` to ``master`` (a bridge); ``master=0`` releases it."""
        self.set_link(link, master=master)

    def set_promisc(self, link: LinkRef, on: bool = True) -> None:
        self.set_link(link, promisc=on)

    def delete_link(self, link: LinkRef, *, missing_ok: bool = True) -> None:
        """Delete ``link`` (for a veth: the pair).  A missing link is fine
        unless ``missing_ok`` is false."""
        tolerate = frozenset({ENODEV}) if missing_ok else frozenset()
        self._submit(
            RtnlRequest(RTM_DELLINK, 0, link_msg(link), f"delete link {describe(link)}", tolerate)
        )

    def set_bridge_port(
        self,
        link: LinkRef,
        *,
        hairpin: bool | None = None,
        isolated: bool | None = None,
        learning: bool | None = None,
    ) -> None:
        """Bridge port flags of ``link`` (enslaved to a bridge), as
        ``bridge link set dev X hairpin on isolated on learning off``."""
        attrs = [
            (name, int(value))
            for name, value in _optional(
                IFLA_BRPORT_MODE=hairpin,
                IFLA_BRPORT_ISOLATED=isolated,
                IFLA_BRPORT_LEARNING=learning,
            )
        ]
        if not attrs:
            return
        msg = link_msg(self._ifindex(link), family=AF_BRIDGE)
        msg["attrs"].append(("IFLA_PROTINFO", {"attrs": attrs}, NLA_F_NESTED))
        self._submit(RtnlRequest(RTM_SETLINK, 0, msg, f"set bridge port flags of {describe(link)}"))

    def bridge_vlan_add(
        self,
        link: LinkRef,
        vids: int | Iterable[int],
        *,
        pvid: bool = False,
        untagged: bool = False,
        bridge_self: bool = False,
    ) -> None:
        """``bridge vlan add dev LINK vid V [pvid] [untagged] [self]``; several
        vids go in one request.  ``bridge_self`` targets the bridge device's
        own entry (``link`` is then the bridge)."""
        flags = (BRIDGE_VLAN_INFO_PVID if pvid else 0) | (
            BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0
        )
        self._submit(
            self._vlan_request(RTM_SETLINK, link, vids, flags, bridge_self, "add vlan", frozenset())
        )

    def bridge_vlan_del(
        self,
        link: LinkRef,
        vids: int | Iterable[int],
        *,
        bridge_self: bool = False,
        missing_ok: bool = True,
    ) -> None:
        """``bridge vlan del dev LINK vid V [self]`` (e.g. vid 1, the default)."""
        tolerate = frozenset({ENOENT}) if missing_ok else frozenset()
        self._submit(
            self._vlan_request(RTM_DELLINK, link, vids, 0, bridge_self, "delete vlan", tolerate)
        )

    def _vlan_request(
        self,
        msg_type: int,
        link: LinkRef,
        vids: int | Iterable[int],
        flags: int,
        bridge_self: bool,
        verb: str,
        tolerate: frozenset[int],
    ) -> RtnlRequest:
        vids = [vids] if isinstance(vids, int) else list(vids)
        spec: list[tuple[str, object]] = (
            [("IFLA_BRIDGE_FLAGS", BRIDGE_FLAGS_SELF)] if bridge_self else []
        )
        spec += [("IFLA_BRIDGE_VLAN_INFO", {"flags": flags, "vid": vid}) for vid in vids]
        msg = link_msg(self._ifindex(link), family=AF_BRIDGE)
        msg["attrs"].append(("IFLA_AF_SPEC", {"attrs": spec}, NLA_F_NESTED))
        return RtnlRequest(msg_type, 0, msg, f"{verb} {vids} on {describe(link)}", tolerate)


class LinkOps(LinkWriteOps):
    """Link reads and multi-step operations (not batchable)."""

    # provided by Netns, the one class that mixes this in
    fd: int  # of the netns
    sysctl_set: Callable[[str, str | int], None]

    def get_link(self, link: LinkRef) -> Link | None:
        """The link ``link`` (name or ifindex), or None if there is none."""
        return link_from_result(self._rtnl.execute([get_link_request(link)])[0])

    def ipv6_conf(self, link: LinkRef) -> dict[str, int] | None:
        """Some IPv6 settings of ``link`` (devconf.DEVCONF_IPV6), read over
        netlink; None when it has no IPv6."""
        return devconf.ipv6_conf(self._rtnl, self._ifindex(link))

    def forwarding(self, family: int) -> int | None:
        """This netns's forwarding setting for ``family`` (AF_INET: ip_forward;
        AF_INET6: conf/all/forwarding), or None when netlink cannot tell."""
        return devconf.forwarding(self._rtnl, family)

    def list_links(self) -> list[Link]:
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_EXT_MASK", IFLA_EXT_MASK_SKIP_STATS)]
        return [
            link_from_msg(m)
            for m in self._rtnl.dump(RtnlRequest(RTM_GETLINK, 0, msg, "list links"))
        ]

    def veth_peer_index(self, link: LinkRef) -> int:
        """ifindex of the other end of veth ``link`` (in the peer's netns)."""
        found = self.get_link(link)
        if found is None:
            raise NetlinkError(ENODEV, f"link {describe(link)} not found")
        if found.kind != "veth" or not found.link:
            raise NetlinkError(EINVAL, f"link {found.name} is not a veth (kind {found.kind})")
        return found.link

    def ensure_bridge(
        self, name: str, *, mtu: int | None = None, vlan_filtering: bool | None = None
    ) -> Link:
        """The bridge ``name``, up, with a pinned MAC; created if missing.

        Safe against concurrent creators: the bridge is created up, with
        its MAC set (so pinned) and options, in a single request; whoever
        loses the race sees EEXIST and adopts the bridge.  An existing
        bridge is set up and its current MAC pinned (so it no longer follows
        the lowest port MAC); its MTU is left alone.  A non-bridge link of
        that name is an error (EEXIST).
        """
        for _ in range(3):
            # Created down: IPv6 DAD is turned off before it comes up, or its
            # link-local address stays tentative for ~2 s and neighbour
            # discovery towards the first containers waits for it.
            create = link_msg(name)
            create["attrs"] += _optional(IFLA_MTU=mtu) + [
                ("IFLA_ADDRESS", random_mac()),
                _bridge_linkinfo(vlan_filtering),
            ]
            created, got = self._rtnl.execute(
                [
                    RtnlRequest(
                        RTM_NEWLINK,
                        NLM_F_CREATE | NLM_F_EXCL,
                        create,
                        f"create bridge {name}",
                        frozenset({EEXIST}),
                    ),
                    get_link_request(name),
                ]
            )
            if not got.replies:
                continue  # deleted again by someone else in between: retry
            msg = got.replies[0]
            link = link_from_msg(msg)
            if link.kind != "bridge":
                raise NetlinkError(
                    EEXIST,
                    f"link {name!r} already exists and is not a bridge "
                    f"(kind {link.kind or 'device'})",
                )
            if not created.error:
                self._no_dad_then_up(link)
                return (
                    link_from_result(self._rtnl.execute([get_link_request(link.index)])[0]) or link
                )
            # It existed (or a concurrent creator won): set it up, pin its MAC.
            update = link_msg(link.index)
            _set_flags(update, IFF_UP, IFF_UP)
            update["attrs"].append(("IFLA_ADDRESS", link.mac))
            if vlan_filtering is not None and _bridge_vlan_filtering(msg) != bool(vlan_filtering):
                update["attrs"].append(_bridge_linkinfo(vlan_filtering))
            _, got = self._rtnl.execute(
                [
                    RtnlRequest(RTM_NEWLINK, 0, update, f"set up bridge {name}"),
                    get_link_request(link.index),
                ]
            )
            return link_from_result(got) or link
        raise NetlinkError(EEXIST, f"bridge {name!r} keeps disappearing while being created")

    def _no_dad_then_up(self, link: Link) -> None:
        conf = f"net/ipv6/conf/{link.name}/accept_dad"
        if os.path.exists("/proc/sys/" + conf):
            try:
                self.sysctl_set(conf, 0)
            except OSError:
                pass  # IPv6 disabled or sysctl read-only: just slower
        up = link_msg(link.index)
        _set_flags(up, IFF_UP, IFF_UP)
        self._rtnl.execute([RtnlRequest(RTM_NEWLINK, 0, up, f"set up bridge {link.name}")])

    def add_veth(
        self,
        name: str,
        *,
        peer_ns: Netns | None = None,
        peer_name: str | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        peer_mac: str | None = None,
        up: bool = False,
        peer_up: bool = False,
        master: int | None = None,
    ) -> tuple[Link, Link]:
        """Create veth ``name`` here and its peer in ``peer_ns`` (default:
        here) with one request; returns (this end, peer end).

        Without ``peer_name`` the peer gets a free name ``veth<8 hex>``
        (retried on clashes).  A clash on ``name`` is EEXIST.  The kernel
        cannot bring the peer up while creating the pair, so ``peer_up``
        costs one more request (batched with reading the peer back).
        ``master`` enslaves this end in the same request: it is never
        seen, nor left behind by a killed caller, outside its bridge.
        """
        if peer_ns is self:
            peer_ns = None
        peer_fd = peer_ns.fd if peer_ns is not None else None
        run_in_peer_ns = peer_ns.execute if peer_ns is not None else self._rtnl.execute
        for _ in range(VETH_NAME_TRIES):
            pname = peer_name or "veth" + os.urandom(4).hex()
            peer = {
                "index": 0,
                "flags": 0,
                "change": 0,
                "attrs": _optional(
                    IFLA_IFNAME=pname,
                    IFLA_MTU=mtu,
                    IFLA_ADDRESS=peer_mac,
                    IFLA_NET_NS_FD=peer_fd,
                ),
            }
            msg = link_msg(name)
            _set_flags(msg, IFF_UP if up else 0, IFF_UP if up else 0)
            msg["attrs"] += _optional(IFLA_MTU=mtu, IFLA_ADDRESS=mac, IFLA_MASTER=master) + [
                (
                    "IFLA_LINKINFO",
                    {
                        "attrs": [
                            ("IFLA_INFO_KIND", "veth"),
                            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]}),
                        ]
                    },
                )
            ]
            created, got = self._rtnl.execute(
                [
                    RtnlRequest(
                        RTM_NEWLINK,
                        NLM_F_CREATE | NLM_F_EXCL,
                        msg,
                        f"create veth {name} (peer {pname})",
                        frozenset({EEXIST}),
                    ),
                    get_link_request(name),
                ]
            )
            if created.error == EEXIST:
                if got.replies:
                    raise NetlinkError(EEXIST, f"interface {name!r} already exists")
                if peer_name is not None:
                    raise NetlinkError(EEXIST, f"peer interface {peer_name!r} already exists")
                continue
            local = link_from_result(got)
            peer_requests = [get_link_request(pname)]
            if peer_up:
                up_msg = link_msg(pname)
                _set_flags(up_msg, IFF_UP, IFF_UP)
                peer_requests.insert(0, RtnlRequest(RTM_SETLINK, 0, up_msg, f"set {pname} up"))
            remote = link_from_result(run_in_peer_ns(peer_requests)[-1])
            if local is None or remote is None:
                raise NetlinkError(ENODEV, f"veth {name}/{pname} vanished right after creation")
            return local, remote
        raise NetlinkError(EEXIST, f"no free veth name found in {VETH_NAME_TRIES} tries")

    def bridge_vlans(self, link: LinkRef) -> list[tuple[int, int]]:
        """VLAN entries of bridge port (or bridge) ``link``: [(vid, flags)],
        flags being BRIDGE_VLAN_INFO_* bits (0x2 pvid, 0x4 untagged)."""
        index = self._ifindex(link)
        msg = ifinfmsg()
        msg["family"] = AF_BRIDGE
        msg["attrs"] = [("IFLA_EXT_MASK", RTEXT_FILTER_BRVLAN)]
        entries = []
        for reply in self._rtnl.dump(RtnlRequest(RTM_GETLINK, 0, msg, "list bridge vlans")):
            if reply["index"] != index:
                continue
            spec = reply.get_attr("IFLA_AF_SPEC")
            if spec is not None:
                entries += [(v["vid"], v["flags"]) for v in spec.get_attrs("IFLA_BRIDGE_VLAN_INFO")]
        return entries


def _bridge_linkinfo(vlan_filtering: bool | None) -> tuple[str, dict[str, object]]:
    # A new list every time: pyroute2 rewrites attribute lists while encoding.
    info: list[tuple[str, object]] = [("IFLA_INFO_KIND", "bridge")]
    if vlan_filtering is not None:
        info.append(
            ("IFLA_INFO_DATA", {"attrs": [("IFLA_BR_VLAN_FILTERING", int(vlan_filtering))]})
        )
    return ("IFLA_LINKINFO", {"attrs": info})


def _bridge_vlan_filtering(msg: Any) -> bool | None:
    info = msg.get_attr("IFLA_LINKINFO")
    data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
    value = data.get_attr("IFLA_BR_VLAN_FILTERING") if data is not None else None
    return None if value is None else bool(value)

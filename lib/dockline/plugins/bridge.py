"""bridge: a Linux bridge on the host and a veth pair per container.

A drop-in for the reference bridge plugin: same config, same kernel state,
same result.  ADD runs in named phases:

- validate: the whole request (config, IPAM's config, names and links)
  is checked before anything changes;
- interfaces: the bridge, the veth pair (container end CNI_IFNAME, host end
  named after the attachment) as a port of it, the RA guard;
- addresses: IPAM, then addresses, routes and sysctls in the container,
  and the gateway on the bridge;
- firewall: MAC spoof check, masquerade;
- names: Docker links and hosts files;
- result: the CNI result from the kernel's view of the interfaces.

Every step registers its undo, so a failure anywhere leaves nothing behind.
DEL and GC are best-effort step lists: every step runs, the first failure
is reported.
"""

from __future__ import annotations

import ipaddress
from errno import EEXIST, ENOENT, ENOTDIR

from dockline.bridge.config import BridgeConfig
from dockline.bridge.undo import UndoStack
from dockline.cni import delegate
from dockline.cni.attachment import HOST_VETH_PREFIX, Attachment, network_tag, valid_attachments
from dockline.cni.errors import (
    ALREADY_EXISTS,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    IO_FAILURE,
    KERNEL_REFUSED,
    STATE_MISSING,
    UNKNOWN_CONTAINER,
    CniError,
)
from dockline.cni.result import family
from dockline.cni.skel import CmdArgs
from dockline.cni.version import at_least
from dockline.firewall import masquerade, ra_guard, spoofcheck
from dockline.names import dockerlinks
from dockline.netlink.errors import NetlinkError  # no pyroute2 behind it

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _thread import LockType
    from collections.abc import Callable

    from dockline.cni.jsonio import JSONObject
    from dockline.cni.skel import Handler
    from dockline.netlink import Link, Netns, Route

    Network = ipaddress.IPv4Network | ipaddress.IPv6Network

IFF_PROMISC = 0x100  # <linux/if.h>
AF_INET, AF_INET6 = 2, 10  # <sys/socket.h>; the socket module costs ~3 ms to import


def _kernel_error(exc: OSError, what: str) -> CniError:
    if exc.errno == EEXIST:
        return CniError(ALREADY_EXISTS, what, str(exc))
    return CniError(KERNEL_REFUSED, what, str(exc))


class _BestEffort:
    """DEL and GC clean up as much as they can: every step runs, and the
    first failure (in the order the steps were given) is what the runtime
    hears."""

    def __init__(self) -> None:
        self.failures: list[CniError | None] = []
        self._started: list[tuple[LockType, list[BaseException], Callable[[], bool] | None]] = []

    def run(self, what: str, step: Callable[[], object]) -> None:
        self.failures.append(self._failure(what, step))

    def start(
        self, what: str, step: Callable[[], object], settled: Callable[[], bool] | None = None
    ) -> None:
        """Run ``step`` in a thread beside the steps that follow: it waits
        on the kernel (a veth's deletion waits for an RCU grace period and
        its references, 15-30 ms) while they work.  It must not take
        locks nor touch state the others change.  ``settled`` tells when
        the step's effect is there for all to see although its call has
        not returned: then finish() need not wait for the rest."""
        import _thread

        slot = len(self.failures)
        self.failures.append(None)
        done = _thread.allocate_lock()
        done.acquire()
        unexpected: list[BaseException] = []

        def body() -> None:
            try:
                self.failures[slot] = self._failure(what, step)
            except BaseException as exc:  # a bug: raised again by finish()
                unexpected.append(exc)
            finally:
                done.release()

        _thread.start_new_thread(body, ())
        self._started.append((done, unexpected, settled))

    def finish(self) -> None:
        """Wait for the started steps, each until it returned or its effect
        is settled.  A step left running finishes in this process (the
        kernel completes a call it has begun even if the process exits)."""
        for done, unexpected, settled in self._started:
            if settled is None:
                done.acquire()
            else:
                while not done.acquire(True, 0.001):
                    if settled():
                        break
            if unexpected:
                raise unexpected[0]
        self._started = []

    @staticmethod
    def _failure(what: str, step: Callable[[], object]) -> CniError | None:
        try:
            step()
        except CniError as err:
            return err
        except OSError as exc:
            return (
                _kernel_error(exc, what)
                if isinstance(exc, NetlinkError)
                else CniError(IO_FAILURE, what, str(exc))
            )
        return None

    def raise_first(self) -> None:
        self.finish()
        first = next((f for f in self.failures if f is not None), None)
        if first is not None:
            raise first


def _open_container(path: str) -> Netns:
    # The netlink layer is loaded only by commands that touch links (it
    # costs ~20 ms).
    import dockline.netlink as netlink

    try:
        return netlink.open_netns(path)
    except netlink.NetnsError as exc:
        raise CniError(
            UNKNOWN_CONTAINER, "cannot open the container's network namespace", str(exc)
        ) from None


# --- ADD ---------------------------------------------------------------------


def _gateways(conf: BridgeConfig, ipam_result: JSONObject) -> None:
    """With isGateway every IP gets a gateway (IPAM's, else the subnet's
    first address); isDefaultGateway adds the default routes."""
    for ip in ipam_result["ips"]:
        if not ip.get("gateway"):
            net = ipaddress.ip_interface(ip["address"]).network
            ip["gateway"] = str(net.network_address + 1)
    if conf.is_default_gateway:
        routes = ipam_result.setdefault("routes", [])
        for fam, default in (("4", "0.0.0.0/0"), ("6", "::/0")):
            ip = next((i for i in ipam_result["ips"] if family(i["address"]) == fam), None)
            if ip is None:
                continue
            if any(r["dst"] == default and r.get("gw") for r in routes):
                continue
            routes[:] = [r for r in routes if r["dst"] != default]
            routes.append({"dst": default, "gw": ip["gateway"]})


def _configure_container(
    conf: BridgeConfig, req: CmdArgs, ns: Netns, link: Link, ipam_result: JSONObject
) -> None:
    ips = ipam_result["ips"]
    # Another container on the bridge may send router advertisements (it
    # has CAP_NET_RAW): never take a default route or address from them
    # (CVE-2020-13401).  Set before the link comes up.
    _sysctl_if_present(ns, f"net/ipv6/conf/{req.ifname}/accept_ra", 0)
    if ips:
        if not any(family(i["address"]) == "6" for i in ips):
            # An IPv4-only network: no link-local or SLAAC address where
            # none was configured (CVE-2024-32473).
            _sysctl_if_present(ns, f"net/ipv6/conf/{req.ifname}/disable_ipv6", 1)
        # As the reference: with addresses, DAD off unless enabledad and
        # gratuitous ARP on, whatever the address families.
        dad = [("enhanced_dad", 1), ("accept_dad", 1)] if conf.enable_dad else [("accept_dad", 0)]
        for key, value in dad:
            _sysctl_if_present(ns, f"net/ipv6/conf/{req.ifname}/{key}", value)
    gateways = {family(i["address"]): i.get("gateway") for i in reversed(ips)}
    with ns.batch() as batch:
        if ips:  # before the link is up: the gratuitous ARP goes out with it
            batch.set_ipv4_conf(link, arp_notify=1)
        for ip in ips:
            batch.add_address(link, ip["address"], nodad=not conf.enable_dad)
        batch.set_link(link, up=True)
        for route in ipam_result.get("routes") or []:
            gw = route.get("gw") or gateways.get(family(route["dst"]))
            batch.add_route(
                route["dst"],
                gateway=gw,
                link=link,
                metric=route.get("priority"),
                table=route.get("table"),
                scope=route.get("scope"),
                mtu=route.get("mtu"),
                advmss=route.get("advmss"),
            )
    if conf.enable_dad and any(family(i["address"]) == "6" for i in ips):
        _settle_addresses(ns, link)


IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x08, 0x40  # <linux/if_addr.h>


def _settle_addresses(ns: Netns, link: Link, timeout: float = 5.0) -> None:
    """With enabledad, ADD answers once DAD is over (as the reference
    does): the addresses are usable when the container starts."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        addrs = [a for a in ns.list_addresses(link) if a.family == AF_INET6]
        failed = [a for a in addrs if a.flags & IFA_F_DADFAILED]
        if failed:
            raise CniError(
                ALREADY_EXISTS,
                "IPv6 duplicate address detection failed",
                ", ".join(a.address for a in failed),
            )
        if not any(a.flags & IFA_F_TENTATIVE for a in addrs):
            return
        if time.monotonic() > deadline:
            raise CniError(
                KERNEL_REFUSED,
                "IPv6 addresses still tentative after "
                f"{timeout:.0f} s of duplicate address detection",
            )
        time.sleep(0.05)


def _sysctl_if_present(ns: Netns, name: str, value: int) -> None:
    """Some sysctls do not exist (IPv6 disabled, ...): skip those, like the
    reference does."""
    try:
        ns.sysctl_set(name, value)
    except OSError as exc:
        if exc.errno not in (ENOENT, ENOTDIR):
            raise


def _ensure_gateway_addresses(
    conf: BridgeConfig, host: Netns, bridge: Link, ips: list[JSONObject]
) -> None:
    for ip in ips:
        net = ipaddress.ip_interface(ip["address"]).network
        gw = ipaddress.ip_interface(f"{ip['gateway']}/{net.prefixlen}")
        present = False
        # one family's dump: the kernel reads it without taking the rtnl lock
        for addr in host.list_addresses(bridge, AF_INET6 if gw.version == 6 else AF_INET):
            have = ipaddress.ip_interface(f"{addr.address}/{addr.prefixlen}")
            if have.version != gw.version or have.is_link_local:
                continue
            if have.version == 6 and not have.network.overlaps(gw.network):
                continue  # several IPv6 networks on a bridge are fine
            if have == gw:
                present = True
            elif conf.force_address:
                host.del_address(bridge, str(have), missing_ok=True)
            else:
                raise CniError(
                    INVALID_CONFIG,
                    f"{conf.bridge!r} already has an IP address different from {gw}",
                    f"it has {have}; set forceAddress to replace it",
                )
        if not present:
            host.add_address(bridge, str(gw), nodad=True, exist_ok=True)
        _ensure_forwarding(host, gw.version)


def _ensure_forwarding(host: Netns, version: int) -> None:
    """Forwarding on, as the reference turns it on; read over netlink first
    (netlink/devconf.py): its /proc/sys path costs more with every netns."""
    if version == 4:
        if host.forwarding(AF_INET) != 1:
            host.sysctl_set("net/ipv4/ip_forward", 1)
    elif host.forwarding(AF_INET6) != 1:
        host.sysctl_set("net/ipv6/conf/all/forwarding", 1)


def _setup_host_port(conf: BridgeConfig, host: Netns, veth: Link, bridge: Link) -> None:
    host.set_link(veth, master=bridge.index, up=True)
    if conf.hairpin or conf.port_isolation:
        host.set_bridge_port(
            veth, hairpin=conf.hairpin or None, isolated=conf.port_isolation or None
        )
    if conf.vlan or conf.vlan_trunk:
        with host.batch() as batch:
            if not conf.preserve_default_vlan:
                batch.bridge_vlan_del(veth, 1)
            if conf.vlan:
                batch.bridge_vlan_add(veth, conf.vlan, pvid=True, untagged=True)
            if conf.vlan_trunk:
                batch.bridge_vlan_add(veth, conf.vlan_trunk)


class _Add:
    """What ADD's phases share: the request, the namespaces, the undo
    stack, and what earlier phases made."""

    __slots__ = (
        "bridge",
        "conf",
        "container_if",
        "host",
        "host_if",
        "names",
        "ns",
        "req",
        "result",
        "undo",
    )
    # Set by the interfaces phase, for the phases after it.
    bridge: Link
    host_if: Link
    container_if: Link

    def __init__(
        self,
        conf: BridgeConfig,
        req: CmdArgs,
        host: Netns,
        ns: Netns,
        undo: UndoStack,
        names: dockerlinks.LinkPlan,
    ) -> None:
        self.conf, self.req, self.host, self.ns = conf, req, host, ns
        self.undo, self.names = undo, names
        self.result: JSONObject = {"ips": [], "routes": [], "dns": {}}


def _interfaces(add: _Add) -> None:
    """The bridge, and the veth pair created as a port of it."""
    conf, req, host, ns = add.conf, add.req, add.host, add.ns
    host_name = req.attachment.host_veth
    vlan_filtering = True if (conf.vlan or conf.vlan_trunk) else None
    add.bridge = host.ensure_bridge(
        conf.bridge, mtu=conf.mtu or None, vlan_filtering=vlan_filtering
    )
    # No RA taken from a container (ra_guard); already so on every ADD but
    # the bridge's first, which netlink tells without a /proc/sys lookup.
    ipv6 = host.ipv6_conf(add.bridge)
    if ipv6 is not None and ipv6.get("accept_ra") != 0:
        _sysctl_if_present(host, f"net/ipv6/conf/{conf.bridge}/accept_ra", 0)
    if conf.promisc:
        host.set_link(add.bridge, promisc=True)
    if ns.get_link(req.ifname) is not None:
        raise CniError(
            ALREADY_EXISTS, f"container interface {req.ifname!r} already exists", f"in {req.netns}"
        )
    try:
        # Created from the host end, already a port of the bridge: a veth
        # left by a killed ADD is always one GC finds there.
        add.host_if, add.container_if = host.add_veth(
            host_name,
            peer_ns=ns,
            peer_name=req.ifname,
            mtu=conf.mtu or None,
            peer_mac=conf.mac,
            master=add.bridge.index,
        )
    except NetlinkError as exc:
        if exc.errno == EEXIST and host.get_link(host_name) is not None:
            raise CniError(
                ALREADY_EXISTS,
                "this attachment already exists",
                f"host interface {host_name} is present: DEL it first",
            ) from None
        raise
    add.undo.push(f"delete veth {host_name}", lambda: host.delete_link(host_name))
    _setup_host_port(conf, host, add.host_if, add.bridge)
    ra_guard.ensure(HOST_VETH_PREFIX)  # constant, for every dockline port: no undo


def _addresses(add: _Add) -> None:
    """IPAM's addresses, configured in the container and (as gateways) on
    the bridge."""
    conf, req = add.conf, add.req
    if conf.ipam_type:
        add.undo.push(
            "release addresses (IPAM DEL)", lambda: delegate.run(req, conf.ipam_type, "DEL")
        )
        add.result = delegate.run(req, conf.ipam_type, "ADD") or add.result
        if not add.result.get("ips"):
            raise CniError(INVALID_CONFIG, "IPAM plugin returned missing IP config")
        if conf.is_gateway:
            _gateways(conf, add.result)
    if not conf.disable_container_interface:
        _configure_container(conf, req, add.ns, add.container_if, add.result)
    if conf.is_gateway and add.result["ips"]:
        _ensure_gateway_addresses(conf, add.host, add.bridge, add.result["ips"])


def _firewall(add: _Add) -> None:
    """The attachment's rules: MAC spoof check, masquerade."""
    conf, att, undo, ips = add.conf, add.req.attachment, add.undo, add.result["ips"]
    if conf.macspoofchk:
        undo.push("remove the MAC spoof check", lambda: spoofcheck.delete(att))
        mac = add.container_if.mac
        assert mac is not None  # the kernel gives every veth an address
        spoofcheck.add(att, add.host_if.name, mac)
    if conf.ip_masq and ips:
        backend = masquerade.choose_backend(conf.ip_masq_backend)
        undo.push("remove masquerade rules", lambda: masquerade.delete(backend, att))
        masquerade.add(backend, att, [(ip["address"], _subnet(ip["address"])) for ip in ips])
    if not conf.icc or conf.isolate:  # Docker's isolation: firewall.isolation
        from dockline.firewall import isolation

        undo.push("remove the isolation rules", lambda: isolation.delete_port(att))
        isolation.add_port(
            att,
            conf.bridge,
            add.host_if.name,
            ips,
            add.ns,
            add.container_if,
            icc=conf.icc,
            isolate=conf.isolate,
            allow=conf.isolate_except,
        )


def _names(add: _Add) -> None:
    """Docker links: the registry and the hosts files."""
    addresses = [ip["address"].split("/")[0] for ip in add.result["ips"]]
    access = None
    if not add.conf.icc:  # links are access (firewall.isolation)
        from dockline.firewall.isolation import LinkAccess

        access = LinkAccess(add.conf.bridge, add.conf.expose)
    dockerlinks.on_add(add.req, _data_dir(add.req), addresses, add.undo, add.names, access)


def _result(add: _Add) -> JSONObject:
    """The CNI result, with the interfaces as the kernel now sees them."""
    conf, req, result = add.conf, add.req, add.result
    bridge = add.host.get_link(add.bridge.index) or add.bridge
    container_if = add.ns.get_link(add.container_if.index) or add.container_if
    result["interfaces"] = [
        {"name": bridge.name, "mac": bridge.mac},
        {"name": add.host_if.name, "mac": add.host_if.mac},
        {
            "name": container_if.name,
            "mac": container_if.mac,
            "mtu": container_if.mtu,
            "sandbox": req.netns,
        },
    ]
    for ip in result["ips"]:
        ip["interface"] = 2
    if conf.dns is not None:
        result["dns"] = conf.dns
    return result


def _cluster_routes(add: _Add) -> None:
    """Cluster mode: routes to the other hosts' blocks (dockline.cluster)."""
    if add.req.config.get("cluster") is not None:
        from dockline.cluster import bridge as cluster_bridge

        cluster_bridge.add_routes(
            add.req.config, add.req.network, add.host, add.conf.bridge, add.result["ips"]
        )


ADD_PHASES = (_interfaces, _addresses, _cluster_routes, _firewall, _names)


def _data_dir(req: CmdArgs) -> str:
    """Where IPAM keeps its store; the link registry lives beside it (the
    default when the config names none; "" when it names an invalid one,
    which ADD has refused already)."""
    from dockline.ipam.config import data_dir_for_cleanup

    return data_dir_for_cleanup(req.config) or ""


def _subnet(address: str) -> str:
    return str(ipaddress.ip_interface(address).network)


def _validate(req: CmdArgs) -> tuple[BridgeConfig, dockerlinks.LinkPlan]:
    """The whole request, checked before anything is changed."""
    conf = BridgeConfig(req)
    if (not conf.ipam_type or conf.disable_container_interface) and not at_least(
        req.version, "0.3.0"
    ):
        raise CniError(
            INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            f"a result without addresses cannot be expressed in {req.version}",
        )
    if conf.ipam_type:
        delegate.validate_add(req, conf.ipam_type)
    names = dockerlinks.prepare(req, _data_dir(req))  # names, links, hostsFile
    dockerlinks.check_registry(req, names)  # names taken, link targets missing
    return conf, names


def cmd_add(req: CmdArgs) -> JSONObject:
    conf, names = _validate(req)
    import dockline.netlink as netlink

    undo = UndoStack()
    with netlink.current_netns() as host, _open_container(req.netns) as ns:
        add = _Add(conf, req, host, ns, undo, names)
        try:
            for phase in ADD_PHASES:
                phase(add)
            result = _result(add)
        except NetlinkError as exc:
            undo.unwind()
            raise _kernel_error(exc, "bridge: failed to set up the container network") from None
        except BaseException:
            undo.unwind()
            raise
    undo.discard()
    return result


# --- DEL ---------------------------------------------------------------------


def _delete_foreign_veth(host: Netns, req: CmdArgs, bridge_name: str) -> None:
    """A container attached by another bridge plugin (e.g. the reference's,
    with a random host name): delete its veth only if it really is a veth
    whose peer sits on our bridge; anything else was not made by a bridge
    plugin and is left alone."""
    import dockline.netlink as netlink

    try:
        ns = netlink.open_netns(req.netns)
    except netlink.NetnsError:
        return  # the namespace is gone, and with it the veth
    with ns:
        link = ns.get_link(req.ifname)
        # IFLA_LINK is an index in the *peer's* namespace; it only names a
        # host interface when the peer is in another namespace (netnsid
        # set) and that host interface names us back as its peer.
        if link is None or link.kind != "veth" or not link.link or link.link_netnsid is None:
            return
        bridge = host.get_link(bridge_name)
        peer = host.get_link(link.link)
        if (
            bridge is not None
            and peer is not None
            and peer.kind == "veth"
            and peer.master == bridge.index
            and peer.link == link.index
            and peer.link_netnsid is not None
        ):
            host.delete_link(peer.index)


def _delete_veth(req: CmdArgs, bridge_name: str | None, began: list[bool]) -> None:
    import dockline.netlink as netlink

    with netlink.current_netns() as host:
        host_name = req.attachment.host_veth
        if host.get_link(host_name) is not None:
            began.append(True)
            host.delete_link(host_name)
        elif req.netns and bridge_name:
            _delete_foreign_veth(host, req, bridge_name)


def _veth_unlisted(req: CmdArgs, began: list[bool]) -> Callable[[], bool]:
    """Whether the veth _delete_veth is deleting is gone from the host's
    links.  The kernel unlists a deleted pair within ~3 ms; the rest of
    the call (15-25 ms) waits for the devices' last references, which
    nobody can see or use any more: DEL need not wait for it."""

    def settled() -> bool:
        if not began:
            return False
        import dockline.netlink as netlink

        with netlink.current_netns() as host:
            return host.get_link(req.attachment.host_veth) is None

    return settled


def cmd_del(req: CmdArgs) -> None:
    try:
        conf: BridgeConfig | None = BridgeConfig(req, for_cleanup=True)
    except CniError as err:
        # DEL must succeed on a config it cannot read (a runtime retries a
        # failing DEL forever, leaking everything): find the attachment's
        # state by its names instead, and remove all of it.
        import sys

        sys.stderr.write(
            f"dockline bridge: DEL with an unreadable config ({err}): "
            "removing everything named after the attachment\n"
        )
        conf = None
    att = req.attachment
    cleanup = _BestEffort()
    ipam_type = conf.ipam_type if conf is not None else _lenient_ipam_type(req.config)
    if ipam_type:
        cleanup.run("IPAM DEL", lambda: delegate.run(req, ipam_type, "DEL"))
    bridge_name = conf.bridge if conf is not None else None
    # netlink only, no lock: the kernel's wait overlaps the steps below
    began: list[bool] = []
    cleanup.start(
        "bridge: failed to delete the veth",
        lambda: _delete_veth(req, bridge_name, began),
        _veth_unlisted(req, began),
    )
    if conf is None:
        # Either backend may hold its rules.
        cleanup.run("masquerade", lambda: masquerade.delete("iptables", att))
        cleanup.run("masquerade", lambda: masquerade.delete("nftables", att))
        cleanup.run("MAC spoof check", lambda: spoofcheck.delete(att))
    else:
        if conf.ip_masq:
            cleanup.run(
                "masquerade",
                lambda: masquerade.delete(masquerade.choose_backend(conf.ip_masq_backend), att),
            )
        if conf.macspoofchk:
            cleanup.run("MAC spoof check", lambda: spoofcheck.delete(att))
    cleanup.run("links: cleanup failed", lambda: dockerlinks.on_del(req, _data_dir(req)))
    from dockline.firewall import isolation

    cleanup.run("isolation", lambda: isolation.delete_port(att))
    cleanup.finish()
    if conf is None:
        return  # best effort on an unreadable config: nothing to report
    cleanup.raise_first()


def _lenient_ipam_type(config: JSONObject) -> str:
    ipam = config.get("ipam")
    value = ipam.get("type") if isinstance(ipam, dict) else None
    return value if isinstance(value, str) else ""


# --- CHECK -------------------------------------------------------------------


def _missing(what: str, details: str = "") -> CniError:
    return CniError(STATE_MISSING, f"bridge CHECK: {what}", details)


def cmd_check(req: CmdArgs) -> None:
    conf = BridgeConfig(req)
    prev = req.prev_result
    if prev is None:
        raise CniError(INVALID_CONFIG, "bridge CHECK: required prevResult missing")
    if conf.ipam_type:
        delegate.run(req, conf.ipam_type, "CHECK")
    import dockline.netlink as netlink

    with netlink.current_netns() as host, _open_container(req.netns) as ns:
        bridge = host.get_link(conf.bridge)
        if bridge is None or bridge.kind != "bridge":
            raise _missing(f"bridge {conf.bridge!r} is missing or not a bridge")
        if conf.promisc != bool(bridge.flags & IFF_PROMISC):
            raise _missing(
                f"bridge {conf.bridge!r}: promiscuous mode is "
                f"{'off' if conf.promisc else 'on'}, configured {'on' if conf.promisc else 'off'}"
            )
        bridge_entry = next(
            (
                i
                for i in prev.get("interfaces") or []
                if i.get("name") == conf.bridge and not i.get("sandbox")
            ),
            None,
        )
        if (
            bridge_entry
            and bridge_entry.get("mac")
            and bridge_entry["mac"].lower() != (bridge.mac or "")
        ):
            raise _missing(
                f"bridge {conf.bridge!r} has MAC {bridge.mac}, expected {bridge_entry['mac']}"
            )
        link = ns.get_link(req.ifname)
        if link is None or link.kind != "veth":
            raise _missing(f"container interface {req.ifname!r} is missing or not a veth")
        ifaces = prev.get("interfaces") or []
        mine = [
            i
            for i, iface in enumerate(ifaces)
            if iface.get("name") == req.ifname and iface.get("sandbox")
        ]
        expected_mac = ifaces[mine[0]].get("mac") if mine else None
        if expected_mac and expected_mac.lower() != (link.mac or ""):
            raise _missing(f"{req.ifname} has MAC {link.mac}, expected {expected_mac}")
        peer = host.get_link(link.link) if link.link else None
        if peer is None or peer.master != bridge.index:
            raise _missing(f"the host end of {req.ifname} is not a port of {conf.bridge!r}")
        have = {
            ipaddress.ip_interface(f"{a.address}/{a.prefixlen}") for a in ns.list_addresses(link)
        }
        for ip in prev.get("ips") or []:
            if mine and ip.get("interface") not in mine:
                continue
            if ipaddress.ip_interface(ip["address"]) not in have:
                raise _missing(f"address {ip['address']} is not on {req.ifname}")
        routes = ns.list_routes(link)
        for route in prev.get("routes") or []:
            dst = ipaddress.ip_network(route["dst"], strict=False)
            if not any(_route_matches(r, dst, route.get("gw")) for r in routes):
                raise _missing(f"route to {route['dst']} is missing in the container")
    if not ra_guard.check(HOST_VETH_PREFIX):
        raise _missing("the RA guard (table bridge dockline_guard) is missing")
    if conf.ip_masq and prev.get("ips"):
        missing = masquerade.check(
            masquerade.choose_backend(conf.ip_masq_backend),
            req.attachment,
            [(ip["address"], _subnet(ip["address"])) for ip in prev["ips"]],
        )
        if missing:
            raise _missing(f"masquerade: {missing}")
    dockerlinks.on_check(req, _data_dir(req))
    if not conf.icc or conf.isolate:
        from dockline.firewall import isolation

        isolation.check(req, _data_dir(req), conf)


def _route_matches(route: Route, dst: Network, gw: str | None) -> bool:
    have_dst = route.dst
    if have_dst in (None, "", "default"):
        have_dst = "0.0.0.0/0" if dst.version == 4 else "::/0"
    try:
        if ipaddress.ip_network(have_dst, strict=False) != dst:
            return False
    except ValueError:
        return False
    return gw is None or (
        route.gateway is not None
        and ipaddress.ip_address(route.gateway) == ipaddress.ip_address(gw)
    )


# --- GC and STATUS -----------------------------------------------------------


def _gc_veths(bridge_name: str, valid: set[Attachment]) -> None:
    import dockline.netlink as netlink

    keep = {a.host_veth for a in valid}
    with netlink.current_netns() as host:
        bridge = host.get_link(bridge_name)
        if bridge is None:
            return
        for link in host.list_links():
            if (
                link.master == bridge.index
                and link.kind == "veth"
                and link.name.startswith(HOST_VETH_PREFIX)
                and link.name not in keep
            ):
                host.delete_link(link.index)


def cmd_gc(req: CmdArgs) -> None:
    conf = BridgeConfig(req, for_cleanup=True)
    cleanup = _BestEffort()
    if conf.ipam_type:
        cleanup.run("IPAM GC", lambda: delegate.run(req, conf.ipam_type, "GC"))
    valid = valid_attachments(req.config, req.network)
    cleanup.run("bridge GC: failed to delete a stale veth", lambda: _gc_veths(conf.bridge, valid))
    if conf.ip_masq:
        cleanup.run(
            "masquerade GC",
            lambda: masquerade.gc(
                masquerade.choose_backend(conf.ip_masq_backend), req.network, valid
            ),
        )
    if conf.macspoofchk:
        cleanup.run("MAC spoof check GC", lambda: spoofcheck.gc(req.network, valid))
    cleanup.run("links: GC failed", lambda: dockerlinks.on_gc(req.network, _data_dir(req), valid))
    from dockline.firewall import isolation

    cleanup.run(
        "isolation GC",
        lambda: isolation.gc_ports(network_tag(req.network), {a.host_veth for a in valid}),
    )
    cleanup.raise_first()


def cmd_status(req: CmdArgs) -> None:
    conf = BridgeConfig(req)
    if conf.ipam_type:
        delegate.run(req, conf.ipam_type, "STATUS")


def _cluster_aware(handler: Handler) -> Handler:
    """Cluster mode (a ``cluster`` object in the config): the call runs with
    the name registry shared through etcd (dockline.cluster.bridge)."""

    def run(req: CmdArgs) -> JSONObject | None:
        if req.config.get("cluster") is None:
            return handler(req)
        from dockline.cluster import bridge as cluster_bridge

        result: JSONObject | None = cluster_bridge.run(handler, req, _data_dir(req))
        return result

    return run


# What dockline.launch (the executable) and the zygote serve.
HANDLERS = {
    name: _cluster_aware(handler)
    for name, handler in (
        ("ADD", cmd_add),
        ("DEL", cmd_del),
        ("CHECK", cmd_check),
        ("GC", cmd_gc),
        ("STATUS", cmd_status),
    )
}
ABOUT = "dockline bridge"

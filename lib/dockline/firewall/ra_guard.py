"""RA guard: IPv6 router advertisements (and redirects) sent by a
container are dropped where they enter the bridge.

Any container with CAP_NET_RAW (the default) can send a router
advertisement; every other container on the bridge that accepts RAs then
takes its prefix and default route (Docker's CVE-2020-13401).  bridge
turns accept_ra off in containers; this is the firewall half, for
containers that turn it back on and for the host.

nftables, table ``bridge dockline_guard``, chain ``prerouting`` (filter,
first): frames entering from a port in the set ``ports`` that carry ICMPv6
type 134 (router advertisement) or 137 (redirect) are dropped.  Keyed by
port rather than by bridge because ``meta ibrname`` needs a kernel module
(CONFIG_NFT_BRIDGE_META) that many kernels lack.  The host's own RAs on the
bridge (radvd on the bridge device) are not affected: they leave through
the output hook.  The kernel moves a VLAN tag into packet metadata before
the bridge sees the frame and the rule matches on ``meta protocol``, so a
single-tagged RA should be matched too (not tested: the test kernel has
no 802.1Q); an RA behind IPv6 extension headers is (tested).

``ensure`` is one ``nft -f`` transaction, idempotent by construction (the
chain is constant and rewritten whole; adding an element twice is no
error): no read of the ruleset.
"""
from __future__ import annotations

from .. import proc
from ..cni.errors import CniError
from . import FirewallError, nft_apply, tokens

TABLE = "bridge dockline_guard"
_ENOENT_TEXT = "No such file or directory"


def _base() -> list[str]:
    t = TABLE
    return [f"add table {t}",
            f"add set {t} ports {{ type ifname; }}",
            f"add chain {t} prerouting {{ type filter hook prerouting priority -300; policy accept; }}",
            f"flush chain {t} prerouting",
            # meta protocol, not the implicit ether type: with a VLAN tag
            # held in packet metadata, the ether type read from the frame
            # is 0x8100 and the rule would miss.  meta l4proto skips IPv6
            # extension headers (an RA behind a hop-by-hop header).
            f"add rule {t} prerouting iifname @ports meta protocol ip6 meta l4proto ipv6-icmp "
            "icmpv6 type { nd-router-advert, nd-redirect } drop"]


def ensure(port: str) -> None:
    """Drop RAs and redirects entering the bridge from ``port`` (the
    container's host-side veth).  Needs nft; without it nothing is done
    (the reference plugins have no such guard either)."""
    name = tokens.ifname(port, "bridge port name")
    if not proc.which("nft"):
        return
    nft_apply(_base() + [f'add element {TABLE} ports {{ "{name}" }}'], "installing the RA guard")


def remove(port: str) -> None:
    """Forget ``port`` (its veth is gone or going); absent is fine."""
    name = tokens.ifname(port, "bridge port name")
    if not proc.which("nft"):
        return
    try:
        nft_apply([f'delete element {TABLE} ports {{ "{name}" }}'], "removing the RA guard")
    except FirewallError as err:
        if _ENOENT_TEXT not in err.output:
            raise


def _existing_links() -> set[str]:
    """Interface names of the caller's network namespace (/proc/net/dev is
    per namespace; sysfs is not)."""
    with open("/proc/net/dev") as f:
        return {line.split(":", 1)[0].strip() for line in f.read().splitlines()[2:] if ":" in line}


def prune() -> None:
    """GC: forget the ports whose interface no longer exists (whatever
    network they belonged to).  The set is read before the interfaces, so
    a port being added (veth first, then ``ensure``) is never taken for
    a stale one."""
    if not proc.which("nft"):
        return
    from ..cni import jsonio
    result = proc.run(["nft", "-j", "list", "set", *TABLE.split(), "ports"])
    if result.returncode != 0:
        return
    listed = []
    for item in jsonio.loads(result.stdout).get("nftables", []):
        listed += [e for e in (item.get("set") or {}).get("elem") or [] if isinstance(e, str)]
    existing = _existing_links()
    names = []
    for elem in listed:
        if elem not in existing:
            try:
                names.append(tokens.ifname(elem))
            except CniError:
                continue  # not a name we could have added
    if names:
        quoted = ", ".join(f'"{n}"' for n in names)
        nft_apply([f"delete element {TABLE} ports {{ {quoted} }}"], "pruning the RA guard")

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
the bridge sees the frame, so a tagged RA is matched as well.

``ensure`` is one ``nft -f`` transaction, idempotent by construction (the
chain is constant and rewritten whole; adding an element twice is no
error): no read of the ruleset.
"""
from __future__ import annotations

from .. import proc
from . import FirewallError, nft_apply, tokens

TABLE = "bridge dockline_guard"
_ENOENT_TEXT = "No such file or directory"


def _base() -> list[str]:
    t = TABLE
    return [f"add table {t}",
            f"add set {t} ports {{ type ifname; }}",
            f"add chain {t} prerouting {{ type filter hook prerouting priority -300; policy accept; }}",
            f"flush chain {t} prerouting",
            f"add rule {t} prerouting iifname @ports icmpv6 type {{ nd-router-advert, nd-redirect }} drop"]


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


def prune(keep: set[str]) -> None:
    """GC: forget every port not in ``keep`` (one read of the set)."""
    if not proc.which("nft"):
        return
    from ..cni import jsonio
    result = proc.run(["nft", "-j", "list", "set", *TABLE.split(), "ports"])
    if result.returncode != 0:
        return
    names = []
    for item in jsonio.loads(result.stdout).get("nftables", []):
        for elem in (item.get("set") or {}).get("elem") or []:
            if isinstance(elem, str) and elem not in keep:
                try:
                    names.append(tokens.ifname(elem))
                except Exception:
                    continue  # not a name we could have added
    if names:
        nft_apply([f'delete element {TABLE} ports {{ {", ".join(chr(34) + n + chr(34) for n in names)} }}'],
                  "pruning the RA guard")

"""RA guard: IPv6 router advertisements (and redirects) sent by a
container are dropped where they enter the bridge.

Any container with CAP_NET_RAW (the default) can send a router
advertisement, even through a packet socket where IPv6 is off; every
other container on the bridge that accepts RAs then takes its prefix and
default route (Docker's CVE-2020-13401).  bridge turns accept_ra off in
containers; this is the firewall half, for containers that turn it back on
and for the host.

nftables, table ``bridge dockline_guard``, chain ``prerouting`` (filter,
first): frames entering from a port named with dockline's host-veth prefix
(``iifname "dl*"``) that carry ICMPv6 type 134 (router advertisement) or
137 (redirect) are dropped.  Keyed by the port's name because ``meta
ibrname`` needs a kernel module (CONFIG_NFT_BRIDGE_META) many kernels lack;
by its prefix rather than a set of ports, so the rule is constant: nothing
per container to add on ADD or remove on DEL and GC.  The host's own RAs
on the bridge (radvd on the bridge device) are not affected: they leave
through the output hook.  ``meta protocol`` rather than the frame's ether
type, so a VLAN tag held in packet metadata does not hide an RA (not
tested: the test kernel has no 802.1Q); ``meta l4proto`` skips extension
headers (an RA behind a hop-by-hop header is caught: tested).

``ensure`` asks the kernel over one netfilter netlink request whether the
table exists (~0.1 ms) and runs ``nft`` only when it does not (a first
ADD, or after someone deleted it); the install is one transaction,
idempotent by construction, so concurrent first ADDs leave one rule.
"""

from __future__ import annotations

from .. import proc
from . import nft_apply, tokens

TABLE = "bridge dockline_guard"


def _base(prefix: str) -> list[str]:
    t = TABLE
    return [
        f"add table {t}",
        f"add chain {t} prerouting {{ type filter hook prerouting priority -300; policy accept; }}",
        f"flush chain {t} prerouting",
        f'add rule {t} prerouting iifname "{prefix}*" meta protocol ip6 meta l4proto ipv6-icmp '
        "icmpv6 type { nd-router-advert, nd-redirect } drop",
    ]


def _table_exists() -> bool | None:
    """Whether the guard's table exists in this network namespace: one
    GETTABLE over the process's netfilter netlink socket (no process; a
    socket of its own would wait for nf_tables' deferred cleanup when it
    closes).  None when the kernel would not say (then the caller installs,
    which is idempotent)."""
    from . import nfnl

    try:
        return nfnl.get_table(nfnl.BRIDGE, TABLE.split()[1])
    except OSError:
        return None


def ensure(prefix: str) -> None:
    """Drop RAs and redirects entering a bridge from any port whose name
    starts with ``prefix`` (dockline's host veths).  Needs nft; without it
    nothing is done (the reference plugins have no such guard either)."""
    name = tokens.ifname(prefix + "x", "bridge port prefix")[:-1]
    if _table_exists() or not proc.which("nft"):
        return
    nft_apply(_base(name), "installing the RA guard")


def check(prefix: str) -> bool:
    """Whether the guard's rule is in place (for CHECK: reads the chain, as
    JSON, and looks for the rule by its structure)."""
    if not proc.which("nft"):
        return True
    listed = proc.run(["nft", "-j", "list", "chain", *TABLE.split(), "prerouting"])
    if listed.returncode != 0:
        return False
    from ..cni import jsonio

    try:
        items = jsonio.loads(listed.stdout).get("nftables", [])
    except (ValueError, AttributeError):
        return False
    for item in items:
        exprs = (item.get("rule") or {}).get("expr") or [] if isinstance(item, dict) else []
        port = any(
            (e.get("match") or {}).get("left") == {"meta": {"key": "iifname"}}
            and (e.get("match") or {}).get("right") == prefix + "*"
            for e in exprs
            if isinstance(e, dict)
        )
        if port and any(isinstance(e, dict) and "drop" in e for e in exprs):
            return True
    return False

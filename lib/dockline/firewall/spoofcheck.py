"""MAC spoof check for bridge ``macspoofchk``: frames entering the bridge
from a container's port must carry the container's MAC.

nftables, table ``bridge dockline_spoofchk``, chain ``prerouting``
(filter, before everything else), one rule per attachment commented with
its tag, so DEL and GC find it without any other state.
"""

from __future__ import annotations

from . import Owner, nft_apply, nft_remove_tagged, tokens

TABLE = "dockline_spoofchk"


def add(owner: Owner, host_ifname: str, mac: str) -> None:
    t = f"bridge {TABLE}"
    host_ifname, mac = tokens.ifname(host_ifname), tokens.mac(mac)
    nft_apply(
        [
            f"add table {t}",
            f"add chain {t} prerouting {{ type filter hook prerouting priority -300; policy accept; }}",
            f'add rule {t} prerouting iifname "{host_ifname}" ether saddr != {mac} drop '
            f'comment "dl-{owner.tag}"',
        ],
        "installing the MAC spoof check",
    )


def _remove(tag_prefix: str, doomed) -> None:
    nft_remove_tagged(
        "bridge", TABLE, "prerouting", tag_prefix, doomed, "removing the MAC spoof check"
    )


def delete(owner: Owner) -> None:
    _remove(owner.tag, lambda tag: tag == owner.tag)


def gc(network: str, valid: set[tuple[str, str]]) -> None:
    keep = {Owner.tag_for(network, cid, ifname) for cid, ifname in valid}
    _remove(Owner(network, "", "").network_tag, lambda tag: tag not in keep)

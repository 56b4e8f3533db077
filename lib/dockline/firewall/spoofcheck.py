"""MAC spoof check for bridge ``macspoofchk``: frames entering the bridge
from a container's port must carry the container's MAC.

nftables, table ``bridge dockline_spoofchk``, chain ``prerouting``
(filter, before everything else), one rule per attachment commented with
its tag, so DEL and GC find it without any other state.
"""

from __future__ import annotations

from ..cni.attachment import Attachment, network_tag
from . import nft_apply, nft_remove_tagged, tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

TABLE = "dockline_spoofchk"


def add(att: Attachment, host_ifname: str, mac: str) -> None:
    t = f"bridge {TABLE}"
    host_ifname, mac = tokens.ifname(host_ifname), tokens.mac(mac)
    nft_apply(
        [
            f"add table {t}",
            f"add chain {t} prerouting "
            "{ type filter hook prerouting priority -300; policy accept; }",
            f'add rule {t} prerouting iifname "{host_ifname}" ether saddr != {mac} drop '
            f'comment "dl-{att.tag}"',
        ],
        "installing the MAC spoof check",
    )


def _remove(tag_prefix: str, doomed: Callable[[str], bool]) -> None:
    nft_remove_tagged(
        "bridge", TABLE, "prerouting", tag_prefix, doomed, "removing the MAC spoof check"
    )


def delete(att: Attachment) -> None:
    _remove(att.tag, lambda tag: tag == att.tag)


def gc(network: str, valid: set[Attachment]) -> None:
    keep = {a.tag for a in valid}
    _remove(network_tag(network), lambda tag: tag not in keep)

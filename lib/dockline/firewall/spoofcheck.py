"""MAC spoof check for bridge ``macspoofchk``: frames entering the bridge
from a container's port must carry the container's MAC.

nftables, table ``bridge dockline_spoofchk``, chain ``prerouting``
(filter, before everything else), one rule per attachment commented with
its tag, so DEL and GC find it without any other state.
"""
from __future__ import annotations

from .. import proc
from . import Owner, nft_tagged_rules
from .masquerade import FirewallError

TABLE = "dockline_spoofchk"


def _nft(script: str, what: str) -> None:
    result = proc.run(["nft", "-f", "-"], script.encode())
    if result.returncode != 0:
        raise FirewallError(what, result)


def add(owner: Owner, host_ifname: str, mac: str) -> None:
    t = f"bridge {TABLE}"
    _nft("\n".join([
        f"add table {t}",
        f"add chain {t} prerouting {{ type filter hook prerouting priority -300; policy accept; }}",
        f'add rule {t} prerouting iifname "{host_ifname}" ether saddr != {mac} drop '
        f'comment "dl-{owner.tag}"']) + "\n", "installing the MAC spoof check")


def _handles(tag_prefix: str) -> list[tuple[str, str]]:
    return nft_tagged_rules("bridge", TABLE, "prerouting", tag_prefix)


def _delete(handles: list[str]) -> None:
    if handles:
        _nft("".join(f"delete rule bridge {TABLE} prerouting handle {h}\n" for h in handles),
             "removing the MAC spoof check")


def delete(owner: Owner) -> None:
    if proc.which("nft"):
        _delete([h for tag, h in _handles(owner.tag) if tag == owner.tag])


def gc(network: str, valid: set[tuple[str, str]]) -> None:
    if not proc.which("nft"):
        return
    keep = {Owner.tag_for(network, cid, ifname) for cid, ifname in valid}
    prefix = Owner(network, "", "").network_tag
    _delete([h for tag, h in _handles(prefix) if tag not in keep])

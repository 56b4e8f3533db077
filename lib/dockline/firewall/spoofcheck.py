"""MAC spoof check for bridge ``macspoofchk``: frames entering the bridge
from a container's port must carry the container's MAC.

nftables, table ``bridge dockline_macspoof``: one constant rule, written
once, drops a frame from a port in set ``ports`` unless ``port . source
MAC`` is in set ``allowed``.  An attachment is two elements, added or
deleted in one netfilter-netlink transaction whatever the number of
ports: ``ports`` holds the port with the comment ``dl-<tag> <mac>``, from
which DEL reads the other key (one element fetched by its key, no record,
no listing).  GC reads the ``ports`` set: it is the one call that reads
everything.

Before this layout each attachment had its own rule in table
``bridge dockline_spoofchk``; while that table exists (a host that ran an
older dockline), DEL and GC also remove the attachment's rule there.
"""

from __future__ import annotations

from ..cni.attachment import Attachment, network_tag
from ..cni.errors import CniError
from . import nfnl, nft_remove_tagged, tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

TABLE = "dockline_macspoof"
LEGACY_TABLE = "dockline_spoofchk"
PORTS, ALLOWED = "ports", "allowed"
_RULE = "dockline spoof check"
_MARK = "dl-"


def _structure() -> list[str]:
    t = f"bridge {TABLE}"
    return [
        f"add table {t}",
        f"add set {t} {PORTS} {{ type ifname; }}",
        f"add set {t} {ALLOWED} {{ type ifname . ether_addr; }}",
        f"add chain {t} prerouting {{ type filter hook prerouting priority -300; policy accept; }}",
        f"flush chain {t} prerouting",
        f"add rule {t} prerouting iifname @{PORTS} iifname . ether saddr != @{ALLOWED} drop "
        f'comment "{_RULE}"',
    ]


def _mac(mac: str) -> bytes:
    return bytes.fromhex(tokens.mac(mac).replace(":", ""))


def _keys(port: bytes, mac: str | None) -> dict[str, list[nfnl.Element]]:
    keys = {PORTS: [nfnl.Element(port)], ALLOWED: []}
    if mac is not None:
        keys[ALLOWED].append(nfnl.Element(nfnl.concat(port, _mac(mac))))
    return keys


def _owner_and_mac(element: nfnl.Element) -> tuple[str, str | None]:
    """(tag, MAC) from a ``ports`` element's comment; the MAC is None when
    the comment does not hold one we would write back."""
    words = (element.comment or "").split()
    tag = words[0][len(_MARK) :] if words and words[0].startswith(_MARK) else ""
    mac = None
    if len(words) == 2:
        try:
            mac = tokens.mac(words[1])
        except CniError:
            mac = None
    return tag, mac


def _remove_port(port: str, owner: str | None) -> None:
    """Remove a port's two elements (those of attachment ``owner`` only,
    when given).  A missing table, set or element is fine."""
    key = nfnl.ifname(port, "host interface")
    found = nfnl.get_element(nfnl.BRIDGE, TABLE, PORTS, key)
    if found is None:
        return
    tag, mac = _owner_and_mac(found)
    if owner is not None and tag != owner:
        return  # another attachment's port now: not ours to touch
    nfnl.delete_many(nfnl.BRIDGE, TABLE, _keys(key, mac))


def add(att: Attachment, host_ifname: str, mac: str) -> None:
    nfnl.ensure_rules(
        "bridge", TABLE, {"prerouting": [_RULE]}, _structure(), "installing the MAC spoof check"
    )
    port = nfnl.ifname(host_ifname, "host interface")
    mac = tokens.mac(mac)
    _remove_port(host_ifname, None)  # a killed ADD's elements, with another MAC
    keys = _keys(port, mac)
    keys[PORTS] = [nfnl.Element(port, userdata=nfnl.comment(f"{_MARK}{att.tag} {mac}"))]
    batch = nfnl.Batch(nfnl.BRIDGE, TABLE)
    for name, elements in keys.items():
        batch.add_elements(name, elements)
    batch.commit()


def _legacy(tag_prefix: str, doomed: Callable[[str], bool]) -> None:
    """The older layout's rules (module docstring), while its table exists."""
    if nfnl.get_table(nfnl.BRIDGE, LEGACY_TABLE):
        what = "removing the MAC spoof check"
        nft_remove_tagged("bridge", LEGACY_TABLE, "prerouting", tag_prefix, doomed, what)


def delete(att: Attachment) -> None:
    _remove_port(att.host_veth, att.tag)
    _legacy(att.tag, lambda tag: tag == att.tag)


def gc(network: str, valid: set[Attachment]) -> None:
    keep = {a.tag for a in valid}
    prefix = network_tag(network)
    stale: dict[str, list[nfnl.Element]] = {PORTS: [], ALLOWED: []}
    for element in nfnl.dump_elements(nfnl.BRIDGE, TABLE, PORTS):
        tag, mac = _owner_and_mac(element)
        if tag.startswith(prefix) and tag not in keep:
            for name, keys in _keys(element.key, mac).items():
                stale[name] += keys
    nfnl.delete_many(nfnl.BRIDGE, TABLE, stale)
    _legacy(prefix, lambda tag: tag not in keep)


def tags(prefix: str) -> list[tuple[str, str]]:
    """(tag, port) of the spoof-checked ports of attachments whose tag
    starts with ``prefix`` (inspection: reads the set)."""
    out = []
    for element in nfnl.dump_elements(nfnl.BRIDGE, TABLE, PORTS):
        tag, _mac = _owner_and_mac(element)
        if tag.startswith(prefix):
            out.append((tag, element.key.rstrip(b"\0").decode(errors="replace")))
    return out

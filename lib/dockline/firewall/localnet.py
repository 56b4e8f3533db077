"""``route_localnet`` for published ports, and the guard that makes it safe.

127.0.0.1:hostPort can be DNATed to a container only if the interface
towards the container accepts loopback-range addresses
(``net.ipv4.conf.<if>.route_localnet=1``).  That same switch lets a
container send packets to 127.0.0.1 through its gateway and reach services
the host binds to loopback only (the CVE-2020-8558 class).  So:

* the guard, as kube-proxy has it: a packet to 127.0.0.0/8 that did not
  come in on ``lo`` is dropped unless its connection was DNATed (a
  published port's replies are; an attacker's packets are not);
* the switch is turned on only on the bridge the container sits on (not
  every interface of prevResult), only for snat with an IPv4 mapping, and
  turned off when the last such attachment on that interface goes.

Who holds the switch is recorded with one name per attachment,
``<STATE_DIR>/<ifname>/<tag>``, under a flock: each is a hard link to
``.holders`` in that directory, whose link count is then the number of
holders plus one.  ADD links its name, DEL unlinks its own and reads that
count (a listdir of the per-interface directories, one per bridge, and a
stat in each: no firewall dump, no listing of the holders).  GC lists
them.  A switch that was on before dockline first needed it (``.preset``)
is left on.  The switch itself is read and written over rtnetlink
(netlink/devconf.py): its /proc/sys path costs a lookup among every
netns's entries.
"""

from __future__ import annotations

import os

from .. import proc
from ..filelock import FileLock
from . import _RESTORE, _SAVE, FirewallError, check_lines, tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..cni.addr import IPAddress

STATE_DIR = "/var/lib/cni/dockline/localnet"
_LOCK = STATE_DIR + "/lock"
_PRESET = ".preset"
_COUNT = ".holders"  # every holder's name is a hard link to it
IPT_CHAIN = "DOCKLINE-LOCALNET"


class _Switch:
    """route_localnet of the host's interfaces, over rtnetlink: the
    /proc/sys path costs a lookup among every netns's entries
    (netlink/devconf.py)."""

    def __init__(self) -> None:
        from ..netlink.rtnl import RtnlSocket

        self.rtnl = RtnlSocket()

    def __enter__(self) -> _Switch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.rtnl.close()

    def read(self, ifname: str) -> tuple[int, str] | None:
        """(ifindex, "0" or "1"), or None when the interface is gone."""
        from ..netlink import devconf

        found = devconf.ipv4_conf(self.rtnl, tokens.ifname(ifname))
        if found is None or "route_localnet" not in found[1]:
            return None
        index, conf = found
        return index, str(conf["route_localnet"])

    def write(self, ifname: str, value: str, index: int | None = None) -> None:
        from ..netlink import devconf
        from ..netlink.errors import NetlinkError

        if index is None:
            now = self.read(ifname)
            if now is None:
                return  # the interface is gone: nothing to switch
            index = now[0]
        request = devconf.set_ipv4_conf_request(
            index, {"route_localnet": int(value)}, f"route_localnet of {ifname}"
        )
        try:
            self.rtnl.execute([request])
        except NetlinkError as exc:
            if exc.errno != 19:  # ENODEV: gone since
                raise


def towards_container(addresses: list[IPAddress]) -> list[str]:
    """The interfaces the kernel routes the containers' IPv4 addresses
    through (the bridge; the host veth for a ptp-like chain): where a
    packet DNATed from 127.0.0.1 leaves.  Read from /proc/net/route (the
    caller's namespace, main table, one small file): sysfs would show the
    namespace it was mounted in, and netlink costs ~20 ms to load."""
    try:
        with open("/proc/net/route") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return []
    routes = []
    for row in rows:
        cols = row.split()
        if len(cols) < 8:
            continue
        try:  # little-endian hex, as the kernel prints them
            dest = int.from_bytes(bytes.fromhex(cols[1]), "little")
            mask = int.from_bytes(bytes.fromhex(cols[7]), "little")
        except ValueError:
            continue
        routes.append((mask, dest, cols[0]))
    out = []
    for address in addresses:
        a = int(address)
        best = max((r for r in routes if a & r[0] == r[1] and r[0] != 0), default=None)
        if best and best[2] not in out:
            try:
                out.append(tokens.ifname(best[2]))
            except Exception:
                continue
    return out


# --- the guard -----------------------------------------------------------------


def nft_guard(table: str) -> list[str]:
    """Lines for an nft transaction: a filter chain on the input hook in
    ``table`` (an inet table), rewritten whole each time (constant size);
    the comments let a netlink GETRULE check it by structure."""
    return [
        f"add chain {table} localnet {{ type filter hook input priority -10; policy accept; }}",
        f"flush chain {table} localnet",
        f'add rule {table} localnet iifname != "lo" ip daddr 127.0.0.0/8 ct status dnat accept '
        'comment "dockline localnet: dnat"',
        f'add rule {table} localnet iifname != "lo" ip daddr 127.0.0.0/8 drop '
        'comment "dockline localnet: drop"',
    ]


def ipt_ensure_guard() -> None:
    """The same in iptables' filter table: chain DOCKLINE-LOCALNET, first
    in INPUT.  Called when an interface gets its first holder or its switch
    is found off (a read of the filter table then, not on every ADD)."""
    saved = proc.run([_SAVE[4], "-t", "filter"])
    text = saved.stdout.decode(errors="replace") if saved.returncode == 0 else ""
    lines = [
        "*filter",
        f":{IPT_CHAIN} - [0:0]",  # declaring it flushes it: rewritten whole
        f"-A {IPT_CHAIN} -d 127.0.0.0/8 ! -i lo -m conntrack --ctstate DNAT -j RETURN",
        f'-A {IPT_CHAIN} -d 127.0.0.0/8 ! -i lo -m comment --comment "dockline localnet guard" '
        "-j DROP",
    ]
    if f"-A INPUT -j {IPT_CHAIN}" not in text.splitlines():
        lines.append(f"-I INPUT 1 -j {IPT_CHAIN}")
    lines.append("COMMIT")
    check_lines(lines)
    result = proc.run([_RESTORE[4], "--noflush", "-w", "5"], ("\n".join(lines) + "\n").encode())
    if result.returncode != 0:
        raise FirewallError("installing the localnet guard", result)


# --- the count -------------------------------------------------------------------


def acquire(tag: str, ifaces: list[str], backend: str) -> None:
    """Turn route_localnet on for ``ifaces`` on behalf of attachment
    ``tag``.  The guard must be in place before (nft: it is part of the
    portmap base chains; iptables: ensured here when a switch flips)."""
    tokens.hex_tag(tag)
    if not ifaces:
        return
    with FileLock(_LOCK), _Switch() as switch:
        for name in ifaces:
            found = switch.read(name)
            if found is None:
                continue
            index, before = found
            d = f"{STATE_DIR}/{name}"
            first = True
            try:
                os.mkdir(d, 0o755)
                if before == "1":
                    _touch(f"{d}/{_PRESET}")
            except FileExistsError:
                first = False
            _hold(d, tag)
            if first or before != "1":
                if backend == "iptables":
                    ipt_ensure_guard()
                switch.write(name, "1", index)


def _touch(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))


def _hold(d: str, tag: str) -> None:
    """``tag`` holds the interface of directory ``d`` (module docstring)."""
    count = f"{d}/{_COUNT}"
    if not os.path.lexists(count):
        # A directory an older dockline filled holds plain files: they
        # become links of a new count file, which gets its name last, so a
        # writer killed half way leaves no count that misses a holder.
        new = count + ".new"
        _replace_with(new, None)
        for name in os.listdir(d):
            if not name.startswith("."):
                _replace_with(f"{d}/{name}", new)
        os.rename(new, count)
    try:
        os.link(count, f"{d}/{tag}")
    except FileExistsError:
        pass


def _replace_with(path: str, target: str | None) -> None:
    """``path`` becomes a new empty file (``target`` None) or a link to
    ``target``, in one rename."""
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    if target is None:
        _create(tmp)
    else:
        os.link(target, tmp)
    os.rename(tmp, path)


def _create(path: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    os.close(os.open(path, flags, 0o600))


def _held(d: str) -> bool:
    """Whether anyone still holds the interface of directory ``d``."""
    try:
        return os.lstat(f"{d}/{_COUNT}").st_nlink > 1
    except FileNotFoundError:  # an older dockline's directory: read it
        return any(not n.startswith(".") for n in os.listdir(d))


def _let_go(name: str, d: str, switched: bool = True) -> None:
    """Nobody holds interface ``name`` any more: its switch goes back off
    (unless it was on before dockline, or never ``switched`` on by us),
    and its directory goes."""
    try:
        os.unlink(f"{d}/{_PRESET}")
    except FileNotFoundError:
        if switched and _valid_name(name):
            with _Switch() as switch:
                switch.write(name, "0")
    for leftover in os.listdir(d):  # .holders (and a killed writer's .tmp)
        os.unlink(f"{d}/{leftover}")
    os.rmdir(d)


def release_one(tag: str) -> None:
    """DEL: drop attachment ``tag``'s holds; no holder is listed."""
    tokens.hex_tag(tag)

    def drop(d: str) -> bool:
        try:
            os.unlink(f"{d}/{tag}")
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    _release(drop)


def release(doomed: Callable[[str], bool]) -> None:
    """GC: drop the holds of the attachments whose tag ``doomed`` selects
    (lists them)."""

    def drop(d: str) -> bool:
        try:
            held = os.listdir(d)
        except (FileNotFoundError, NotADirectoryError):
            return False
        for tag in held:
            if not tag.startswith(".") and doomed(tag):
                os.unlink(f"{d}/{tag}")
        return True

    _release(drop)


def _release(drop: Callable[[str], bool]) -> None:
    """``drop`` the holds in each interface's directory (True: it was
    there); an interface nobody holds any more gets route_localnet back
    off."""
    if not os.path.isdir(STATE_DIR):
        return
    with FileLock(_LOCK):
        for name in _holders():
            d = f"{STATE_DIR}/{name}"
            dropped = drop(d)
            if os.path.isdir(d) and not _held(d):
                # Not dropped and held by nobody: an acquire killed before
                # its first hold was made (it flips the switch after).
                _let_go(name, d, switched=dropped)


def _holders() -> list[str]:
    try:
        return [n for n in os.listdir(STATE_DIR) if n != "lock"]
    except FileNotFoundError:
        return []


def _valid_name(name: str) -> bool:
    try:
        tokens.ifname(name)
        return True
    except Exception:
        return False

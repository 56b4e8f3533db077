"""Firewall rules owned by one attachment, in one batch per change.

Every object dockline installs carries its attachment's tag (see
``cni.attachment``), and each ADD leaves a record of what it installed
(``records``), so DEL removes exactly that without listing a table, and
GC finds the rest by tag.  This package holds what every rule set
shares: the netlink nftables layer (``nfnl``), running ``nft`` and
``iptables-restore``/``-save``, and picking a backend.  Rule sets:
``masquerade`` (bridge ipMasq), ``spoofcheck``, ``ra_guard``,
``localnet``; portmap's own rules live beside its config
(``dockline.portmap``).
"""

from __future__ import annotations

from .. import proc
from ..cni.errors import INTERNAL, INVALID_CONFIG, IO_FAILURE, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}
_SAVE = {4: "iptables-save", 6: "ip6tables-save"}


class FirewallError(CniError):
    """A firewall tool refused a change; ``output`` is everything it said."""

    def __init__(self, what: str, result: proc.Completed | str) -> None:
        self.output = result if isinstance(result, str) else result.error_text
        super().__init__(IO_FAILURE, f"firewall: {what} failed", self.output[:500])

    @classmethod
    def of(cls, what: str, text: str) -> FirewallError:
        """For a failure reported by the kernel over netlink, not a tool."""
        return cls(what, text)


def default_backend(what: str) -> str:
    """nftables where ``nft`` exists (it is needed once, to write the
    constant tables; every ADD and DEL after that speaks netlink), else
    iptables.  Not the reference's order: on hosts where iptables is
    itself iptables-nft (Debian 12) the iptables backend pays an
    ``iptables-restore`` process per change on the same kernel tables."""
    if proc.which("nft"):
        return "nftables"
    if proc.which("iptables-restore"):
        return "iptables"
    raise CniError(INVALID_CONFIG, f"{what} needs iptables or nftables", "neither is installed")


# --- nftables ------------------------------------------------------------


def check_lines(lines: list[str]) -> None:
    """Scripts are built from checked tokens only (see ``tokens``), so a
    line break or NUL inside a line is a bug: refused before the tool
    sees it, whatever the caller forgot."""
    for line in lines:
        if "\n" in line or "\r" in line or "\0" in line:
            raise CniError(
                INTERNAL,
                "internal error: a firewall script line holds a line break",
                repr(line)[:200],
            )


def nft_apply(lines: list[str], what: str) -> None:
    """One ``nft -f`` transaction: all of it happens, or none of it."""
    check_lines(lines)
    result = proc.run(["nft", "-f", "-"], ("\n".join(lines) + "\n").encode())
    if result.returncode != 0:
        raise FirewallError(what, result)


def nft_tagged_rules(family: str, table: str, chain: str, tag_prefix: str) -> list[tuple[str, str]]:
    """(tag, handle) of the rules in an nftables chain whose comment is
    ``dl-<tag>`` with tag starting with ``tag_prefix``; none if the chain
    does not exist."""
    result = proc.run(["nft", "-a", "list", "chain", family, table, chain])
    if result.returncode != 0:
        return []
    found = []
    marker = f'comment "dl-{tag_prefix}'
    for line in result.stdout.decode(errors="replace").splitlines():
        if marker in line and "# handle " in line:
            tag = line.split('comment "dl-', 1)[1].split('"', 1)[0]
            handle = line.rsplit("# handle ", 1)[1].strip()
            if handle.isdigit() and handle.isascii():  # it goes back into a script
                found.append((tag, handle))
    return found


def nft_remove_tagged(
    family: str, table: str, chain: str, tag_prefix: str, doomed: Callable[[str], bool], what: str
) -> None:
    """Delete, in one transaction, the tagged rules of a chain whose tag
    ``doomed`` selects.  Nothing to delete (or no nft at all) is fine."""
    if not proc.which("nft"):
        return
    handles = [h for tag, h in nft_tagged_rules(family, table, chain, tag_prefix) if doomed(tag)]
    if handles:
        nft_apply([f"delete rule {family} {table} {chain} handle {h}" for h in handles], what)


# --- iptables ------------------------------------------------------------


def iptables_nat_rules(family: int) -> list[str]:
    """``iptables-save -t nat`` (or ip6tables) as lines; none when the
    family has no nat table (nothing of ours can be there)."""
    result = proc.run([_SAVE[family], "-t", "nat"])
    return result.stdout.decode(errors="replace").splitlines() if result.returncode == 0 else []


def iptables_restore_nat(family: int, lines: list[str], what: str) -> None:
    """One ``iptables-restore --noflush`` transaction on the nat table."""
    check_lines(lines)
    script = "\n".join(["*nat", *lines, "COMMIT"]) + "\n"
    result = proc.run([_RESTORE[family], "--noflush", "-w", "5"], script.encode())
    if result.returncode != 0:
        raise FirewallError(what, result)

"""Names and links across hosts: the name registry's entries in etcd.

Each host keeps its own registry file (names/registry.py: its containers'
names, addresses, hosts files and links); in cluster mode the registry
also publishes its entries to etcd and reads the other hosts' back, so a
link or a name check sees the whole cluster:

    <prefix>/<network>/names/<host id>/<attachment key>
        {"scope", "names", "pod", "seq", "ips"}

attached to the host's etcd lease (a host gone for good loses its names
when the lease expires).  Another host's entry carries no hosts file, links
or netns: only this host's containers' hosts files are ever written here.
Addresses read from etcd are checked (they end up in hosts files); names
are only compared.

Lines follow on the next call, not by watch: every bridge call in cluster
mode (ADD, DEL, GC and STATUS, which runtimes repeat) rewrites the link
lines of this host's containers that no longer match what etcd says, e.g.
after ``db`` was restarted on another host with a new address.  A name
taken on two hosts at the same moment is not prevented (each checks, then
publishes); the latest registration of a pod name wins as on one host.
"""

from __future__ import annotations

import ipaddress
import sys

from ..cni import jsonio
from ..cni.errors import CniError
from ..ipam.disk import DiskStore
from .blocks import Blocks
from .etcd import Client, EtcdError, EtcdUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..names.registry import Entries, Registry
    from .config import ClusterConfig

REMOTE = "@"  # the first character of other hosts' keys in a merged registry
_FIELDS = ("scope", "names", "pod", "seq", "ips")


def names_prefix(conf: ClusterConfig, network: str) -> bytes:
    return f"{conf.prefix}/{network}/names/".encode()


def _remote_entry(doc: object) -> dict[str, Any] | None:
    """Another host's entry, reduced to what may be used here: addresses
    canonical, names and scope strings; None if it is not well-formed."""
    if not isinstance(doc, dict):
        return None
    scope, names, pod, seq, ips = (doc.get(k) for k in _FIELDS)
    if not isinstance(scope, str) or not isinstance(names, list) or not isinstance(ips, list):
        return None
    if not all(isinstance(n, str) for n in names) or not isinstance(seq, int):
        return None
    try:
        addresses = [str(ipaddress.ip_address(ip)) for ip in ips if isinstance(ip, str)]
    except ValueError:
        return None
    entry: dict[str, Any] = {"scope": scope, "names": names, "seq": seq, "ips": addresses}
    if isinstance(pod, str) and pod:
        entry["pod"] = pod
    return entry


def _warn(msg: str) -> None:
    sys.stderr.write(f"dockline cluster names: {msg}\n")


class ClusterNames:
    """The registry's cluster side for one plugin call.  ``strict``: etcd
    out of reach is an error (code 11) instead of a local-only registry."""

    def __init__(
        self, conf: ClusterConfig, network: str, data_dir: str, strict: bool, refresh: bool
    ) -> None:
        self.conf = conf
        self.refresh = refresh  # rewrite stale link lines whenever the registry is opened
        self.network = network
        self.data_dir = data_dir
        self.strict = strict
        self.client = Client(conf)
        self.host = ""
        self.lease = 0
        self.own: dict[str, bytes] | None = None  # our entries as etcd had them

    def close(self) -> None:
        self.client.close()

    def _identity(self) -> None:
        if not self.host:
            with Blocks(self.conf, self.network, DiskStore(self.network, self.data_dir)) as b:
                self.host = b.host.host
                self.lease = b.host.lease if b.lease_usable() else 0

    def merge(self, reg: Registry) -> None:
        """Add the other hosts' entries to ``reg`` (under its lock)."""
        self.own = None
        try:
            self._identity()
            kvs = self.client.get_prefix(names_prefix(self.conf, self.network))
        except (EtcdUnavailable, EtcdError):
            if self.strict:
                raise
            return
        except OSError as exc:
            _warn(f"cannot read this host's cluster identity: {exc}")
            return
        own: dict[str, bytes] = {}
        start = len(names_prefix(self.conf, self.network))
        for kv in kvs:
            host, sep, key = kv.key[start:].decode(errors="replace").partition("/")
            if not sep or not key:
                continue
            if host == self.host:
                own[key] = kv.value
                continue
            try:
                entry = _remote_entry(jsonio.loads(kv.value))
            except ValueError:
                entry = None
            if entry is not None:
                reg.entries[f"{REMOTE}{host}/{key}"] = entry
        self.own = own

    @staticmethod
    def local(entries: Entries) -> dict[str, dict[str, Any]]:
        """This host's entries (reads them all: cluster mode publishes them)."""
        return {k: v for k, v in entries.items() if not k.startswith(REMOTE)}

    def publish(self, reg: Registry) -> None:
        """Make etcd hold exactly this host's entries (after the file was
        written).  Not merged (etcd was out of reach): left for a later call."""
        if self.own is None:
            return
        prefix = names_prefix(self.conf, self.network) + f"{self.host}/".encode()
        local = self.local(reg.entries)
        try:
            for key, entry in local.items():
                value = jsonio.dumps({k: entry[k] for k in _FIELDS if k in entry}).encode()
                if self.own.get(key) == value:
                    continue
                try:
                    self.client.put(prefix + key.encode(), value, self.lease)
                except EtcdError:  # the lease ran out: the next IPAM call renews it
                    self.client.put(prefix + key.encode(), value)
                self.own[key] = value
            for key in [k for k in self.own if k not in local]:
                self.client.delete(prefix + key.encode())
                del self.own[key]
        except (EtcdUnavailable, EtcdError):
            if self.strict:
                raise
            _warn("etcd out of reach: this host's names are published by a later call")

    def refresh_lines(self, reg: Registry) -> None:
        """Rewrite the link lines of this host's containers that differ from
        what the merged registry says (a linked container moved or left)."""
        from ..names import dockerlinks, hostsfile

        for entry in self.local(reg.entries).values():
            hosts, tag = entry.get("hosts"), entry.get("tag")
            if not entry.get("links") or not hosts or not tag:
                continue
            try:
                lines = dockerlinks.lines_for(entry, reg)
                if sorted(hostsfile.marked_lines(hosts, tag)) != sorted(lines):
                    hostsfile.rewrite(hosts, tag, lines, data_dir=self.data_dir)
            except (CniError, OSError) as exc:
                _warn(f"not updating {hosts!r}: {exc}")


__all__ = ["ClusterNames"]

"""Address blocks: one cluster range, shared by hosts through etcd.

Each host leases blocks of the network's range sets (a /26 and a /122 by
default) and allocates inside them locally, with the ordinary allocator and
the ordinary on-disk store, so an ADD needs etcd only when its host has no
free address in the blocks it holds.

In etcd, under ``<prefix>/<network>/``:

    blocks/<block, '/' as '_'>   {"host": HOST_ID, "underlay": ADDRESS}

each attached to its host's etcd lease (``leaseTTL``), so the blocks of a
host that disappears for good return to the pool when the lease expires.
``underlay`` is the address the host reached etcd from: the next hop other
hosts route the block to (see routes.py).

On the host, beside the address reservations, ``.dockline-cluster.json``
holds ``{"host", "lease", "refreshed", "blocks"}``: the host's random
identity (per data directory), its lease and when it was last refreshed,
and the blocks it holds.  It is read and written under the store's lock,
so one host's concurrent calls agree on it.

The lease is refreshed by calls that talk to etcd anyway and by any call
once a tenth of its TTL has passed (STATUS, which runtimes repeat, keeps
an idle host's lease alive).  An ADD that a held block can serve works
while etcd is down, as long as the lease has not run out by our own clock;
past that the host's blocks may be someone else's, and it waits for etcd.
A block is returned as soon as it holds no reservation.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import stat
import time

from .. import atomic
from ..cni import jsonio
from ..cni.errors import ADDRESS_IN_USE, TRY_AGAIN_LATER, CniError
from ..ipam.ranges import Range, RangeSet
from ..ipam.store import Store
from .etcd import Client, EtcdUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from ..ipam.disk import DiskStore
    from ..ipam.ranges import IPAddress, IPNetwork
    from ..ipam.store import Reservation
    from .config import ClusterConfig

STATE = ".dockline-cluster.json"
_STATE_TMP = ".dockline-cluster.tmp"
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def block_key(conf: ClusterConfig, network: str, block: str = "") -> bytes:
    """The etcd key of ``block`` (or the prefix of all blocks)."""
    return f"{conf.prefix}/{network}/blocks/{block.replace('/', '_')}".encode()


def block_of_key(key: bytes) -> str:
    return key.rsplit(b"/", 1)[-1].decode(errors="replace").replace("_", "/")


class HostState:
    """The host's side of cluster mode for one network (see module doc)."""

    __slots__ = ("blocks", "changed", "host", "lease", "refreshed")

    def __init__(self, doc: dict[str, Any]) -> None:
        host = doc.get("host")
        ok = (
            isinstance(host, str) and len(host) == 16 and all(c in "0123456789abcdef" for c in host)
        )
        self.host: str = str(host) if ok else os.urandom(8).hex()
        lease = doc.get("lease")
        self.lease: int = lease if isinstance(lease, int) and ok else 0
        refreshed = doc.get("refreshed")
        self.refreshed: float = float(refreshed) if isinstance(refreshed, (int, float)) else 0.0
        blocks = doc.get("blocks")
        self.blocks: list[IPNetwork] = []
        for text in blocks if isinstance(blocks, list) and ok else ():
            try:
                self.blocks.append(ipaddress.ip_network(text))
            except (TypeError, ValueError):
                continue
        self.changed = not ok

    @classmethod
    def load(cls, dir_fd: int) -> HostState:
        try:
            fd = os.open(STATE, _READ, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
                return cls({})
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return cls({})
            data = os.read(fd, 1 << 20)
        finally:
            os.close(fd)
        try:
            doc = jsonio.loads(data)
        except ValueError:
            doc = None
        return cls(doc if isinstance(doc, dict) else {})

    def save(self, dir_fd: int) -> None:
        doc = {
            "host": self.host,
            "lease": self.lease,
            "refreshed": self.refreshed,
            "blocks": [str(b) for b in self.blocks],
        }
        data = jsonio.dumps(doc).encode()
        atomic.replace(_STATE_TMP, STATE, data, dir_fd=dir_fd)
        self.changed = False


class _Held:
    """The store's lock, already held by the cluster allocator."""

    def __enter__(self) -> _Held:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class HeldStore(Store):
    """The disk store seen by the ordinary allocator while the cluster code
    holds its lock (flock is not re-entrant across two opens)."""

    def __init__(self, disk: DiskStore) -> None:
        self.disk = disk

    def __getattr__(self, name: str) -> Any:
        # what the disk store offers beyond the Store interface (e.g. an
        # index of owners), used by the allocator as it is on one host
        return getattr(self.disk, name)

    def lock(self, create: bool = True) -> _Held:
        return _Held()

    def reserve(self, container_id: str, ifname: str, ip: str, range_id: str) -> bool:
        return self.disk.reserve(container_id, ifname, ip, range_id)

    def last_reserved(self, range_id: str) -> str | None:
        return self.disk.last_reserved(range_id)

    def set_last_reserved(self, range_id: str, ip: str | None) -> None:
        self.disk.set_last_reserved(range_id, ip)

    def release(self, ip: str) -> None:
        self.disk.release(ip)

    def reservations(self) -> Iterable[Reservation]:
        return self.disk.reservations()

    def check_writable(self) -> None:
        self.disk.check_writable()

    # The Store base defines these (as a scan), so __getattr__ never sees
    # them: forward them, or cluster mode would bypass the disk store's index.
    def owned(self, container_id: str, ifname: str) -> list[str]:
        return self.disk.owned(container_id, ifname)

    def recorded(self, container_id: str, ifname: str, ips: list[str]) -> None:
        self.disk.recorded(container_id, ifname, ips)

    def release_by_id(self, container_id: str, ifname: str) -> list[str]:
        return self.disk.release_by_id(container_id, ifname)


def _block_prefix(conf: ClusterConfig, rng: Range) -> int:
    wanted = conf.block_prefix if rng.version == 4 else conf.block_prefix6
    return max(wanted, rng.subnet.prefixlen)


def _window(rng: Range, block: IPNetwork) -> tuple[int, int] | None:
    """The part of the range's [start, end] inside ``block``, as integers."""
    if block.version != rng.version:
        return None
    lo = max(int(rng.start), int(block.network_address))
    hi = min(int(rng.end), int(block.broadcast_address))
    return (lo, hi) if lo <= hi else None


def blocks_of(conf: ClusterConfig, rs: RangeSet) -> Iterator[IPNetwork]:
    """Every block of the set, in address order (lazily: a /64 has many)."""
    for rng in rs.ranges:
        size = 1 << (rng.subnet.max_prefixlen - _block_prefix(conf, rng))
        net_cls = type(rng.subnet)
        first = int(rng.start) - (int(rng.start) - int(rng.subnet.network_address)) % size
        at = first
        while at <= int(rng.end):
            yield net_cls((at, _block_prefix(conf, rng)))
            at += size


def restrict(rs: RangeSet, blocks: list[IPNetwork]) -> RangeSet | None:
    """The set cut down to the held blocks; the subnet and gateway stay the
    network's, so results look as on a single host."""
    ranges = []
    for rng in rs.ranges:
        for block in blocks:
            window = _window(rng, block)
            if window is not None:
                cls = type(rng.start)
                ranges.append(Range(rng.subnet, cls(window[0]), cls(window[1]), rng.gateway))
    return RangeSet(ranges) if ranges else None


def _free_in(rs: RangeSet, block: IPNetwork, taken: set[tuple[int, int]]) -> int:
    """Addresses of the set in ``block`` that are neither a gateway nor in
    ``taken`` ((version, integer) pairs)."""
    free = 0
    for rng in rs.ranges:
        window = _window(rng, block)
        if window is None:
            continue
        lo, hi = window
        gateway = int(rng.gateway)
        free += hi - lo + 1
        if lo <= gateway <= hi:
            free -= 1
        free -= sum(1 for v, ip in taken if v == rng.version and lo <= ip <= hi and ip != gateway)
    return free


class Blocks:
    """The cluster side of one network on this host, used under the store's
    lock: ``with Blocks(...) as blocks:`` holds it."""

    def __init__(self, conf: ClusterConfig, network: str, disk: DiskStore) -> None:
        self.conf = conf
        self.network = network
        self.disk = disk
        self.state: HostState | None = None
        self._client: Client | None = None
        self._lock: Any = None

    def __enter__(self) -> Blocks:
        self._lock = self.disk.lock()
        self._lock.__enter__()
        try:
            self.state = HostState.load(self._dir_fd())
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if self.state is not None and self.state.changed:
                self.state.save(self._dir_fd())
        finally:
            if self._client is not None:
                self._client.close()
            self._lock.__exit__(exc_type, exc, tb)

    def _dir_fd(self) -> int:
        fd = self.disk.dir_fd
        if fd is None:
            raise RuntimeError("the cluster state is used outside the store's lock")
        return fd

    @property
    def host(self) -> HostState:
        assert self.state is not None
        return self.state

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.conf)
        return self._client

    def taken(self) -> set[tuple[int, int]]:
        """Reserved addresses as (version, integer)."""
        out: set[tuple[int, int]] = set()
        for res in self.disk.reservations():
            if not res.container_id:
                continue
            try:
                ip = ipaddress.ip_address(res.ip)
            except ValueError:
                continue
            out.add((ip.version, int(ip)))
        return out

    # --- the lease ------------------------------------------------------------

    def lease_usable(self) -> bool:
        """Whether the held blocks are still ours by our own clock."""
        host = self.host
        return bool(host.lease) and time.time() < host.refreshed + self.conf.lease_ttl

    def refresh(self, required: bool) -> None:
        """Keep the lease alive (a new one, re-attached to the held blocks,
        if etcd forgot it).  Errors are raised only when ``required``."""
        host = self.host
        try:
            if host.lease and self.client.keepalive(host.lease) > 0:
                host.refreshed = time.time()
                host.changed = True
                return
            host.lease = self.client.grant(self.conf.lease_ttl)
            host.refreshed = time.time()
            host.changed = True
            kept = []
            for block in host.blocks:
                if self._claim(block):
                    kept.append(block)
            host.blocks = kept
        except EtcdUnavailable:
            if required:
                raise

    def maybe_refresh(self) -> None:
        """Before serving from held blocks: etcd only when the lease is due."""
        host = self.host
        if not host.lease:
            return
        age = time.time() - host.refreshed
        if age > self.conf.lease_ttl / 10:
            self.refresh(required=not self.lease_usable())

    def _value(self) -> bytes:
        return jsonio.dumps(
            {"host": self.host.host, "underlay": self.client.local_address or ""}
        ).encode()

    def _owner(self, block: IPNetwork) -> str | None:
        kv = self.client.get(block_key(self.conf, self.network, str(block)))
        if kv is None:
            return None
        try:
            doc = jsonio.loads(kv.value)
        except ValueError:
            return "?"
        return str(doc.get("host", "?")) if isinstance(doc, dict) else "?"

    def _claim(self, block: IPNetwork) -> bool:
        """Take ``block`` for this host if it is free (or already ours, as
        when a retried request had in fact succeeded)."""
        key = block_key(self.conf, self.network, str(block))
        client = self.client
        if not client.local_address:
            client.status()  # connect first: the value names our address
        if client.create(key, self._value(), self.host.lease):
            return True
        if self._owner(block) == self.host.host:
            client.put(key, self._value(), self.host.lease)
            return True
        return False

    def _ensure_lease(self) -> None:
        if not self.lease_usable():
            self.refresh(required=True)

    # --- blocks ----------------------------------------------------------------

    def claim_for(self, rs: RangeSet, index: int) -> IPNetwork:
        """A free block of the set for this host."""
        self._ensure_lease()
        prefix = block_key(self.conf, self.network)
        busy = {block_of_key(kv.key) for kv in self.client.get_prefix(prefix)}
        for block in blocks_of(self.conf, rs):
            if str(block) in busy or block in self.host.blocks:
                continue
            if _free_in(rs, block, set()) <= 0:
                continue  # only a gateway there
            if self._claim(block):
                self.host.blocks.append(block)
                self.host.changed = True
                return block
        raise CniError(
            TRY_AGAIN_LATER,
            f"failed to allocate for range {index}",
            f"cluster: every block of range set {rs} is held by a host",
        )

    def claim_containing(self, rs: RangeSet, ip: IPAddress) -> None:
        """The block of a requested address, for this host."""
        for block in self.host.blocks:
            if ip in block:
                return
        for rng in rs.ranges:
            if rng.contains(ip):
                block = ipaddress.ip_network((ip, _block_prefix(self.conf, rng)), strict=False)
                break
        else:  # plan_requests placed ip in the set
            raise AssertionError(ip)
        self._ensure_lease()
        if not self._claim(block):
            raise CniError(
                ADDRESS_IN_USE,
                "failed to allocate all requested IPs",
                f"{ip} lies in block {block}, held by another host",
            )
        self.host.blocks.append(block)
        self.host.changed = True

    def prepare(self, range_sets: list[RangeSet], plan: list[IPAddress | None]) -> list[RangeSet]:
        """Held blocks enough for one address per set (claiming where
        needed); the sets cut down to them."""
        self.maybe_refresh()
        taken = self.taken()
        out = []
        for idx, rs in enumerate(range_sets):
            wanted = plan[idx]
            if wanted is not None:
                self.claim_containing(rs, wanted)
            elif not any(_free_in(rs, b, taken) > 0 for b in self.host.blocks):
                self.claim_for(rs, idx)
            if not self.lease_usable():
                self._ensure_lease()
            cut = restrict(rs, self.host.blocks)
            assert cut is not None
            out.append(cut)
        return out

    def return_empty(self) -> list[IPNetwork]:
        """Give back held blocks without a reservation (best effort: what
        etcd cannot take now is returned by a later call)."""
        taken = self.taken()
        empty = [
            b
            for b in self.host.blocks
            if not any(
                v == b.version and int(b.network_address) <= ip <= int(b.broadcast_address)
                for v, ip in taken
            )
        ]
        returned = []
        for block in empty:
            key = block_key(self.conf, self.network, str(block))
            try:
                kv = self.client.get(key)
                mine = False
                if kv is not None:
                    doc = jsonio.loads(kv.value)
                    mine = isinstance(doc, dict) and doc.get("host") == self.host.host
                if mine and kv is not None:
                    self.client.txn(
                        [
                            {
                                "key": kv_key_b64(key),
                                "target": "MOD",
                                "result": "EQUAL",
                                "mod_revision": str(kv.mod_revision),
                            }
                        ],
                        [{"request_delete_range": {"key": kv_key_b64(key)}}],
                    )
            except (EtcdUnavailable, ValueError):
                break
            self.host.blocks.remove(block)
            self.host.changed = True
            returned.append(block)
        return returned


def kv_key_b64(key: bytes) -> str:
    from .etcd import b64

    return b64(key)

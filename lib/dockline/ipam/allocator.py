"""Allocation over a Store: one address per range set, all or nothing.

Round-robin like the reference host-local: each range set starts after the
last address it handed out and wraps around, so a crash-looping container
does not get the same address back until the set has been gone through.
The whole ADD (every range set) runs under one lock and is undone
completely, including ``last_reserved_ip``, if any part fails.
"""

from __future__ import annotations

from ..cni.addr import parse_ip
from ..cni.errors import ADDRESS_IN_USE, INVALID_CONFIG, TRY_AGAIN_LATER, CniError
from .ranges import Range, RangeSet

TYPE_CHECKING = False  # typing costs ~7 ms of start-up; annotations only
if TYPE_CHECKING:
    from collections.abc import Iterator

    from .ranges import IPAddress
    from .store import Store


class Allocation:
    __slots__ = ("ip", "range")

    def __init__(self, ip: IPAddress, rng: Range) -> None:
        self.ip = ip
        self.range = rng

    def to_result_ip(self) -> dict[str, str]:
        return {"address": self.range.address(self.ip), "gateway": str(self.range.gateway)}


def candidates(rs: RangeSet, last: IPAddress | None) -> Iterator[tuple[IPAddress, Range]]:
    """Every allocatable address of the set once, in round-robin order:
    after ``last`` when it lies in the set, else from the first range's
    start; gateways are skipped."""
    ranges = rs.ranges
    n = len(ranges)
    first = (
        None if last is None else next((i for i, r in enumerate(ranges) if r.contains(last)), None)
    )
    segments: list[tuple[Range, IPAddress, IPAddress]]
    if last is None or first is None:
        segments = [(r, r.start, r.end) for r in ranges]
    else:
        r0 = ranges[first]
        # Compared as integers: a range's bounds and an address in it share
        # one IP version, which their union type cannot say.
        segments = [(r0, last + 1, r0.end)] if int(last) < int(r0.end) else []
        segments += [
            (ranges[(first + k) % n], ranges[(first + k) % n].start, ranges[(first + k) % n].end)
            for k in range(1, n)
        ]
        segments.append((r0, r0.start, last))
    for rng, ip, stop in segments:
        while True:
            if ip != rng.gateway:
                yield ip, rng
            if int(ip) >= int(stop):  # stop before stepping past the top of the space
                break
            ip += 1


class Allocator:
    def __init__(self, store: Store, range_sets: list[RangeSet]) -> None:
        self.store = store
        self.range_sets = range_sets

    def allocate(
        self, container_id: str, ifname: str, requested: list[IPAddress]
    ) -> list[Allocation]:
        # Every error the request alone can cause is raised before the
        # store is touched: no lock file, directory or cursor move.
        plan = _plan(self.range_sets, requested)
        store = self.store
        with store.lock():
            # Only the attachment's own reservations are looked up (from
            # the store's index when it has one): an address someone holds
            # is refused by reserve() itself, so no call reads them all.
            mine = [
                ip
                for ip in (_ip_or_none(name) for name in store.owned(container_id, ifname))
                if ip is not None
            ]
            taken: set[str] = set()  # what this call reserved
            done: list[Allocation] = []
            saved_last: dict[str, str | None] = {}
            try:
                for idx, rs in enumerate(self.range_sets):
                    range_id = str(idx)
                    for ip in mine:
                        if rs.range_for(ip):
                            raise CniError(
                                ADDRESS_IN_USE,
                                f"failed to allocate for range {idx}",
                                f"{ip} has been allocated to {container_id}, "
                                "duplicate allocation is not allowed",
                            )
                    if range_id not in saved_last:
                        saved_last[range_id] = store.last_reserved(range_id)
                    wanted = plan[idx]
                    if wanted is not None:
                        ip, rng = wanted
                        done.append(self._take_requested(rs, idx, ip, rng, container_id, ifname))
                    else:
                        done.append(
                            self._take_next(
                                rs, idx, taken, saved_last[range_id], container_id, ifname
                            )
                        )
                    taken.add(str(done[-1].ip))
                store.recorded(container_id, ifname, [str(a.ip) for a in done])
            except BaseException:
                for alloc in done:
                    store.release(str(alloc.ip))
                for range_id, cursor in saved_last.items():
                    store.set_last_reserved(range_id, cursor)
                raise
            return done

    def _take_requested(
        self,
        rs: RangeSet,
        idx: int,
        ip: IPAddress,
        rng: Range,
        container_id: str,
        ifname: str,
    ) -> Allocation:
        if not self.store.reserve(container_id, ifname, str(ip), str(idx)):
            raise CniError(
                ADDRESS_IN_USE,
                f"failed to allocate for range {idx}",
                f"requested IP address {ip} is not available in range set {rs}",
            )
        return Allocation(ip, rng)

    def _take_next(
        self,
        rs: RangeSet,
        idx: int,
        taken: set[str],
        last_text: str | None,
        container_id: str,
        ifname: str,
    ) -> Allocation:
        last = _ip_or_none(last_text) if last_text else None
        for ip, rng in candidates(rs, last):
            name = str(ip)
            if name in taken:
                continue
            if self.store.reserve(container_id, ifname, name, str(idx)):
                return Allocation(ip, rng)
        raise CniError(
            TRY_AGAIN_LATER,
            f"failed to allocate for range {idx}",
            f"no IP addresses available in range set: {rs}",
        )

    def release(self, container_id: str, ifname: str) -> list[str]:
        with self.store.lock():
            return self.store.release_by_id(container_id, ifname)


def plan_requests(range_sets: list[RangeSet], requested: list[IPAddress]) -> list[IPAddress | None]:
    """The requested address of each range set (None: the next free one),
    or the error allocation would end in, found without the store: an
    address outside every set, two for one set, a gateway, or a set with
    nothing to hand out."""
    return [None if p is None else p[0] for p in _plan(range_sets, requested)]


def _plan(
    range_sets: list[RangeSet], requested: list[IPAddress]
) -> list[tuple[IPAddress, Range] | None]:
    """plan_requests, with the range each requested address lies in."""
    plan: list[tuple[IPAddress, Range] | None] = [None] * len(range_sets)
    for ip in dict.fromkeys(requested):
        found = next(
            ((i, rng) for i, rs in enumerate(range_sets) if (rng := rs.range_for(ip)) is not None),
            None,
        )
        if found is None or plan[found[0]] is not None:
            raise CniError(
                INVALID_CONFIG,
                "failed to allocate all requested IPs",
                f"{ip} (outside every range set, or two in one set)",
            )
        idx, rng = found
        if ip == rng.gateway:
            raise CniError(
                INVALID_CONFIG,
                f"failed to allocate for range {idx}",
                f"requested ip {ip} is subnet's gateway",
            )
        plan[idx] = (ip, rng)
    for idx, rs in enumerate(range_sets):
        if plan[idx] is None and not rs.has_free_address():
            raise CniError(
                TRY_AGAIN_LATER,
                f"failed to allocate for range {idx}",
                f"no IP addresses available in range set: {rs}",
            )
    return plan


def _ip_or_none(text: str) -> IPAddress | None:
    """A store name or cursor as an address, read as strictly as config
    (a name with a scope id, left by an older writer, is no address)."""
    try:
        return parse_ip(text, "stored address")
    except CniError:
        return None

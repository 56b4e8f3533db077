"""Address ranges and range sets, as host-local configures them.

A range is a subnet with an inclusive [start, end] window and a gateway
that is never handed out; a range set is a list of ranges of one family
from which one address is allocated per container.
"""

from __future__ import annotations

from ..cni.addr import parse_ip, parse_network
from ..cni.errors import INVALID_CONFIG, CniError
from ..cni.gojson import fold_fields

TYPE_CHECKING = False  # typing costs ~7 ms of start-up; annotations only
if TYPE_CHECKING:
    # (re-exported: the allocator and cluster modules name them from here)
    from ..cni.addr import IPAddress as IPAddress
    from ..cni.addr import IPNetwork as IPNetwork

# The reference's Range struct, for matching Go's spelling of its keys.
RANGE_FIELDS = ("subnet", "rangeStart", "rangeEnd", "gateway")


class Range:
    __slots__ = ("end", "gateway", "start", "subnet")

    def __init__(
        self, subnet: IPNetwork, start: IPAddress, end: IPAddress, gateway: IPAddress
    ) -> None:
        self.subnet = subnet
        self.start = start
        self.end = end
        self.gateway = gateway

    @classmethod
    def from_config(cls, obj: object) -> Range:
        if not isinstance(obj, dict):
            raise CniError(INVALID_CONFIG, "invalid range", f"{obj!r} is not an object")
        obj = fold_fields(obj, RANGE_FIELDS)
        if obj.get("subnet") in (None, ""):
            raise CniError(INVALID_CONFIG, "invalid range", "a range needs a subnet")
        subnet = parse_network(obj["subnet"], "subnet")
        # Fewer than 4 addresses leaves nothing between network, gateway
        # and broadcast: the reference refuses /31, /32, /127 and /128.
        if subnet.prefixlen > subnet.max_prefixlen - 2:
            raise CniError(
                INVALID_CONFIG, "invalid range", f"network {subnet} too small to allocate from"
            )
        first = subnet.network_address + 1
        last = subnet.broadcast_address - (1 if subnet.version == 4 else 0)
        gateway = _address_in(obj.get("gateway"), subnet, "gateway") or first
        start = _address_in(obj.get("rangeStart"), subnet, "rangeStart") or first
        end = _address_in(obj.get("rangeEnd"), subnet, "rangeEnd") or last
        if int(start) > int(end):  # (ints: one family, which a type checker cannot tell)
            raise CniError(
                INVALID_CONFIG, "invalid range", f"rangeStart {start} is after rangeEnd {end}"
            )
        return cls(subnet, start, end, gateway)

    @property
    def version(self) -> int:
        return self.subnet.version

    def contains(self, ip: IPAddress) -> bool:
        return ip.version == self.subnet.version and int(self.start) <= int(ip) <= int(self.end)

    def overlaps(self, other: Range) -> bool:
        return (
            self.version == other.version
            and int(self.start) <= int(other.end)
            and int(other.start) <= int(self.end)
        )

    def has_free_address(self) -> bool:
        """Whether anything but the gateway lies in [start, end]."""
        return self.start != self.end or self.start != self.gateway

    def address(self, ip: IPAddress) -> str:
        """The address as it appears in a result: ip/prefix."""
        return f"{ip}/{self.subnet.prefixlen}"

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


def _address_in(text: object, subnet: IPNetwork, what: str) -> IPAddress | None:
    if text in (None, ""):
        return None
    ip = parse_ip(text, what)
    if ip.version != subnet.version or ip not in subnet:
        raise CniError(INVALID_CONFIG, "invalid range", f"{what} {ip} is not in network {subnet}")
    return ip


class RangeSet:
    """Ranges of one family; one address per container comes from a set."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: list[Range]) -> None:
        self.ranges = ranges

    @classmethod
    def from_config(cls, obj: object, index: int) -> RangeSet:
        if not isinstance(obj, list) or not obj:
            raise CniError(
                INVALID_CONFIG,
                f"invalid range set {index}",
                "a range set is a non-empty list of ranges",
            )
        ranges = [Range.from_config(r) for r in obj]
        for r in ranges[1:]:
            if r.version != ranges[0].version:
                raise CniError(
                    INVALID_CONFIG,
                    f"invalid range set {index}",
                    "all ranges in a set must be of one IP family",
                )
        for i, a in enumerate(ranges):
            for b in ranges[i + 1 :]:
                if a.overlaps(b):
                    raise CniError(
                        INVALID_CONFIG, f"invalid range set {index}", f"range {a} overlaps with {b}"
                    )
        return cls(ranges)

    @property
    def version(self) -> int:
        return self.ranges[0].version

    def range_for(self, ip: IPAddress) -> Range | None:
        for r in self.ranges:
            if r.contains(ip):
                return r
        return None

    def has_free_address(self) -> bool:
        return any(r.has_free_address() for r in self.ranges)

    def overlaps(self, other: RangeSet) -> bool:
        return any(a.overlaps(b) for a in self.ranges for b in other.ranges)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)

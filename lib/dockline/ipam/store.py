"""The interface every address store implements.

The allocator speaks only this, so the on-disk store and any other (etcd,
say) are interchangeable.  Addresses are passed as canonical strings
(``str(ipaddress.ip_address(...))``), the form file names use.  (An ABC
rather than a typing.Protocol: importing typing costs ~7 ms per call.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from contextlib import AbstractContextManager


class Reservation:
    __slots__ = ("container_id", "ifname", "ip")

    def __init__(self, ip: str, container_id: str, ifname: str | None) -> None:
        self.ip = ip
        self.container_id = container_id
        self.ifname = ifname  # None for legacy records that hold only the ID

    def belongs_to(self, container_id: str, ifname: str) -> bool:
        return self.container_id == container_id and self.ifname in (ifname, None)


class Store(ABC):
    @abstractmethod
    def lock(self, create: bool = True) -> AbstractContextManager[object]:
        """Exclusive access to the network's reservations for a whole
        allocation or release, across processes.  Without ``create`` a
        store that does not exist yet is left so (and holds nothing)."""

    @abstractmethod
    def reserve(self, container_id: str, ifname: str, ip: str, range_id: str) -> bool:
        """Record ip for the container; False if it is already taken.
        Also remembers ip as the last one reserved in range set range_id."""

    @abstractmethod
    def last_reserved(self, range_id: str) -> str | None:
        """The last address reserved in range set range_id, if any."""

    @abstractmethod
    def set_last_reserved(self, range_id: str, ip: str | None) -> None:
        """Put back a previous value (None removes it), to undo an ADD."""

    @abstractmethod
    def release(self, ip: str) -> None:
        """Forget the reservation of ip (no error if there is none)."""

    @abstractmethod
    def reservations(self) -> Iterable[Reservation]:
        """Every reservation of the network."""

    def owned(self, container_id: str, ifname: str) -> list[str]:
        """The addresses reserved for the attachment.  This default reads
        every reservation; a store with an index answers from it."""
        return [r.ip for r in self.reservations() if r.belongs_to(container_id, ifname)]

    def recorded(self, container_id: str, ifname: str, ips: list[str]) -> None:
        """ADD reserved ``ips`` for the attachment: a store with an index
        notes it, so DEL finds them without reading every reservation.
        Called under the lock; must not fail the ADD."""
        return None

    def release_by_id(self, container_id: str, ifname: str) -> list[str]:
        """Release every address of the attachment; returns them."""
        released = []
        for res in list(self.reservations()):
            if res.belongs_to(container_id, ifname):
                self.release(res.ip)
                released.append(res.ip)
        return released

    @abstractmethod
    def check_writable(self) -> None:
        """Raise OSError if reservations cannot be recorded."""

"""The per-network name registry, kept beside the IPAM store.

``<dataDir>/<network>/.dockline-names.json`` maps each attachment
(``containerID:ifname``) to its names, addresses, hosts file and links,
and is read and written under an flock on ``.dockline-names.lock`` (the
same discipline as the address store).  Dot-files are not address
reservations to host-local, ours or the reference's.
"""
from __future__ import annotations

import os

from ..cni import jsonio
from ..filelock import FileLock
from ..ipam.disk import DEFAULT_DATA_DIR

FILE = ".dockline-names.json"
LOCK = ".dockline-names.lock"


def attachment_key(container_id: str, ifname: str) -> str:
    return f"{container_id}:{ifname}"


class Registry:
    """Open with ``with Registry(dir) as reg:``; changes are saved on a
    clean exit of the block."""

    def __init__(self, network: str, data_dir: str = "") -> None:
        self.dir = os.path.join(data_dir or DEFAULT_DATA_DIR, network)
        self.entries: dict[str, dict] = {}
        self._lock = FileLock(os.path.join(self.dir, LOCK))
        self._dirty = False

    def exists(self) -> bool:
        """Whether anything was ever registered on the network (DEL and GC
        need not take the lock otherwise)."""
        return os.path.exists(os.path.join(self.dir, FILE))

    def __enter__(self) -> "Registry":
        self._lock.__enter__()
        try:
            with open(os.path.join(self.dir, FILE), "rb") as f:
                self.entries = jsonio.loads(f.read()).get("attachments", {})
        except FileNotFoundError:
            self.entries = {}
        except (ValueError, AttributeError):
            self.entries = {}  # unreadable: start over rather than block every ADD
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self._dirty:
                self._save()
        finally:
            self._lock.__exit__()

    def _save(self) -> None:
        path = os.path.join(self.dir, FILE)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(jsonio.dumps({"attachments": self.entries}))
        os.rename(tmp, path)

    def put(self, key: str, entry: dict) -> None:
        self.entries[key] = entry
        self._dirty = True

    def remove(self, key: str) -> dict | None:
        self._dirty = True
        return self.entries.pop(key, None)

    def owner_of(self, name: str) -> str | None:
        for key, entry in self.entries.items():
            if name in entry.get("names", ()):
                return key
        return None

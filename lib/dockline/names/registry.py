"""The per-network name registry, kept beside the IPAM store.

``<dataDir>/<network>/.dockline-names.json`` maps each attachment
(``containerID:ifname``) to its scope, names, addresses, hosts file and
links, and is read and written under an flock on ``.dockline-names.lock``
(the same discipline as the address store).  Dot-files are not address
reservations to host-local, ours or the reference's.

Format 2: ``{"version": 2, "seq": N, "attachments": {key: entry}}``, an
entry being ``{"scope", "names", "pod", "seq", "ips", "hosts", "tag",
"links", "netns"}``.  ``names`` are names asked for explicitly (unique in their
scope); ``pod`` is the Kubernetes pod name, which may be held by several
attachments of a scope, the latest registration (highest ``seq``)
winning.  Format 1 (no version: entries with ``names`` only) reads as
scope ``""`` with every name explicit, which is what it meant.

The directory is root-only; files in it are still opened without
following symlinks and without blocking, and only regular files are read.
"""

from __future__ import annotations

import os

from .. import atomic
from ..cni import jsonio
from ..cni.errors import INVALID_CONFIG, CniError
from ..filelock import FileLock, open_regular
from ..ipam.disk import DEFAULT_DATA_DIR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cluster.names import ClusterNames
    from ..cni.jsonio import JSONObject

FILE = ".dockline-names.json"
LOCK = ".dockline-names.lock"
TMP = FILE + ".tmp"  # one name: writers hold LOCK
VERSION = 2
_MAX_SIZE = 16 << 20

# --- cluster mode ------------------------------------------------------------
# Set by dockline.cluster.bridge for one plugin call when the network spans
# hosts: the registry then also holds other hosts' entries (keys starting
# with "@"), read from etcd after the file, and publishes this host's own
# after writing the file, which keeps only them.  None on a single host.
cluster: ClusterNames | None = None
# -----------------------------------------------------------------------------


def data_dir_problem(data_dir: object) -> str | None:
    if data_dir in ("", None):
        return None
    if not isinstance(data_dir, str) or not os.path.isabs(data_dir):
        return "dataDir must be an absolute path"
    if "\0" in data_dir:
        return "dataDir contains a NUL character"
    return None


class Registry:
    """Open with ``with Registry(network, data_dir) as reg:``; changes are
    saved on a clean exit of the block."""

    def __init__(self, network: str, data_dir: str = "") -> None:
        problem = data_dir_problem(data_dir)
        if problem:
            raise CniError(INVALID_CONFIG, "invalid ipam dataDir", f"{data_dir!r}: {problem}")
        self.dir = os.path.join(data_dir or DEFAULT_DATA_DIR, network)
        self.entries: dict[str, JSONObject] = {}
        self.seq = 0
        self._lock = FileLock(os.path.join(self.dir, LOCK))
        self._dirty = False

    def exists(self) -> bool:
        """Whether anything was ever registered on the network (DEL and GC
        need not take the lock otherwise)."""
        if cluster is not None and cluster.strict:
            return True  # ADD, CHECK: other hosts' entries are in etcd
        for name in (FILE, TMP):  # (a first writer killed mid-write left only TMP)
            try:
                os.lstat(os.path.join(self.dir, name))
                return True
            except OSError:
                continue
        return False

    def __enter__(self) -> Registry:
        self._lock.__enter__()
        try:
            try:  # what a writer killed under this lock left
                os.unlink(os.path.join(self.dir, TMP))
            except FileNotFoundError:
                pass
            self._load()
            if cluster is not None:
                cluster.merge(self)
                if cluster.refresh:
                    cluster.refresh_lines(self)
        except BaseException:
            self._lock.__exit__()
            raise
        return self

    def _load(self) -> None:
        try:
            fd = open_regular(os.path.join(self.dir, FILE), os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            data = os.read(fd, _MAX_SIZE + 1)
        finally:
            os.close(fd)
        if len(data) > _MAX_SIZE:
            return  # unreadable: start over rather than block every ADD
        try:
            doc = jsonio.loads(data)
            entries = doc.get("attachments", {})
            seq = doc.get("seq", 0)
        except (ValueError, AttributeError):
            return  # unreadable: start over rather than block every ADD
        if isinstance(entries, dict):
            self.entries = {k: v for k, v in entries.items() if isinstance(v, dict)}
        self.seq = seq if isinstance(seq, int) else 0

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if exc_type is None and self._dirty:
                self._save()
        finally:
            self._lock.__exit__()

    def save(self) -> None:
        """Write the registry now (the with-block writes it at its end
        anyway): before anything that must be found by it is made."""
        self._save()
        self._dirty = False

    def _save(self) -> None:
        path = os.path.join(self.dir, FILE)
        # One fixed name: writers hold the lock, and what a killed writer
        # left is replaced by the next one instead of piling up.
        tmp = os.path.join(self.dir, TMP)
        data = jsonio.dumps(
            {
                "version": VERSION,
                "seq": self.seq,
                "attachments": self.entries if cluster is None else cluster.local(self.entries),
            }
        ).encode()
        atomic.replace(tmp, path, data)
        if cluster is not None:
            cluster.publish(self)

    def put(self, key: str, entry: JSONObject) -> None:
        self.seq += 1
        entry["seq"] = self.seq
        self.entries[key] = entry
        self._dirty = True

    def remove(self, key: str) -> JSONObject | None:
        self._dirty = True
        return self.entries.pop(key, None)

    def explicit_owner(self, scope: str, name: str, skip: str = "") -> str | None:
        """Who asked for ``name`` explicitly in ``scope``."""
        for key, entry in self.entries.items():
            if key != skip and entry.get("scope", "") == scope and name in entry.get("names", ()):
                return key
        return None

    def owner_of(self, name: str, scope: str = "") -> str | None:
        """Whom ``name`` resolves to in ``scope``: the attachment that asked
        for it explicitly, else the latest registered pod of that name."""
        key = self.explicit_owner(scope, name)
        if key is not None:
            return key
        best, best_seq = None, -1
        for key, entry in self.entries.items():
            if entry.get("scope", "") == scope and entry.get("pod") == name:
                seq = entry.get("seq", 0)
                if isinstance(seq, int) and seq > best_seq:
                    best, best_seq = key, seq
        return best

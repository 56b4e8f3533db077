"""The per-network name registry, kept beside the IPAM store.

It maps each attachment (``containerID:ifname``) to its scope, names,
addresses, hosts file and links.  An entry is ``{"scope", "names", "pod",
"seq", "ips", "hosts", "tag", "links", "netns"}`` (firewall.isolation adds
its own fields).  ``names`` are names asked for explicitly (unique in
their scope); ``pod`` is the Kubernetes pod name, which may be held by
several attachments of a scope, the latest registration (highest ``seq``)
winning.

On disk, ``<dataDir>/<network>/.dockline-names/`` (0700), read and written
under an flock on ``<dataDir>/<network>/.dockline-names.lock`` (the
address store's discipline), one small file per fact, so that a call
reads and writes only what concerns its own attachment and the names it
touches, whatever the number of containers:

- ``e-<key digest>``: the entry (``{"key": key, "entry": {...}}``),
  written whole and renamed into place;
- ``n-<name digest>``: who asked for a name of a scope explicitly;
- ``p-<name digest>/<key digest>``: the attachments holding a pod name;
- ``l-<name digest>/<key digest>``: the attachments linking to a name;
- ``seq``: the last registration's number.

Index files hold the key as a JSON string, so the reference host-local,
which reads every file under its directory looking for
``containerID\\r\\nifname``, never takes one for a reservation.  Index files
are written before the entry that needs them and removed after the entry
stopped needing them, so a killed writer leaves only index files that no
longer check out; every index hit is checked against the entry before it
is believed.  GC, ``items()`` and cluster mode (which publishes this
host's entries to etcd) read every entry.

The format before this one, ``.dockline-names.json`` (one JSON document
of every entry, rewritten whole by every ADD and DEL), is converted on the
first call that takes the lock.  Dot-names are not address reservations
to host-local, ours or the reference's.
"""

from __future__ import annotations

import errno
import os
import stat

from .. import atomic
from ..cni import jsonio
from ..cni.errors import INVALID_CONFIG, IO_FAILURE, CniError
from ..filelock import FileLock
from ..ipam.disk import DEFAULT_DATA_DIR

try:  # as cni.attachment (already loaded there): hashlib costs ~5 ms to import
    from _blake2 import blake2b
except ImportError:  # pragma: no cover
    from hashlib import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..cluster.names import ClusterNames
    from ..cni.jsonio import JSONObject

DIR = ".dockline-names"
LOCK = ".dockline-names.lock"
FILE = ".dockline-names.json"  # the format before DIR: converted, then removed
TMP = FILE + ".tmp"  # what a writer of that format killed mid-write left
_TMP = ".tmp"  # in DIR: one name, writers hold LOCK
_SEQ = "seq"
_MAX_ENTRY = 1 << 20
_MAX_LEGACY = 16 << 20
REMOTE = "@"  # cluster mode: keys of other hosts' entries (in memory only)

# --- cluster mode ------------------------------------------------------------
# Set by dockline.cluster.bridge for one plugin call when the network spans
# hosts: the registry then also holds other hosts' entries (keys starting
# with "@"), read from etcd after the files, and publishes this host's own
# after writing them.  None on a single host.
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


def _digest(*parts: str) -> str:
    return blake2b("\0".join(parts).encode(), digest_size=8).hexdigest()


def _entry_name(key: str) -> str:
    return "e-" + _digest(key)


def _index(key: str, entry: JSONObject) -> set[str]:
    """The index files ``entry`` needs (paths inside DIR)."""
    scope = entry.get("scope", "")
    if not isinstance(scope, str):
        return set()
    kd = _digest(key)
    out = set()
    for name in entry.get("names") or []:
        if isinstance(name, str):
            out.add("n-" + _digest(scope, name))
    pod = entry.get("pod")
    if isinstance(pod, str) and pod:
        out.add(f"p-{_digest(scope, pod)}/{kd}")
    for link in entry.get("links") or []:
        if isinstance(link, list) and link and isinstance(link[0], str):
            out.add(f"l-{_digest(scope, link[0])}/{kd}")
    return out


class Entries:
    """The registry's entries by key, read from their files on first use
    (``reg.entries[key]``).  Entries handed out may be changed in place:
    ``Registry.save`` writes those that changed.  Iterating reads them all
    (GC, cluster mode).  Other hosts' entries (cluster mode) live in memory
    only, under keys starting with ``@``."""

    def __init__(self, registry: Registry) -> None:
        self._reg = registry
        # key -> (entry or None if absent, its bytes as on disk, or b"")
        self.loaded: dict[str, tuple[JSONObject | None, bytes]] = {}
        self.remote: dict[str, JSONObject] = {}

    def _load(self, key: str) -> JSONObject | None:
        if key not in self.loaded:
            self.loaded[key] = self._reg.read_entry(key)
        return self.loaded[key][0]

    def __getitem__(self, key: str) -> JSONObject:
        entry = self.remote.get(key) if key.startswith(REMOTE) else self._load(key)
        if entry is None:
            raise KeyError(key)
        return entry

    def get(self, key: str, default: JSONObject | None = None) -> JSONObject | None:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, entry: JSONObject) -> None:
        if key.startswith(REMOTE):
            self.remote[key] = entry
            return
        self._load(key)
        self.loaded[key] = (entry, self.loaded[key][1])

    def pop(self, key: str, default: JSONObject | None = None) -> JSONObject | None:
        if key.startswith(REMOTE):
            return self.remote.pop(key, default)
        entry = self._load(key)
        if entry is None:
            return default
        self.loaded[key] = (None, self.loaded[key][1])
        return entry

    def keys(self) -> list[str]:
        """Every key (reads every entry file)."""
        for key in self._reg.stored_keys():
            self._load(key)
        local = [k for k, (e, _) in self.loaded.items() if e is not None]
        return sorted(local) + list(self.remote)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def items(self) -> list[tuple[str, JSONObject]]:
        return [(k, self[k]) for k in self.keys()]

    def values(self) -> list[JSONObject]:
        return [self[k] for k in self.keys()]


class Registry:
    """Open with ``with Registry(network, data_dir) as reg:``; changes are
    saved on a clean exit of the block."""

    def __init__(self, network: str, data_dir: str = "") -> None:
        problem = data_dir_problem(data_dir)
        if problem:
            raise CniError(INVALID_CONFIG, "invalid ipam dataDir", f"{data_dir!r}: {problem}")
        self.dir = os.path.join(data_dir or DEFAULT_DATA_DIR, network)
        self.entries = Entries(self)
        self.seq = 0
        self._seq_on_disk = 0
        self._lock = FileLock(os.path.join(self.dir, LOCK))
        self._fd = -1  # DIR, while the lock is held

    def exists(self) -> bool:
        """Whether anything was ever registered on the network (DEL and GC
        need not take the lock otherwise)."""
        if cluster is not None and cluster.strict:
            return True  # ADD, CHECK: other hosts' entries are in etcd
        for name in (DIR, FILE, TMP):
            try:
                os.lstat(os.path.join(self.dir, name))
                return True
            except OSError:
                continue
        return False

    def __enter__(self) -> Registry:
        self._lock.__enter__()
        try:
            self._fd = self._open_dir()
            try:  # what a writer killed under this lock left
                os.unlink(_TMP, dir_fd=self._fd)
            except FileNotFoundError:
                pass
            seq = self._read(_SEQ, 64)
            self.seq = self._seq_on_disk = int(seq) if seq and seq.strip().isdigit() else 0
            self._convert_legacy()
            if cluster is not None:
                cluster.merge(self)
                if cluster.refresh:
                    cluster.refresh_lines(self)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if exc_type is None:
                self._save()
        finally:
            self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._lock.__exit__()

    # --- files ---------------------------------------------------------------

    def _open_dir(self) -> int:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        path = os.path.join(self.dir, DIR)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise CniError(IO_FAILURE, "the names registry is not a directory", path) from None
            raise
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            os.close(fd)
            raise CniError(IO_FAILURE, "the names registry may be written by others", path)
        return fd

    def _read(self, name: str, limit: int, dir_fd: int | None = None) -> bytes | None:
        """Up to ``limit`` bytes of regular file ``name`` (None: absent or
        not a regular file)."""
        dfd = self._fd if dir_fd is None else dir_fd
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.ENOTDIR):
                return None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, limit)
        finally:
            os.close(fd)

    def _write(self, name: str, data: bytes) -> None:
        atomic.replace(_TMP, name, data, dir_fd=self._fd)

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self._fd)
        except FileNotFoundError:
            pass

    def read_entry(self, key: str) -> tuple[JSONObject | None, bytes]:
        """The entry of ``key`` and its file's bytes (None, b"": none)."""
        data = self._read(_entry_name(key), _MAX_ENTRY) if self._fd >= 0 else None
        return _decoded(key, data or b"")

    def stored_keys(self) -> list[str]:
        """Every key with an entry file (GC: reads them all)."""
        keys = []
        for name in os.listdir(self._fd):
            if not name.startswith("e-"):
                continue
            data = self._read(name, _MAX_ENTRY)
            try:
                doc = jsonio.loads(data or b"")
            except ValueError:
                continue
            key = doc.get("key") if isinstance(doc, dict) else None
            if isinstance(key, str) and _entry_name(key) == name:
                keys.append(key)
        return keys

    def _holders(self, directory: str) -> list[str]:
        """The keys listed in index directory ``p-...`` or ``l-...``."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            dfd = os.open(directory, flags, dir_fd=self._fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return []
            raise
        try:
            names = os.listdir(dfd)
        finally:
            os.close(dfd)
        keys = []
        for name in names:
            key = self._key_in(f"{directory}/{name}")
            if key is not None and _digest(key) == name:
                keys.append(key)
        return keys

    def _key_in(self, name: str) -> str | None:
        data = self._read(name, 4096)
        try:
            key = jsonio.loads(data) if data else None
        except ValueError:
            return None
        return key if isinstance(key, str) else None

    # --- saving --------------------------------------------------------------

    def save(self) -> None:
        """Write what changed now (the with-block writes it at its end
        anyway): before anything that must be found by it is made."""
        self._save()

    def _save(self) -> None:
        changed: list[str] = []
        for key, (entry, before) in list(self.entries.loaded.items()):
            data = b"" if entry is None else self._encode(key, entry)
            if data == before:
                continue
            old, _ = _decoded(key, before)
            self._store(key, entry, old)
            self.entries.loaded[key] = (entry, data)
            changed.append(key)
        if self.seq != self._seq_on_disk:
            self._write(_SEQ, str(self.seq).encode())
            self._seq_on_disk = self.seq
        if changed and cluster is not None:
            cluster.publish(self)

    @staticmethod
    def _encode(key: str, entry: JSONObject) -> bytes:
        return jsonio.dumps({"key": key, "entry": entry}).encode()

    def _store(self, key: str, entry: JSONObject | None, old: JSONObject | None) -> None:
        """Index files first, the entry, then the index files it no longer
        needs (module docstring)."""
        new_index = _index(key, entry) if entry is not None else set()
        old_index = _index(key, old) if old is not None else set()
        value = jsonio.dumps(key).encode()
        for path in sorted(new_index - old_index):
            directory, _, _ = path.rpartition("/")
            if directory:
                try:
                    os.mkdir(directory, 0o700, dir_fd=self._fd)
                except FileExistsError:
                    pass
            if self._read(path, 4096) != value:
                self._write(path, value)
        if entry is not None:
            self._write(_entry_name(key), self._encode(key, entry))
        else:
            self._unlink(_entry_name(key))
        for path in sorted(old_index - new_index):
            if path.startswith("n-") and self._key_in(path) != key:
                continue  # the name has another owner now
            self._unlink(path)
            directory, _, _ = path.rpartition("/")
            if directory:
                try:
                    os.rmdir(directory, dir_fd=self._fd)
                except OSError:
                    pass  # others still hold or link to that name

    def _convert_legacy(self) -> None:
        """The one-document format (module docstring) becomes files."""
        parent = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                os.unlink(TMP, dir_fd=parent)
            except FileNotFoundError:
                pass
            data = self._read(FILE, _MAX_LEGACY + 1, parent)
            if data is None:
                return
            entries: object = {}
            try:
                doc = jsonio.loads(data) if len(data) <= _MAX_LEGACY else {}
                entries = doc.get("attachments", {})
                seq = doc.get("seq", 0)
                self.seq = max(self.seq, seq if isinstance(seq, int) else 0)
            except (ValueError, AttributeError):
                pass  # unreadable: start over rather than block every ADD
            for key, entry in entries.items() if isinstance(entries, dict) else []:
                fresh = isinstance(key, str) and key and not key.startswith(REMOTE)
                if fresh and isinstance(entry, dict) and self.entries.get(key) is None:
                    self.entries[key] = entry
            self._save()
            os.unlink(FILE, dir_fd=parent)
        finally:
            os.close(parent)

    # --- changes and questions -------------------------------------------------

    def put(self, key: str, entry: JSONObject) -> None:
        self.seq += 1
        entry["seq"] = self.seq
        self.entries[key] = entry

    def remove(self, key: str) -> JSONObject | None:
        return self.entries.pop(key, None)

    def explicit_owner(self, scope: str, name: str, skip: str = "") -> str | None:
        """Who asked for ``name`` explicitly in ``scope``."""
        key = self._key_in("n-" + _digest(scope, name))
        candidates = [key] if key is not None else []
        candidates += list(self.entries.remote)
        for candidate in candidates:
            entry = self.entries.get(candidate)
            if (
                candidate != skip
                and entry is not None
                and entry.get("scope", "") == scope
                and name in (entry.get("names") or ())
            ):
                return candidate
        return None

    def owner_of(self, name: str, scope: str = "") -> str | None:
        """Whom ``name`` resolves to in ``scope``: the attachment that asked
        for it explicitly, else the latest registered pod of that name."""
        key = self.explicit_owner(scope, name)
        if key is not None:
            return key
        best, best_seq = None, -1
        holders = self._holders("p-" + _digest(scope, name)) + list(self.entries.remote)
        for key in holders:
            entry = self.entries.get(key)
            if entry is not None and entry.get("scope", "") == scope and entry.get("pod") == name:
                seq = entry.get("seq", 0)
                if isinstance(seq, int) and seq > best_seq:
                    best, best_seq = key, seq
        return best

    def dependants(self, scope: str, names: list[str], skip: str = "") -> list[str]:
        """This host's attachments of ``scope`` linking to one of ``names``."""
        found: list[str] = []
        for name in names:
            for key in self._holders("l-" + _digest(scope, name)):
                entry = self.entries.get(key)
                if (
                    key != skip
                    and key not in found
                    and entry is not None
                    and entry.get("scope", "") == scope
                    and any(link[0] == name for link in entry.get("links") or [])
                ):
                    found.append(key)
        return found


def _decoded(key: str, data: bytes) -> tuple[JSONObject | None, bytes]:
    if not data:
        return None, data
    try:
        doc = jsonio.loads(data)
    except ValueError:
        return None, data
    entry = doc.get("entry") if isinstance(doc, dict) and doc.get("key") == key else None
    return (entry if isinstance(entry, dict) else None), data

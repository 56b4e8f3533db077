"""What libcni does for a runtime, in Python: find a network's config,
negotiate its version, build each plugin's config (name, cniVersion,
prevResult, the declared capabilities only), run the chain, and keep the
result cache in libcni's own format and place, so Go's cnitool (or any
libcni runtime) and ``dockline cnitool`` can delete each other's
attachments.

Not on the plugin hot path: plain ``json``/``subprocess`` are fine here.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass, field

from ..atomic import write_beside
from ..cni import result as cni_result
from ..cni.errors import CniError
from ..cni.skel import ifname_problem, valid_identifier
from ..cni.version import LATEST, SUPPORTED
from ..cni.version import key as version_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cni.jsonio import JSONObject

DEFAULT_NETCONFPATH = "/etc/cni/net.d"
DEFAULT_CNI_PATH = "/opt/cni/bin"
CACHE_DIR = "/var/lib/cni"
CACHE_KIND = "cniCacheV1"
VALID_ATTACHMENTS = "cni.dev/valid-attachments"

# The spec's names for its error codes (and dockline's own 100-103).
CODE_NAMES = {
    1: "incompatible CNI version",
    2: "unsupported field in network configuration",
    3: "container unknown or does not exist",
    4: "invalid necessary environment variables",
    5: "I/O failure",
    6: "failed to decode content",
    7: "invalid network config",
    11: "try again later",
    50: "plugin not available",
    51: "plugin not available, limited connectivity",
    100: "address or port already in use",
    101: "something ADD made is missing",
    102: "already exists",
    103: "the kernel refused a change",
    999: "internal error",
}


class ConfigError(Exception):
    """A network config that cannot be found or read (libcni's errors)."""


class PluginError(Exception):
    """A plugin answered with a CNI error (or failed without one)."""

    def __init__(
        self,
        command: str,
        plugin_type: str,
        index: int,
        code: int,
        msg: str,
        details: str = "",
        raw: str = "",
    ) -> None:
        super().__init__(msg)
        self.command = command
        self.plugin_type = plugin_type
        self.index = index
        self.code = code
        self.msg = msg
        self.details = details
        self.raw = raw  # the plugin's stdout, the error JSON as it printed it

    def describe(self) -> str:
        name = CODE_NAMES.get(self.code, "plugin-specific error")
        lines = [
            f"{self.command} failed in plugin #{self.index} ({self.plugin_type!r}): "
            f"{self.msg or '(no message)'}",
            f"  code:    {self.code} ({name})",
        ]
        if self.details:
            lines.append(f"  details: {self.details}")
        return "\n".join(lines)


# --- config discovery ------------------------------------------------------


@dataclass
class NetworkList:
    name: str
    cni_version: str
    plugins: list[JSONObject]
    raw: bytes  # the bytes libcni caches as "config"
    path: str = ""
    disable_check: bool = False
    disable_gc: bool = False
    upconverted: bool = False


def _truthy(value: object) -> bool:
    """libcni accepts disableCheck/disableGC as a bool or "true"/"false"."""
    if isinstance(value, str):
        return value.lower() == "true"
    return value is True


def negotiate_version(conf: JSONObject) -> str:
    """libcni's choice: the highest of ``cniVersions`` and ``cniVersion``
    that is not newer than what this runtime implements."""
    version = conf.get("cniVersion") or ""
    if not isinstance(version, str):
        raise ConfigError(f"invalid cniVersion {version!r}")
    versions = conf.get("cniVersions")
    if versions is None:
        return version
    if not isinstance(versions, list):
        raise ConfigError(f"invalid type for cniVersions: {versions!r}")
    candidates = []
    for i, v in enumerate(versions + ([version] if version else [])):
        if not isinstance(v, str):
            raise ConfigError(f"invalid type for cniVersions index {i}: {v!r}")
        try:
            if version_key(v) <= version_key(LATEST):
                candidates.append(v)
        except ValueError:
            raise ConfigError(f"invalid cniVersions entry {v!r} at index {i}") from None
    return max(candidates, key=version_key) if candidates else version


def list_from_bytes(data: bytes, path: str = "") -> NetworkList:
    try:
        conf = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{path or 'config'}: error parsing configuration list: {exc}") from None
    if not isinstance(conf, dict):
        raise ConfigError(f"{path or 'config'}: error parsing configuration list: not an object")
    name = conf.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path or 'config'}: error parsing configuration list: no name")
    plugins = conf.get("plugins")
    if plugins is None:
        raise ConfigError(f"{path or 'config'}: error parsing configuration list: no 'plugins' key")
    if not isinstance(plugins, list) or not plugins:
        raise ConfigError(
            f"{path or 'config'}: error parsing configuration list: no plugins in list"
        )
    for i, plugin in enumerate(plugins):
        if (
            not isinstance(plugin, dict)
            or not isinstance(plugin.get("type"), str)
            or not plugin["type"]
        ):
            raise ConfigError(f"{path or 'config'}: plugin #{i}: missing 'type'")
    return NetworkList(
        name=name,
        cni_version=negotiate_version(conf),
        plugins=plugins,
        raw=data,
        path=path,
        disable_check=_truthy(conf.get("disableCheck")),
        disable_gc=_truthy(conf.get("disableGC")),
    )


def list_from_single(data: bytes, path: str = "") -> NetworkList:
    """A single-plugin .conf/.json lifted into a list, as libcni's
    ConfListFromConf does (and what it caches as the config)."""
    try:
        conf = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{path or 'config'}: error parsing configuration: {exc}") from None
    if not isinstance(conf, dict) or not isinstance(conf.get("type"), str) or not conf["type"]:
        raise ConfigError(f"{path or 'config'}: error parsing configuration: missing 'type'")
    lifted = {
        "cniVersion": conf.get("cniVersion", ""),
        "name": conf.get("name", ""),
        "plugins": [conf],
    }
    raw = json.dumps(lifted, separators=(",", ":"), sort_keys=True).encode()
    net = list_from_bytes(raw, path)
    net.upconverted = True
    return net


def conf_files(directory: str, extensions: tuple[str, ...]) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    return [
        os.path.join(directory, n)
        for n in names
        if os.path.splitext(n)[1] in extensions and os.path.isfile(os.path.join(directory, n))
    ]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None


def load_file(path: str) -> NetworkList:
    data = _read(path)
    if path.endswith(".conflist"):
        return list_from_bytes(data, path)
    return list_from_single(data, path)


def load_network(directory: str, name: str) -> NetworkList:
    """libcni's LoadConfList: ``*.conflist`` in file name order, then
    ``*.conf``/``*.json`` lifted into a list; a file that cannot be read
    on the way is an error, as in libcni."""
    for path in conf_files(directory, (".conflist",)):
        net = list_from_bytes(_read(path), path)
        if net.name == name:
            return net
    for path in conf_files(directory, (".conf", ".json")):
        net = list_from_single(_read(path), path)
        if net.name == name:
            return net
    raise ConfigError(f"no net configuration with name {name!r} in {directory}")


def all_networks(directory: str) -> list[tuple[str, NetworkList | None, str]]:
    """(path, network or None, error) of every config file, for listings:
    one broken file must not hide the others."""
    out: list[tuple[str, NetworkList | None, str]] = []
    for path in conf_files(directory, (".conflist",)) + conf_files(directory, (".conf", ".json")):
        try:
            out.append((path, load_file(path), ""))
        except ConfigError as exc:
            out.append((path, None, str(exc)))
    return out


# --- runtime config --------------------------------------------------------


@dataclass
class RuntimeConf:
    container_id: str
    netns: str
    ifname: str
    args: list[list[str]] = field(default_factory=list)  # [[key, value], ...]
    cap_args: JSONObject = field(default_factory=dict)

    def validate(self, network: str) -> None:
        """libcni checks these before calling any plugin."""
        if not valid_identifier(network):
            raise ConfigError(
                f"invalid network name {network!r}: must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
            )
        if not valid_identifier(self.container_id):
            raise ConfigError(
                f"invalid container ID {self.container_id!r}: "
                "must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
            )
        problem = ifname_problem(self.ifname)
        if problem:
            raise ConfigError(f"invalid interface name {self.ifname!r}: {problem}")

    @property
    def args_env(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.args)


def parse_cni_args(text: str) -> list[list[str]]:
    """CNI_ARGS 'K=V;K=V' as cnitool splits it (each pair exactly K=V)."""
    pairs = []
    for item in text.split(";") if text else []:
        parts = item.split("=")
        if len(parts) != 2:
            raise ValueError(f"invalid CNI_ARGS pair {item!r}: expected KEY=VALUE")
        pairs.append(parts)
    return pairs


def plugin_config(
    net: NetworkList, plugin: JSONObject, rt: RuntimeConf | None, prev: JSONObject | None
) -> JSONObject:
    """The config one plugin gets: its own object with the network's name
    and version injected, the previous result, and a runtimeConfig holding
    only the capability args it declares (libcni's buildOneConfig)."""
    conf = dict(plugin)
    conf["name"] = net.name
    conf["cniVersion"] = net.cni_version
    if prev is not None:
        conf["prevResult"] = prev
    if rt is not None:
        caps = plugin.get("capabilities")
        declared = caps if isinstance(caps, dict) else {}
        runtime = {k: v for k, v in rt.cap_args.items() if declared.get(k) is True}
        if runtime:
            conf["runtimeConfig"] = runtime
    return conf


# --- running plugins ---------------------------------------------------------


def cni_path() -> list[str]:
    return [p for p in os.environ.get("CNI_PATH", DEFAULT_CNI_PATH).split(":") if p]


def find_plugin(plugin_type: str, path: list[str]) -> str | None:
    if not plugin_type or "/" in plugin_type or plugin_type in (".", ".."):
        return None
    for directory in path:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def exec_plugin(
    command: str, plugin_type: str, index: int, conf: JSONObject, rt: RuntimeConf | None
) -> JSONObject | None:
    """One plugin call with the caller's environment plus CNI_*, as libcni
    does; the plugin's stderr goes to ours."""
    path = cni_path()
    exe = find_plugin(plugin_type, path)
    if exe is None:
        raise PluginError(
            command,
            plugin_type,
            index,
            7,
            f"failed to find plugin {plugin_type!r} in path",
            f"CNI_PATH={':'.join(path)}",
        )
    env = dict(os.environ)
    env.update(
        {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": rt.container_id if rt else "",
            "CNI_NETNS": rt.netns if rt else "",
            "CNI_ARGS": rt.args_env if rt else "",
            "CNI_IFNAME": rt.ifname if rt else "",
            "CNI_PATH": ":".join(path),
        }
    )
    proc = subprocess.run([exe], input=json.dumps(conf).encode(), env=env, stdout=subprocess.PIPE)
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        try:
            err = json.loads(out)
            code, msg, details = (
                int(err.get("code", 999)),
                str(err.get("msg", "")),
                str(err.get("details", "")),
            )
        except (ValueError, AttributeError, TypeError):
            code, msg, details = 999, f"plugin exited with status {proc.returncode}", out[:500]
        raise PluginError(command, plugin_type, index, code, msg, details, out)
    if command != "ADD":
        return None
    try:
        result = json.loads(out)
    except ValueError as exc:
        raise PluginError(
            command, plugin_type, index, 6, "plugin returned an unreadable result", str(exc), out
        ) from None
    if not isinstance(result, dict):
        raise PluginError(
            command,
            plugin_type,
            index,
            6,
            "plugin returned an unreadable result",
            "not a JSON object",
            out,
        )
    return result


# --- the result cache ----------------------------------------------------------


def results_dir(cache_dir: str = CACHE_DIR) -> str:
    return os.path.join(cache_dir, "results")


def cache_path(network: str, container_id: str, ifname: str, cache_dir: str = CACHE_DIR) -> str:
    return os.path.join(results_dir(cache_dir), f"{network}-{container_id}-{ifname}")


def write_cache(
    net: NetworkList, rt: RuntimeConf, result: JSONObject | None, cache_dir: str = CACHE_DIR
) -> str:
    """libcni's cachedInfo, field for field (Go's []byte is base64);
    written whole, then renamed into place."""
    entry: JSONObject = {
        "kind": CACHE_KIND,
        "containerId": rt.container_id,
        "config": base64.b64encode(net.raw).decode(),
        "ifName": rt.ifname,
        "networkName": net.name,
        "netns": rt.netns,
    }
    if rt.args:
        entry["cniArgs"] = [list(p) for p in rt.args]
    if rt.cap_args:
        entry["capabilityArgs"] = rt.cap_args
    entry["result"] = result
    path = cache_path(net.name, rt.container_id, rt.ifname, cache_dir)
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    write_beside(path, json.dumps(entry).encode(), 0o600)
    return path


def read_cache(
    network: str, container_id: str, ifname: str, cache_dir: str = CACHE_DIR
) -> JSONObject | None:
    """The cached entry, or None when there is none or it is unreadable
    (libcni ignores a cache it cannot read)."""
    try:
        with open(cache_path(network, container_id, ifname, cache_dir), "rb") as f:
            entry = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("kind") == CACHE_KIND else None


def delete_cache(network: str, container_id: str, ifname: str, cache_dir: str = CACHE_DIR) -> None:
    try:
        os.unlink(cache_path(network, container_id, ifname, cache_dir))
    except FileNotFoundError:
        pass


def cached_entries(network: str | None = None, cache_dir: str = CACHE_DIR) -> list[JSONObject]:
    """Every cache entry (of one network), found by its networkName field
    as libcni's GetCachedAttachments does (a file-name prefix would also
    match networks whose name starts the same)."""
    out: list[JSONObject] = []
    directory = results_dir(cache_dir)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return out
    for name in names:
        if name.startswith("."):
            continue
        try:
            with open(os.path.join(directory, name), "rb") as f:
                entry = json.loads(f.read())
        except (OSError, ValueError):
            continue
        if not isinstance(entry, dict) or entry.get("kind") != CACHE_KIND:
            continue
        if network is not None and entry.get("networkName") != network:
            continue
        if isinstance(entry.get("containerId"), str) and isinstance(entry.get("ifName"), str):
            out.append(entry)
    return out


def cached_config(entry: JSONObject) -> NetworkList | None:
    """The network config an entry was added with (for DEL when the
    config file is gone)."""
    try:
        return list_from_bytes(base64.b64decode(entry.get("config") or ""), "cache")
    except (ConfigError, ValueError):
        return None


def as_version(result: JSONObject | None, version: str) -> JSONObject | None:
    """A cached result in the config's version, as libcni converts it;
    passed on unchanged when it cannot be converted."""
    if not result or result.get("cniVersion") == version or version not in SUPPORTED:
        return result
    try:
        return cni_result.render(cni_result.parse(result, version), version)
    except (CniError, ValueError):
        return result


# --- the operations --------------------------------------------------------------


def _at_least(version: str, minimum: str) -> bool:
    try:
        return version_key(version or "0.1.0") >= version_key(minimum)
    except ValueError:
        return False


def add(net: NetworkList, rt: RuntimeConf, cache_dir: str = CACHE_DIR) -> JSONObject | None:
    rt.validate(net.name)
    prev = None
    for i, plugin in enumerate(net.plugins):
        prev = exec_plugin("ADD", plugin["type"], i, plugin_config(net, plugin, rt, prev), rt)
    write_cache(net, rt, prev, cache_dir)
    return prev


def check(net: NetworkList, rt: RuntimeConf, cache_dir: str = CACHE_DIR) -> None:
    rt.validate(net.name)
    if not _at_least(net.cni_version, "0.4.0"):
        raise ConfigError(
            f"configuration version {net.cni_version!r} does not support the CHECK command"
        )
    if net.disable_check:
        return
    cached = read_cache(net.name, rt.container_id, rt.ifname, cache_dir) or {}
    prev = as_version(cached.get("result"), net.cni_version)
    for i, plugin in enumerate(net.plugins):
        exec_plugin("CHECK", plugin["type"], i, plugin_config(net, plugin, rt, prev), rt)


def delete(net: NetworkList, rt: RuntimeConf, cache_dir: str = CACHE_DIR) -> None:
    rt.validate(net.name)
    prev = None
    if _at_least(net.cni_version, "0.4.0"):
        cached = read_cache(net.name, rt.container_id, rt.ifname, cache_dir) or {}
        prev = as_version(cached.get("result"), net.cni_version)
    for i in range(len(net.plugins) - 1, -1, -1):
        plugin = net.plugins[i]
        exec_plugin("DEL", plugin["type"], i, plugin_config(net, plugin, rt, prev), rt)
    delete_cache(net.name, rt.container_id, rt.ifname, cache_dir)


def valid_attachments(network: str, cache_dir: str = CACHE_DIR) -> list[JSONObject]:
    return [
        {"containerID": e["containerId"], "ifname": e["ifName"]}
        for e in cached_entries(network, cache_dir)
    ]


def gc(net: NetworkList, valid: list[JSONObject]) -> bool:
    """GC on every plugin with the given valid attachments; False when the
    config's version (or disableGC) means there is nothing to do."""
    if net.disable_gc or not _at_least(net.cni_version, "1.1.0"):
        return False
    errors: list[PluginError] = []
    for i, plugin in enumerate(net.plugins):
        conf = plugin_config(net, plugin, None, None)
        conf[VALID_ATTACHMENTS] = valid
        try:
            exec_plugin("GC", plugin["type"], i, conf, None)
        except PluginError as exc:  # libcni runs them all, then reports
            errors.append(exc)
    if errors:
        raise errors[0]
    return True


def status(net: NetworkList) -> bool:
    if not _at_least(net.cni_version, "1.1.0"):
        return False
    for i, plugin in enumerate(net.plugins):
        exec_plugin("STATUS", plugin["type"], i, plugin_config(net, plugin, None, None), None)
    return True

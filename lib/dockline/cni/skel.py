"""The dispatcher every plugin hands its commands to.

It owns the protocol: reads CNI_* and stdin, validates them, checks the
config's cniVersion against the command, calls the plugin's handler, and
prints either the result in the config's version or the error JSON.
Plugins never print or exit themselves.
"""

from __future__ import annotations

import os
import sys

from . import jsonio
from . import result as cni_result
from .attachment import Attachment
from .errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INTERNAL,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    IO_FAILURE,
    CniError,
)
from .gojson import fold_fields
from .version import DEFAULT, LATEST, SUPPORTED, at_least, require_supported

TYPE_CHECKING = False  # typing costs ~7 ms of start-up; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .jsonio import JSONObject

    Handler = Callable[["CmdArgs"], JSONObject | None]

# Variables each command cannot do without (CNI_NETNS is optional on DEL:
# the container may be gone).
_REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": (),
    "STATUS": (),
}
_MIN_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}
_ID_EXTRA = frozenset("_.-")
# Capability names (runtimeConfig keys) dockline reads or passes on; a
# runtime's spelling is matched case-insensitively, as Go decodes it.
CAPABILITIES = (
    "portMappings",
    "ips",
    "mac",
    "aliases",
    "links",
    "hostsFile",
    "ipRanges",
    "bandwidth",
    "dns",
    "infinibandGUID",
    "deviceID",
    "cgroupPath",
    "io.kubernetes.cri.pod-annotations",
)
_IFNAME_MAX = 15


def valid_identifier(value: str) -> bool:
    """Container IDs and network names: ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"""
    if not value or not value.isascii() or not value[0].isalnum():
        return False
    return all(c.isalnum() or c in _ID_EXTRA for c in value)


def ifname_problem(name: str) -> str | None:
    """Why an interface name is unusable, or None when it is fine."""
    if not name:
        return "is empty"
    if len(name.encode()) > _IFNAME_MAX:
        return f"is longer than {_IFNAME_MAX} bytes"
    if name in (".", ".."):
        return "is '.' or '..'"
    for ch in name:
        if ch in "/:" or ch.isspace() or not ch.isprintable():
            return f"contains the invalid character {ch!r}"
    return None


class CmdArgs:
    """One plugin invocation: environment, raw stdin and decoded config."""

    __slots__ = (
        "_args_pairs",
        "_attachment",
        "args",
        "command",
        "config",
        "container_id",
        "ifname",
        "netns",
        "path",
        "stdin",
        "version",
    )

    def __init__(
        self, command: str, env: Mapping[str, str], stdin: bytes, config: JSONObject, version: str
    ) -> None:
        self.command = command
        self.container_id: str = env.get("CNI_CONTAINERID", "")
        self.netns: str = env.get("CNI_NETNS", "")
        self.ifname: str = env.get("CNI_IFNAME", "")
        self.args: str = env.get("CNI_ARGS", "")
        self.path: list[str] = [p for p in env.get("CNI_PATH", "").split(":") if p]
        self.stdin = stdin
        self.config = config
        self.version = version
        self._args_pairs: dict[str, str] | None = None
        self._attachment: Attachment | None = None

    def for_command(self, command: str) -> CmdArgs:
        """The same invocation with another command (for delegation)."""
        sub = CmdArgs.__new__(CmdArgs)
        for name in CmdArgs.__slots__:
            setattr(sub, name, getattr(self, name))
        sub.command = command
        return sub

    @property
    def network(self) -> str:
        name: str = self.config["name"]  # checked by run() before any handler
        return name

    @property
    def attachment(self) -> Attachment:
        """This call's (network, container ID, ifname) and its names."""
        if self._attachment is None:
            self._attachment = Attachment(self.network, self.container_id, self.ifname)
        return self._attachment

    @property
    def prev_result(self) -> JSONObject | None:
        """The previous plugin's result (any version), in internal form."""
        prev = fold_fields(self.config, ("prevResult",)).get("prevResult")
        if not prev:
            return None
        return cni_result.parse(prev, self.version)

    @property
    def runtime_config(self) -> JSONObject:
        value = self.config.get("runtimeConfig") or {}
        if not isinstance(value, dict):
            raise CniError(INVALID_CONFIG, "invalid runtimeConfig", "not a JSON object")
        return fold_fields(value, CAPABILITIES)

    @property
    def args_cni(self) -> JSONObject:
        """The config's ``args.cni`` object (the preferred form of CNI_ARGS)."""
        args = self.config.get("args")
        if args is None:
            return {}
        if not isinstance(args, dict):
            raise CniError(INVALID_CONFIG, "invalid args", "not a JSON object")
        value = args.get("cni")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise CniError(INVALID_CONFIG, "invalid args.cni", "not a JSON object")
        return value

    def cni_args(self, known: tuple[str, ...]) -> dict[str, str]:
        """CNI_ARGS as a dict; keys outside ``known`` are an error unless
        IgnoreUnknown is set, as the reference's types.LoadArgs does."""
        if self._args_pairs is None:  # parsed once, whoever asks first
            self._args_pairs = _parse_cni_args(self.args)
        pairs = dict(self._args_pairs)
        ignore = pairs.pop("IgnoreUnknown", "").lower() in ("1", "true")
        unknown = [k for k in pairs if k not in known]
        if unknown and not ignore:
            raise CniError(
                INVALID_ENVIRONMENT,
                "unknown CNI_ARGS",
                f"{', '.join(sorted(unknown))} (set IgnoreUnknown=1 to allow them)",
            )
        return {k: v for k, v in pairs.items() if k in known}


def _parse_cni_args(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CniError(
                INVALID_ENVIRONMENT,
                "invalid CNI_ARGS",
                f"{item!r} is not of the form KEY=VALUE",
            )
        pairs[name] = value
    return pairs


def _env_problem(value: str) -> str | None:
    """Why a CNI_* value is unusable: bytes that are not UTF-8 (Python keeps
    them as surrogates) or control characters, which no path, name or
    firewall token may carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if not value.isprintable():
        return "contains a control character"
    return None


def _check_env(command: str, env: Mapping[str, str]) -> None:
    for name in sorted(k for k in env if k.startswith("CNI_")):
        problem = _env_problem(env[name])
        if problem:
            raise CniError(INVALID_ENVIRONMENT, f"invalid {name}", f"the value {problem}")
    missing = [name for name in _REQUIRED_ENV[command] if not env.get(name)]
    if missing:
        raise CniError(
            INVALID_ENVIRONMENT, "required environment variables missing", " ".join(missing)
        )
    cid = env.get("CNI_CONTAINERID")
    if cid is not None and command != "GC" and command != "STATUS" and not valid_identifier(cid):
        raise CniError(
            INVALID_ENVIRONMENT,
            "invalid CNI_CONTAINERID",
            f"{cid!r} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
        )
    ifname = env.get("CNI_IFNAME")
    if ifname is not None and command in ("ADD", "DEL", "CHECK"):
        problem = ifname_problem(ifname)
        if problem:
            raise CniError(INVALID_ENVIRONMENT, "invalid CNI_IFNAME", f"{ifname!r} {problem}")


def _decode_config(stdin: bytes) -> JSONObject:
    try:
        config = jsonio.loads(stdin)
    except jsonio.DecodeError as exc:
        raise CniError(DECODE_FAILURE, "failed to decode network config", str(exc)) from None
    if not isinstance(config, dict):
        raise CniError(DECODE_FAILURE, "failed to decode network config", "not a JSON object")
    return config


def _config_version(config: JSONObject) -> str:
    version = config.get("cniVersion") or DEFAULT
    if not isinstance(version, str):
        raise CniError(
            DECODE_FAILURE, "failed to decode network config", "cniVersion is not a string"
        )
    return version


def _check_name(config: JSONObject) -> None:
    name = config.get("name")
    if not name:
        raise CniError(INVALID_CONFIG, "missing network name")
    if not isinstance(name, str) or not valid_identifier(name):
        raise CniError(
            INVALID_CONFIG,
            "invalid network name",
            f"{name!r} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
        )


def _read_stdin() -> bytes:
    try:
        return sys.stdin.buffer.read()
    except OSError as exc:
        raise CniError(IO_FAILURE, "failed to read stdin", str(exc)) from None


def _emit(obj: JSONObject) -> None:
    sys.stdout.write(jsonio.dumps(obj) + "\n")
    sys.stdout.flush()


def _version_info() -> JSONObject:
    return {"cniVersion": LATEST, "supportedVersions": list(SUPPORTED)}


def run(handlers: dict[str, Handler], about: str) -> int:
    """Serve one invocation; returns the process exit code."""
    env = os.environ
    command = env.get("CNI_COMMAND", "")
    if not command:
        sys.stderr.write(f"{about}\nCNI protocol versions supported: {', '.join(SUPPORTED)}\n")
        return 0
    reply_version = LATEST
    try:
        if command == "VERSION":
            _emit(_version_info())
            return 0
        if command not in _REQUIRED_ENV:
            raise CniError(INVALID_ENVIRONMENT, "unknown CNI_COMMAND", ascii(command))
        _check_env(command, env)
        stdin = _read_stdin()
        config = _decode_config(stdin)
        version = _config_version(config)
        try:
            require_supported(version)
        except CniError:
            if command != "DEL":
                raise
            # DEL must clean up whatever the config's version: a runtime
            # that cannot delete its containers leaks them for good.
            version = LATEST
        reply_version = version
        _check_name(config)
        minimum = _MIN_VERSION.get(command)
        if minimum and not at_least(version, minimum):
            raise CniError(
                INCOMPATIBLE_VERSION,
                "incompatible CNI versions",
                f"{command} needs cniVersion {minimum} or later, config is {version}",
            )
        handler = handlers.get(command)
        request = CmdArgs(command, env, stdin, config, version)
        out = handler(request) if handler else None
        if command == "ADD":
            if out is None:
                raise CniError(INTERNAL, "plugin produced no result for ADD")
            _emit(cni_result.render(out, version))
        return 0
    except CniError as err:
        _fail(err, reply_version, about)
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(
            CniError(IO_FAILURE, "I/O failure", f"{exc.strerror or exc}{where}"),
            reply_version,
            about,
        )
        return 1
    except Exception as exc:  # a bug: answer in CNI form, keep stdout clean
        bug = CniError(INTERNAL, "internal error", f"{type(exc).__name__}: {exc}")
        if env.get("DOCKLINE_DEBUG"):
            import traceback

            traceback.print_exc()
        _fail(bug, reply_version, about)
        return 1


def _fail(err: CniError, version: str, about: str) -> None:
    try:
        _emit(err.to_dict(version))
        sys.stderr.write(f"{about}: {err}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # the runtime closed our stdout or stderr: the exit status still tells

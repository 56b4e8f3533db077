"""Delegating to another plugin (IPAM) found in CNI_PATH.

The delegate gets the whole config and the same environment, with
CNI_COMMAND set to the delegated command, as the reference pkg/ipam does.
When the executable found is one of dockline's own launchers, the plugin
is run in this process instead: same code, same result, no second Python
start-up (~15 ms) on every container start.
"""

from __future__ import annotations

import os

from . import jsonio
from . import result as cni_result
from .errors import DECODE_FAILURE, INTERNAL, INVALID_CONFIG, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from .jsonio import JSONObject
    from .skel import CmdArgs, Handler


def find(plugin_type: str, path: list[str]) -> str:
    if not plugin_type or "/" in plugin_type or plugin_type in (".", ".."):
        raise CniError(INVALID_CONFIG, "invalid plugin type", repr(plugin_type))
    for directory in path:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(
        INVALID_CONFIG,
        f"failed to find plugin {plugin_type!r} in path",
        f"CNI_PATH={':'.join(path)}",
    )


def _own_module(exe: str, plugin_type: str) -> ModuleType | None:
    """The plugin module when ``exe`` is this installation's own launcher
    for ``plugin_type`` (a declared fact: ``dockline.plugins.TYPES`` and
    the launcher's exact text), else None."""
    from .. import launcher
    from ..plugins import TYPES

    name = TYPES.get(plugin_type)
    if name is None or not launcher.is_own(exe, plugin_type):
        return None
    return __import__(name, fromlist=["HANDLERS"])


def _in_process(module: ModuleType, req: CmdArgs, command: str) -> JSONObject | None:
    handlers: dict[str, Handler] = module.HANDLERS
    handler = handlers.get(command)
    if handler is None:
        return None
    return handler(req.for_command(command))


def _external(exe: str, req: CmdArgs, command: str) -> JSONObject | None:
    from .. import proc

    env = dict(os.environ)
    env["CNI_COMMAND"] = command
    completed = proc.run([exe], req.stdin, env)
    out = completed.stdout.strip()
    if completed.returncode != 0:
        try:
            err = jsonio.loads(out)
            raise CniError(
                int(err.get("code", INTERNAL)), str(err.get("msg", "")), str(err.get("details", ""))
            )
        except (jsonio.DecodeError, AttributeError, ValueError, TypeError):
            raise CniError(
                INTERNAL, f"plugin {os.path.basename(exe)} failed", completed.error_text[:500]
            ) from None
    if command != "ADD":
        return None
    try:
        return cni_result.parse(jsonio.loads(out), req.version)
    except jsonio.DecodeError as exc:
        raise CniError(
            DECODE_FAILURE,
            f"plugin {os.path.basename(exe)} returned an unreadable result",
            str(exc),
        ) from None


def validate_add(req: CmdArgs, plugin_type: str) -> None:
    """Check the delegate's part of an ADD before the caller changes
    anything: dockline's own IPAM parses its config (no side effects) here;
    an external plugin can only be judged when it runs."""
    exe = find(plugin_type, req.path)
    own = _own_module(exe, plugin_type)
    if own is None:
        return
    check = getattr(own, "validate_add", None)
    if check is not None:
        check(req.for_command("ADD"))


def run(req: CmdArgs, plugin_type: str, command: str) -> JSONObject | None:
    """Run ``command`` on the delegate; the ADD result in internal form."""
    exe = find(plugin_type, req.path)
    own = _own_module(exe, plugin_type)
    if own is not None:
        return _in_process(own, req, command)
    return _external(exe, req, command)

"""Delegating to another plugin (IPAM) found in CNI_PATH.

The delegate gets the whole config and the same environment, with
CNI_COMMAND set to the delegated command, as the reference pkg/ipam does.
When the executable found is one of dockline's own launchers, the plugin
is run in this process instead: same code, same result, no second Python
start-up (~15 ms) on every container start.
"""

from __future__ import annotations

import os
import sys

from . import jsonio
from . import result as cni_result
from .errors import DECODE_FAILURE, INTERNAL, INVALID_CONFIG, CniError

TYPE_CHECKING = False
if TYPE_CHECKING:

    from .skel import Request

LAUNCHER_MARKER = b"# dockline CNI plugin "


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


def _own_launcher(exe: str) -> tuple[list[str], str] | None:
    """(sys.path entries, module) when exe is a dockline launcher."""
    try:
        with open(exe, "rb") as f:
            head = f.read(2048)
    except OSError:
        return None
    if LAUNCHER_MARKER not in head:
        return None
    paths: list[str] = []
    module = ""
    for line in head.decode(errors="replace").splitlines():
        if line.startswith("sys.path[:0] = "):
            paths = jsonio.loads(line.split("=", 1)[1])
        elif line.startswith('launch(module="'):
            module = line.split('"')[1]
    return (paths, module) if paths and module else None


def _import_own(paths: list[str], module_name: str):
    for entry in reversed(paths):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    return __import__(module_name)


def _in_process(paths: list[str], module_name: str, req: Request, command: str):
    module = _import_own(paths, module_name)
    handler = module.HANDLERS.get(command)
    if handler is None:
        return None
    sub = req.for_command(command)
    return handler(sub)


def _external(exe: str, req: Request, command: str):
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


def validate_add(req: Request, plugin_type: str) -> None:
    """Check the delegate's part of an ADD before the caller changes
    anything: dockline's own IPAM parses its config (no side effects) here;
    an external plugin can only be judged when it runs."""
    exe = find(plugin_type, req.path)
    own = _own_launcher(exe)
    if own is None:
        return
    check = getattr(_import_own(*own), "validate_add", None)
    if check is not None:
        check(req.for_command("ADD"))


def run(req: Request, plugin_type: str, command: str) -> dict | None:
    """Run ``command`` on the delegate; the ADD result in internal form."""
    exe = find(plugin_type, req.path)
    own = _own_launcher(exe)
    if own is not None:
        return _in_process(own[0], own[1], req, command)
    return _external(exe, req, command)

"""``dockline validate FILE``: check a network config (``.conflist``, or a
single-plugin ``.conf``/``.json``) as libcni and the plugins would read
it, changing nothing: libcni's structure and version rules first, then
each dockline plugin's own config parser (the ones ADD runs before its
first side effect) on a synthetic request.  Plugins that are not
dockline's are only checked for shape (and presence with --cni-path).
"""

from __future__ import annotations

import os

from ..cni import jsonio
from ..cni.errors import CniError
from ..cni.skel import CmdArgs, valid_identifier
from ..cni.version import SUPPORTED
from . import libcni
from .output import FAILED, OK, USAGE, emit_json, error, table

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from ..cni.jsonio import JSONObject
    from .output import SubParsers

EPILOG = """\
examples:
  dockline validate /etc/cni/net.d/30-dockline-portmap.conflist
  dockline validate --json mynet.conflist | jq '.problems[]'
  dockline validate --cni-path /opt/cni/bin mynet.conflist

exit status: 0 valid, 1 problems found, 2 a usage error (no such file)
"""


def add_parser(sub: SubParsers) -> None:
    import argparse

    p = sub.add_parser(
        "validate",
        help="check a network config as the plugins would",
        description="Check a network config file as libcni and dockline's "
        "plugins read it, without touching anything.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file")
    p.add_argument(
        "--cni-path",
        help="also check every plugin type is an executable here (':'-separated, like CNI_PATH)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _check_plugin(net: libcni.NetworkList, index: int, plugin: JSONObject) -> list[tuple[str, str]]:
    """(where, what) problems of one plugin, by its own parser."""
    where = f"plugins[{index}] ({plugin.get('type')})"
    problems: list[tuple[str, str]] = []
    caps = plugin.get("capabilities")
    if caps is not None and (
        not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values())
    ):
        problems.append((f"{where}.capabilities", "must be an object of true/false values"))
    conf = libcni.plugin_config(net, plugin, None, None)
    req = CmdArgs("ADD", {}, b"", conf, net.cni_version)
    kind = plugin.get("type")

    def attempt(what: str, check: Callable[[], object]) -> None:
        try:
            check()
        except CniError as err:
            problems.append(
                (f"{where}{what}", f"{err.msg}" + (f": {err.details}" if err.details else ""))
            )

    if kind == "bridge":
        from ..bridge.config import BridgeConfig

        attempt("", lambda: BridgeConfig(req))
        ipam = plugin.get("ipam")
        ipam_type = ipam.get("type") if isinstance(ipam, dict) else None
        if ipam_type == "host-local":
            from ..ipam import config as hostlocal

            attempt(".ipam", lambda: hostlocal.load(req))
        elif ipam_type == "static":
            from ..ipam import static

            attempt(".ipam", lambda: static.load(req))
    elif kind == "portmap":
        from ..portmap.config import PortmapConfig

        attempt("", lambda: PortmapConfig(req, need_prev=False))
    elif kind in ("host-local", "static"):
        problems.append((where, f'{kind} is an IPAM plugin: use it as a main plugin\'s "ipam"'))
    return problems


def check_file(
    path: str, cni_path: list[str] | None = None
) -> tuple[libcni.NetworkList | None, list[tuple[str, str]]]:
    with open(path, "rb") as f:
        data = f.read()
    try:  # the plugins' own JSON rules (no NaN/inf, no deep nesting, ...)
        jsonio.loads(data)
    except jsonio.DecodeError as exc:
        return None, [("json", str(exc))]
    try:
        net = libcni.load_file(path)
    except libcni.ConfigError as exc:
        return None, [("structure", str(exc).removeprefix(f"{path}: "))]
    problems: list[tuple[str, str]] = []
    if not valid_identifier(net.name):
        problems.append(("name", f"{net.name!r} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"))
    if net.cni_version not in SUPPORTED:
        problems.append(
            ("cniVersion", f"{net.cni_version or '(none)'!r} is not one of {', '.join(SUPPORTED)}")
        )
        return net, problems
    for i, plugin in enumerate(net.plugins):
        problems += _check_plugin(net, i, plugin)
        if cni_path is not None and libcni.find_plugin(plugin["type"], cni_path) is None:
            problems.append(
                (
                    f"plugins[{i}] ({plugin['type']})",
                    f"no executable {plugin['type']!r} in {':'.join(cni_path)}",
                )
            )
    return net, problems


def run(a: argparse.Namespace) -> int:
    if not os.path.isfile(a.file):
        error(f"validate: {a.file}: no such file")
        return USAGE
    cni_path = [p for p in a.cni_path.split(":") if p] if a.cni_path else None
    try:
        net, problems = check_file(a.file, cni_path)
    except OSError as exc:
        error(f"validate: {a.file}: {exc.strerror}")
        return USAGE
    if a.json:
        emit_json(
            {
                "file": a.file,
                "valid": not problems,
                "network": net.name if net else None,
                "cniVersion": net.cni_version if net else None,
                "plugins": [p["type"] for p in net.plugins] if net else [],
                "problems": [{"where": w, "problem": p} for w, p in problems],
            }
        )
    elif problems:
        print(f"{a.file}: {len(problems)} problem(s)")
        table(["WHERE", "PROBLEM"], [list(p) for p in problems])
    else:
        assert net is not None  # (no problem: the file was read)
        print(
            f"{a.file}: valid (network {net.name!r}, cniVersion {net.cni_version}, "
            f"plugins {' > '.join(p['type'] for p in net.plugins)})"
        )
    return FAILED if problems else OK

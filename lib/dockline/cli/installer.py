"""``dockline install [CNI_BIN_DIR]``: write one executable per plugin type.

The launcher's text is defined in dockline.launcher; the plugin types in
dockline.plugins.TYPES.
"""

from __future__ import annotations

import compileall
import os
import sys
import time

from .. import launcher
from ..atomic import write_beside
from ..plugins import TYPES
from .output import FAILED, OK, emit_json, error

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from .output import SubParsers

EPILOG = """\
examples:
  dockline install /opt/cni/bin
  dockline install --no-zygote ./cni-bin
  CNI_PATH=/opt/cni/bin dockline cnitool add dockline /run/netns/web

exit status: 0 written, 1 something could not be written, 2 a usage error
"""


def lib_dir() -> str:
    """The directory holding the dockline package (lib/ of the checkout)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def dependency_dir() -> str:
    """Where pyroute2 lives (the venv's site-packages); found from the
    module itself, which holds under -I -S too."""
    import pyroute2

    module_file: str = pyroute2.__file__
    return os.path.dirname(os.path.dirname(os.path.abspath(module_file)))


def install(
    bin_dir: str, zygote: bool = True, compile_bytecode: bool = True, test_hooks: bool = False
) -> list[str]:
    """Write the launchers; returns their paths."""
    lib = lib_dir()
    paths = list(dict.fromkeys([lib, dependency_dir()]))
    facts = launcher.Facts(
        os.path.realpath(sys.executable), paths, str(time.time_ns()), zygote, test_hooks
    )
    os.makedirs(bin_dir, exist_ok=True)
    written = []
    for plugin_type in TYPES:
        target = os.path.join(bin_dir, plugin_type)
        write_beside(target, launcher.text(plugin_type, facts).encode(), 0o755)
        written.append(target)
    if compile_bytecode:
        # once now, so the first container start does not pay for it
        compileall.compile_dir(os.path.join(lib, "dockline"), quiet=2)
    return written


def add_parser(sub: SubParsers) -> None:
    import argparse

    p = sub.add_parser(
        "install",
        help="write the plugin executables into a CNI bin directory",
        description="Write one executable per dockline plugin type (host-local, "
        "static, bridge, portmap) into CNI_BIN_DIR.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "bin_dir", nargs="?", metavar="CNI_BIN_DIR", help="default: <checkout>/.build/cni-bin"
    )
    p.add_argument(
        "--no-zygote",
        action="store_true",
        help="executables that never start or use a warm zygote process",
    )
    p.add_argument(
        "--test-hooks",
        action="store_true",
        help="for dockline's crash tests only: executables that serve every call "
        "in-process and obey DOCKLINE_CRASH_AT",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    bin_dir = os.path.abspath(
        a.bin_dir or os.path.join(os.path.dirname(lib_dir()), ".build", "cni-bin")
    )
    try:
        written = install(bin_dir, zygote=not a.no_zygote, test_hooks=a.test_hooks)
    except OSError as exc:
        error(f"install: {exc}")
        return FAILED
    if a.json:
        emit_json({"binDir": bin_dir, "zygote": not a.no_zygote, "plugins": written})
        return OK
    for path in written:
        print(path)
    sys.stderr.write(f"dockline: plugins in {bin_dir} (use it as CNI_PATH)\n")
    return OK

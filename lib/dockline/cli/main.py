"""``dockline``: argument parsing and dispatch to the commands.

Exit status, for every command: 0 done (or valid, or nothing found), 1 a
plugin or CNI error, an invalid config or a network that does not exist,
2 a usage error.
"""

from __future__ import annotations

import argparse
import sys

from .output import USAGE

DESCRIPTION = """\
dockline: CNI plugins (bridge, host-local, static, portmap) and the tools
to run and inspect them.

examples:
  dockline cnitool add dockline /run/netns/web
  dockline networks
  dockline inspect dockline --json
  dockline gc dockline --yes
  dockline validate /etc/cni/net.d/30-dockline-portmap.conflist
  dockline install /opt/cni/bin
(`dockline COMMAND --help` for each command's options and examples)

exit status: 0 ok, 1 a plugin/CNI error or an invalid config, 2 a usage error
"""


def build_parser() -> argparse.ArgumentParser:
    from . import cnitool, gc, inspect, installer, networks, validate

    parser = argparse.ArgumentParser(
        prog="dockline",
        description=DESCRIPTION.split("\n\n")[0],
        epilog=DESCRIPTION.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    for module in (cnitool, networks, inspect, gc, validate, installer):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return USAGE
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dockline inspect x | head`
        return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

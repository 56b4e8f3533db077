"""Human output as aligned tables, ``--json`` for scripts, and the exit
codes every command keeps to."""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import TextIO

    # what each command module's add_parser() adds its subcommand to
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

OK = 0  # done / valid / nothing wrong
FAILED = 1  # a plugin or CNI error, an invalid config, a network not found
USAGE = 2  # a command line that cannot be run (argparse uses 2 as well)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], out: TextIO | None = None
) -> None:
    """Columns padded to their widest cell; the last one is not padded."""
    out = out or sys.stdout
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        line = "  ".join(
            c.ljust(w) if i < len(r) - 1 else c
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        out.write(line.rstrip() + "\n")


def emit_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def error(msg: str) -> None:
    sys.stderr.write(f"dockline: {msg}\n")

"""Human output as aligned tables, ``--json`` for scripts, and the exit
codes every command keeps to."""

from __future__ import annotations

import json
import sys

OK = 0  # done / valid / nothing wrong
FAILED = 1  # a plugin or CNI error, an invalid config, a network not found
USAGE = 2  # a command line that cannot be run (argparse uses 2 as well)


def table(headers: list[str], rows: list[list], out=None) -> None:
    """Columns padded to their widest cell; the last one is not padded."""
    out = out or sys.stdout
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        line = "  ".join(
            c.ljust(w) if i < len(r) - 1 else c for i, (c, w) in enumerate(zip(r, widths))
        )
        out.write(line.rstrip() + "\n")


def emit_json(value) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def error(msg: str) -> None:
    sys.stderr.write(f"dockline: {msg}\n")

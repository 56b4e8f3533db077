"""Undo steps registered as ADD creates things, run in reverse on failure."""
from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


class UndoStack:
    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []
        # Crash tests: DOCKLINE_CRASH_AT=<start of a step's description>
        # kills the process right before that step, as a SIGKILL would, to
        # prove that DEL cleans up whatever a dead ADD left.  Runtimes call
        # plugins with a stripped environment, so nothing sets it by chance.
        import os
        self._crash_at = os.environ.get("DOCKLINE_CRASH_AT", "")

    def push(self, what: str, step: Callable[[], object]) -> None:
        if self._crash_at and what.startswith(self._crash_at):
            import os
            os._exit(137)
        self._steps.append((what, step))

    def unwind(self) -> None:
        """Run every step, newest first; a failing step does not stop the
        others (each is reported on stderr)."""
        while self._steps:
            what, step = self._steps.pop()
            try:
                step()
            except Exception as exc:  # keep unwinding: leave as little as possible
                sys.stderr.write(f"dockline: cleanup failed: {what}: {exc}\n")

    def discard(self) -> None:
        self._steps.clear()

"""Undo steps registered as ADD creates things, run in reverse on failure."""
from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


class UndoStack:
    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, step: Callable[[], object]) -> None:
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

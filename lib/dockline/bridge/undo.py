"""Undo steps registered as ADD creates things, run in reverse on failure."""

from __future__ import annotations

import sys

from .. import interrupt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


_crash_hook = False


def enable_crash_hook() -> None:
    """For the crash tests' executables only (``dockline install
    --test-hooks``): no environment can turn the hook on in an executable
    installed for runtimes."""
    global _crash_hook
    _crash_hook = True


class UndoStack:
    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []
        # Crash tests: DOCKLINE_CRASH_AT=<start of a step's description>
        # kills the process right before that step, as a SIGKILL would, to
        # prove that DEL cleans up whatever a dead ADD left.
        self._crash_at = ""
        if _crash_hook:
            import os

            self._crash_at = os.environ.get("DOCKLINE_CRASH_AT", "")

    def push(self, what: str, step: Callable[[], object]) -> None:
        if self._crash_at and what.startswith(self._crash_at):
            import os

            os._exit(137)
        self._steps.append((what, step))
        interrupt.check()  # a safe point: the step's undo is registered

    def unwind(self) -> None:
        """Run every step, newest first; a failing step does not stop the
        others (each is reported on stderr).  An interruption (the client
        went away, a signal) is re-raised once every step has run."""
        interrupted: BaseException | None = None
        while self._steps:
            what, step = self._steps.pop()
            try:
                step()
            except Exception as exc:  # keep unwinding: leave as little as possible
                sys.stderr.write(f"dockline: cleanup failed: {what}: {exc}\n")
            except BaseException as exc:
                interrupted = interrupted or exc
        if interrupted is not None:
            raise interrupted

    def discard(self) -> None:
        self._steps.clear()

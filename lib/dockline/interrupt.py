"""Interrupting a call whose caller went away, at a point where nothing is
half made.

The zygote's child learns from a signal that its client is gone.  Raising
from the signal handler wherever it lands could come between the kernel
making an object and its undo being registered, and the unwind would miss
that object.  So the handler only asks (``request``): the interruption is
raised at the next safe point — right after an undo step is registered
(``check``, from UndoStack.push) — or at once when the call is only waiting
(``waiting()``: blocked on a lock, where nothing is being made).
"""

from __future__ import annotations

_pending: type[BaseException] | None = None
_waiting = 0


def request(exc_type: type[BaseException]) -> bool:
    """Ask for ``exc_type`` to be raised at the next safe point; True when
    the caller (a signal handler) may raise it right away: the call is
    only waiting."""
    global _pending
    if _waiting:
        return True
    _pending = exc_type
    return False


def check() -> None:
    """Raise a requested interruption, once (the unwind that follows must
    run in peace)."""
    global _pending
    if _pending is not None:
        exc_type, _pending = _pending, None
        raise exc_type()


class waiting:
    """A with-block during which an interruption may be raised at once."""

    def __enter__(self) -> None:
        global _waiting
        check()
        _waiting += 1

    def __exit__(self, *exc: object) -> None:
        global _waiting
        _waiting -= 1


def quiet() -> bool:
    """Nothing requested nor being waited for: the state a call starts in."""
    return _pending is None and not _waiting

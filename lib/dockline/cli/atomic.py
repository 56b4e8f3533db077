"""Files written whole: a temporary file beside the target, renamed over
it, so a reader (a runtime, another cnitool) never sees half a file."""

from __future__ import annotations

import os
import tempfile


def write_atomically(path: str, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

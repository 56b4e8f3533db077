"""Files written whole: data goes to a temporary name that is then renamed
over the target, so a reader sees the old content or the new, never a part.
"""

from __future__ import annotations

import os

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def replace(
    tmp: str, final: str, data: bytes, *, dir_fd: int | None = None, mode: int = 0o600
) -> None:
    """Write ``data`` to ``tmp``, then rename it over ``final`` (both
    relative to ``dir_fd`` when given).  ``tmp`` must be the caller's alone:
    a fixed name used only under the caller's lock, or one carrying its
    pid; a file left there by a killed writer is removed first.  Never
    follows a symlink planted at ``tmp``."""
    try:
        fd = os.open(tmp, _FLAGS, mode, dir_fd=dir_fd)
    except FileExistsError:
        os.unlink(tmp, dir_fd=dir_fd)
        fd = os.open(tmp, _FLAGS, mode, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.rename(tmp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def write_beside(path: str, data: bytes, mode: int) -> None:
    """``path`` written whole through a randomly named temporary file beside
    it (for the ``dockline`` command: no lock, several writers)."""
    import tempfile

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

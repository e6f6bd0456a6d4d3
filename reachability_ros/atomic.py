"""Write a user's output file atomically: a temporary file beside it, then a rename.

A reader never sees a half-written file, and an interrupted or failed run leaves the
previous file (if any) as it was. Used for the batch results, the plots, and the trainer's
checkpoints, datasets and models.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicFile:
    """A temporary file that replaces ``path`` in one rename when the ``with`` block succeeds.

    The temporary file is created at once, in the directory of the file ``path``
    resolves to (a symbolic link is followed: the file it points to is replaced, not the
    link), with the permissions of the file it replaces (a new file gets ``0o666`` less
    the umask). On an exception, including ``KeyboardInterrupt``, the temporary file is
    removed and ``path`` is left untouched.

    Args:
        path: the file to (re)write.

    Raises:
        OSError: the directory is missing or not writable (nothing is written then).

    Example:
        >>> with AtomicFile("results.jsonl") as f, open(f.tmp_path, "w") as out:
        ...     out.write("{}\\n")
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.target = Path(os.path.realpath(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp",
                                   dir=self.target.parent)
        os.close(fd)
        self.tmp_path = Path(tmp)
        try:
            mode = stat.S_IMODE(os.stat(self.target).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(self.tmp_path, mode)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            os.replace(self.tmp_path, self.target)
        else:
            with contextlib.suppress(OSError):
                self.tmp_path.unlink()
        return False


def is_regular_or_new(path: str | os.PathLike) -> bool:
    """True when ``path`` is a regular file or does not exist yet (not a device or FIFO)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True

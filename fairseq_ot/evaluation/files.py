"""Files written so that a crash never leaves half of one behind, and the
error for a file of a run folder that cannot be read back."""

import contextlib
import os
import tempfile
from pathlib import Path


class UnreadableFileError(ValueError):
    """A file of a run folder (scores, training log) that cannot be read or
    is not what its name says; the message names it and fits on one line."""


@contextlib.contextmanager
def atomic_file(path, mode="w"):
    """An open temporary file in ``path``'s folder, renamed over ``path``
    with the umask's permissions when the block completes, removed when it
    fails. ``mode``: "w" (UTF-8 text) or "wb"."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, encoding=None if "b" in mode else "utf-8") as out:
            yield out
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_atomically(path, text):
    with atomic_file(path) as out:
        out.write(text)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask

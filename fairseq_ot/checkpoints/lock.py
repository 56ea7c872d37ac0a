"""One training per save folder.

Two fairseq-train processes writing one --save-dir both run to the end, each
overwriting the other's checkpoints, and neither says a word (fairseq 0.12).
The first training takes an exclusive lock on SAVE_DIR/.fairseq-train.lock
and holds it for its lifetime; a second is refused in one line naming the
holder's PID. The operating system releases the lock of a process that dies
(kill -9, a node that a Slurm requeue left), so a stale lock file is simply
taken over; a process that exits removes its own."""

import atexit
import fcntl
import os
from pathlib import Path

from fairseq_ot.errors import FlagError

LOCK = ".fairseq-train.lock"
# the open lock files of this process, by folder: closing one releases its lock
_held = {}


class SaveDirInUse(FlagError):
    """--save-dir is held by another live training."""


def hold_save_dir(save_dir):
    """Lock `save_dir` (created if missing) for this process's lifetime.
    Returns None, or the PID (a string) of the live process that holds it;
    idempotent within a process."""
    folder = Path(save_dir).resolve()
    if folder in _held:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    while True:
        lock = open(path, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            return holder
        # locked a file that its exiting holder removed meanwhile: lock the new one
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(lock.fileno()).st_ino:
            break
        lock.close()
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    _held[folder] = lock
    return None


@atexit.register
def _release_all():
    # removed before it is unlocked: a process waiting for it then finds the
    # file gone and locks a new one
    for folder, lock in list(_held.items()):
        (folder / LOCK).unlink(missing_ok=True)
        lock.close()
    _held.clear()


def refusal(save_dir, holder):
    """The one-line error of a folder held by the process `holder`."""
    return SaveDirInUse(f"--save-dir {save_dir} is in use by another training (PID {holder}): wait for it, "
                        f"stop it, or choose another --save-dir")

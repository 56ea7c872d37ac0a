"""Checkpoint writes that never destroy the previous checkpoint.

fairseq 0.12 writes its first checkpoint file of a save through a temporary
file and a rename, but copies it to its other names (checkpoint_last.pt,
checkpoint_best.pt) in place: a full disk or a kill during the copy leaves a
truncated checkpoint_last.pt where an intact one stood. Here every file is
written beside its final name, flushed to the disk, then renamed over it, so
that a failure leaves the previous file whole; the temporary is removed on
every failure. A model whose parameters are no longer finite is not saved at
all: it would replace the last good checkpoint with one no run can resume."""

import os
import shutil
from pathlib import Path

import torch

from fairseq_ot.checkpoints.files import update_count
from fairseq_ot.errors import ModelDiverged

class CheckpointWriteError(OSError):
    """A checkpoint that could not be written; the message names the file,
    the cause and the checkpoints left as they were."""


def write_atomically(path, write):
    """Call `write(file)` on a temporary file beside `path`, flush it to the
    disk and rename it to `path`. On any failure the temporary is removed,
    `path` is left as it was, and a CheckpointWriteError names the cause."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except Exception as error:
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {_cause(error)}; "
                                   f"{_left_intact(path.parent)}") from None
    finally:
        if temporary.exists():
            temporary.unlink()


def save(state, path):
    """torch.save(state) to `path`, atomically."""
    write_atomically(path, lambda file: torch.save(state, file))


def copy(source, destination):
    """Copy the file `source` to `destination`, atomically."""
    with open(source, "rb") as original:
        write_atomically(destination, lambda file: shutil.copyfileobj(original, file, 1 << 20))


def require_finite_parameters(model, num_updates, path):
    """ModelDiverged, before anything is written, when a parameter of `model`
    holds NaN or inf."""
    if not all(bool(torch.isfinite(parameter).all()) for parameter in model.parameters()):
        raise ModelDiverged(
            f"the model diverged by update {num_updates}: its parameters hold NaN or inf, so {path} "
            f"was not written; lower --lr (or clip gradients with --clip-norm); "
            f"{_left_intact(Path(path).parent)}")


def _cause(error):
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    # torch's zip writer reports a failed write as a RuntimeError without the errno
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _left_intact(save_dir):
    kept = [f"{path.name} (update {update_count(path)})"
            for path in (save_dir / "checkpoint_last.pt", save_dir / "checkpoint_best.pt") if path.is_file()]
    return f"{' and '.join(kept)} left as before" if kept else "no checkpoint was there before"

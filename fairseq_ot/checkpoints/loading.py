"""Loading fairseq checkpoints weights-only, with every failure explained in
one line: the classes fairseq checkpoints pickle (allow-listed for torch's
weights-only unpickler), and what is wrong with a file that does not load
(damaged, no fairseq checkpoint, or pickling foreign classes)."""

import argparse
import os
import pickle

import numpy as np
import torch

from fairseq_ot.checkpoints.files import DamagedCheckpointError, damage

_numpy_multiarray = (getattr(np, "_core", None) or np.core).multiarray

# What fairseq checkpoints contain besides tensors and Python builtins.
FAIRSEQ_CHECKPOINT_CLASSES = (
    argparse.Namespace,  # legacy `args`
    np.ndarray,  # metric meters, e.g. --eval-bleu n-gram counts
    np.dtype,
    _numpy_multiarray._reconstruct,
    _numpy_multiarray.scalar,  # numpy metric values such as a best score
    # numpy >= 1.25 pickles each dtype by its own class
    *(type(np.dtype(code)) for code in "?bhilqBHILQefd"),
)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint pickles classes outside FAIRSEQ_CHECKPOINT_CLASSES."""


def explained(path, error):
    """The one-line exception to raise in place of `error`, raised while
    loading the checkpoint at `path`; None when fairseq's own error stands
    (a missing or remote file, a sound checkpoint)."""
    wrong = _what_is_wrong(path, error)
    if wrong is not None:
        return DamagedCheckpointError(f"cannot load checkpoint {path}: it is {wrong}")
    if isinstance(error, pickle.UnpicklingError):
        return UnsafeCheckpointError(_refusal_message(path, error))
    return None


def _what_is_wrong(path, error):
    """Why the file at `path` is no fairseq checkpoint, completing "it is
    ...", or None (a missing or remote file, or a sound checkpoint): then
    fairseq's own error stands."""
    if not os.path.isfile(path):
        return None
    wrong = damage(path, verify_data=True)
    if wrong is not None or isinstance(error, pickle.UnpicklingError):
        return wrong
    # a sound archive, and no refusal: did fairseq fail on what it holds?
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not isinstance(state, dict):
        return f"not a fairseq checkpoint (torch.save of a {type(state).__name__})"
    if "model" not in state:
        return "not a fairseq checkpoint (a dict without 'model')"
    return None


def _refusal_message(path, error):
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: report torch's own reason
        unsafe = []
    allowed = {f"{c.__module__}.{c.__qualname__}" for c in FAIRSEQ_CHECKPOINT_CLASSES}
    foreign = [name for name in unsafe if name not in allowed]
    if not foreign:
        reason = [line.strip() for line in str(error).splitlines() if "got" in line]
        return f"cannot load checkpoint {path}: {(reason or [str(error)])[-1]}"
    return (
        f"refused to load checkpoint {path}: it pickles {', '.join(foreign)}, which "
        "fairseq checkpoints never contain and which could run code when loaded; "
        "only if you trust the file, allow it with "
        "torch.serialization.add_safe_globals([...]) before loading"
    )

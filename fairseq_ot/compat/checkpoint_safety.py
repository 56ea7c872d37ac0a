"""Weights-only checkpoint loading for fairseq on torch >= 2.6.

What it patches: torch's weights-only allow-list
(`torch.serialization.add_safe_globals`), fairseq's
`checkpoint_utils.load_checkpoint_to_cpu` (refusals and damaged files explained
in one line) and `distributed.utils._broadcast_object_slow` (fairseq 0.12.x).

Why: fairseq 0.12 calls `torch.load` without `weights_only`, which torch >= 2.6
treats as weights-only: fairseq's own checkpoints are then refused because
they pickle an `argparse.Namespace` (and numpy arrays once `--eval-bleu`
logs its n-gram counts). Rather than re-enable arbitrary unpickling, we
allow-list exactly those classes; a checkpoint holding anything else is still
refused, with a message that names the offending classes. A file that is no
checkpoint at all (empty, truncated by a killed copy, corrupted, another
file) failed with a bare EOFError or torch's zip reader's error after a long
traceback: the same one line says which file and what is wrong with it.

No longer needed when: fairseq saves checkpoints without pickled classes or
loads them with an allow-list of its own (not in 0.12.x), or torch < 2.6."""

import argparse
import functools
import os
import pickle

import numpy as np
import torch
from fairseq import checkpoint_utils
from fairseq.distributed import utils as distributed_utils

from fairseq_ot import checkpoint_files

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


def install() -> None:
    """Allow-list fairseq's checkpoint classes and make refusals explain
    themselves. Idempotent."""
    torch.serialization.add_safe_globals(list(FAIRSEQ_CHECKPOINT_CLASSES))
    load = checkpoint_utils.load_checkpoint_to_cpu
    if not getattr(load, "_fairseq_ot_guarded", False):
        checkpoint_utils.load_checkpoint_to_cpu = _explain_refusals(load)
    broadcast = distributed_utils._broadcast_object_slow
    if not getattr(broadcast, "_fairseq_ot_trusting", False):
        distributed_utils._broadcast_object_slow = _trust_own_process_group(broadcast)


def _trust_own_process_group(broadcast):
    """fairseq hands rank 0's checkpoint state to the other ranks pickled and
    unpickles it with a bare torch.load, which torch >= 2.6 makes weights-only:
    the config objects in the state are refused and a run of several processes
    cannot resume. The bytes come from rank 0 of the job's own process group,
    which loaded the file weights-only already, so the receiving ranks unpickle
    them in full."""

    @functools.wraps(broadcast)
    def broadcast_trusting_rank0(*args, **kwargs):
        load = torch.load
        torch.load = functools.partial(load, weights_only=False)
        try:
            return broadcast(*args, **kwargs)
        finally:
            torch.load = load

    broadcast_trusting_rank0._fairseq_ot_trusting = True
    return broadcast_trusting_rank0


def _explain_refusals(load):
    @functools.wraps(load)
    def guarded_load(path, *args, **kwargs):
        try:
            return load(path, *args, **kwargs)
        except Exception as error:
            wrong = _what_is_wrong(path, error)
            if wrong is not None:
                raise checkpoint_files.DamagedCheckpointError(
                    f"cannot load checkpoint {path}: it is {wrong}") from None
            if isinstance(error, pickle.UnpicklingError):
                raise UnsafeCheckpointError(_refusal_message(path, error)) from None
            raise

    guarded_load._fairseq_ot_guarded = True
    return guarded_load


def _what_is_wrong(path, error):
    """Why the file at `path` is no fairseq checkpoint, completing "it is
    ...", or None (a missing or remote file, or a sound checkpoint): then
    fairseq's own error stands."""
    if not os.path.isfile(path):
        return None
    wrong = checkpoint_files.damage(path, verify_data=True)
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

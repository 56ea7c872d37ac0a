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

import functools

import torch
from fairseq import checkpoint_utils
from fairseq.distributed import utils as distributed_utils

from fairseq_ot.checkpoints.loading import FAIRSEQ_CHECKPOINT_CLASSES, explained


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
            explanation = explained(path, error)
            if explanation is None:
                raise
            raise explanation from None

    guarded_load._fairseq_ot_guarded = True
    return guarded_load

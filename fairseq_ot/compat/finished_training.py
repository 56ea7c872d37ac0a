"""A rerun of a finished training trains nothing and leaves its checkpoints
as they are.

What it patches: `checkpoint_utils.load_checkpoint` (fairseq 0.12.x), which
fairseq's training main calls once, on every rank, before its training loop.
A trainer that is not fairseq's (the MagicMock of fairseq's own tests) is
left to fairseq's function as it is.

Why: fairseq's loop tests --max-update only after an update. Rerunning a
finished command (the usual way to resume, and what a requeued Slurm job
does) trained one update past --max-update and overwrote checkpoint_last.pt
and checkpoint_best.pt. Once the checkpoint is loaded, the update count and
the epoch are known: a run at or past --max-update, or with the epochs of
--max-epoch done, logs one line and exits with status 0 before anything is
validated, trained or saved. Every rank holds rank 0's state, so all of them
stop alike.

No longer needed when: fairseq checks its stopping conditions before the
first update of a start (not in 0.12.x)."""

import functools
import logging

from fairseq import checkpoint_utils
from fairseq.trainer import Trainer

logger = logging.getLogger(__name__)


def install() -> None:
    """Stop a finished run right after its checkpoint is loaded. Idempotent."""
    load = checkpoint_utils.load_checkpoint
    if not getattr(load, "_fairseq_ot_finished", False):
        checkpoint_utils.load_checkpoint = _stop_when_finished(load)


def _stop_when_finished(load):
    @functools.wraps(load)
    def load_then_stop_when_finished(cfg, trainer, **passthrough_args):
        if not isinstance(trainer, Trainer):
            return load(cfg, trainer, **passthrough_args)
        extra_state, epoch_itr = load(cfg, trainer, **passthrough_args)
        done = finished(trainer.cfg.optimization, trainer.get_num_updates(), epoch_itr.next_epoch_idx)
        if done is not None:
            logger.info(f"training is finished ({done}): nothing to train, "
                        f"the checkpoints in {cfg.save_dir} are left as they are")
            # SystemExit: fairseq's main has nothing left to do, and would save
            # after one more update if it returned here
            raise SystemExit(0)
        return extra_state, epoch_itr

    load_then_stop_when_finished._fairseq_ot_finished = True
    return load_then_stop_when_finished


def finished(optimization, num_updates, next_epoch):
    """Why a run at `num_updates`, about to start epoch `next_epoch`, has
    nothing left to train (fairseq's own tests: --max-update after an update,
    --max-epoch before an epoch); None while it has."""
    if optimization.max_update > 0 and num_updates >= optimization.max_update:
        return f"update {num_updates} of --max-update {optimization.max_update}"
    if optimization.max_epoch > 0 and next_epoch > optimization.max_epoch:
        return f"epoch {next_epoch - 1} of --max-epoch {optimization.max_epoch} done"
    return None

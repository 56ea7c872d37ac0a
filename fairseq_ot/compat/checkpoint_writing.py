"""Checkpoint writes that keep the last good checkpoint, and one training per
save folder.

What it patches (fairseq 0.12.x):

- `checkpoint_utils.torch_persistent_save`: local files are written by
  `fairseq_ot.checkpoints.writing.save` (a temporary beside the file, flushed,
  renamed; one-line error naming the cause). Asynchronous and remote writes
  stay fairseq's.
- `checkpoint_utils.PathManager`, as `save_checkpoint` sees it: its `copy` of a
  local checkpoint to checkpoint_last.pt and checkpoint_best.pt is atomic too.
  Everything else is fairseq's PathManager.
- `Trainer.save_checkpoint`: a model with non-finite parameters is not saved.
- `checkpoint_utils.load_checkpoint`, which fairseq-train calls once before
  training: rank 0 takes the save folder's lock first, and every rank refuses
  the same way when another live training holds it.

Why: fairseq copies a checkpoint to its other names in place, so a full disk
or a kill during the copy leaves a truncated checkpoint_last.pt where an
intact one stood; a NaN model saved over the last good checkpoint leaves
nothing to resume from; two trainings into one --save-dir overwrite each
other's checkpoints without a word.

No longer needed when: fairseq copies checkpoints atomically and locks its
save folder (neither in 0.12.x)."""

import functools

from fairseq import checkpoint_utils
from fairseq.distributed import utils as distributed_utils
from fairseq.file_io import PathManager
from fairseq.trainer import Trainer

from fairseq_ot.checkpoints import lock, writing


def install() -> None:
    """Idempotent."""
    if getattr(checkpoint_utils.torch_persistent_save, "_fairseq_ot_atomic", False):
        return
    checkpoint_utils.torch_persistent_save = _atomic_save(checkpoint_utils.torch_persistent_save)
    checkpoint_utils.PathManager = _AtomicCopies(PathManager)
    Trainer.save_checkpoint = _finite_only(Trainer.save_checkpoint)
    checkpoint_utils.load_checkpoint = _locking_save_dir(checkpoint_utils.load_checkpoint)


def _is_local(path):
    return not PathManager.path_requires_pathmanager(str(path))


def _atomic_save(save):
    @functools.wraps(save)
    def atomic_save(obj, filename, async_write=False):
        if async_write or not _is_local(filename):
            return save(obj, filename, async_write=async_write)
        writing.save(obj, filename)

    atomic_save._fairseq_ot_atomic = True
    return atomic_save


class _AtomicCopies:
    """fairseq's PathManager, with atomic copies of local files."""

    def __init__(self, manager):
        self._manager = manager

    def __getattr__(self, name):
        return getattr(self._manager, name)

    def copy(self, src_path, dst_path, overwrite=False):
        if not (_is_local(src_path) and _is_local(dst_path)):
            return self._manager.copy(src_path, dst_path, overwrite=overwrite)
        writing.copy(src_path, dst_path)
        return True


def _finite_only(save_checkpoint):
    @functools.wraps(save_checkpoint)
    def finite_save_checkpoint(self, filename, extra_state):
        if self.should_save_checkpoint_on_current_rank:
            writing.require_finite_parameters(self.model, self.get_num_updates(), filename)
        return save_checkpoint(self, filename, extra_state)

    return finite_save_checkpoint


def _locking_save_dir(load_checkpoint):
    @functools.wraps(load_checkpoint)
    def load_checkpoint_of_locked_dir(cfg, trainer, **kwargs):
        # a mock trainer (fairseq's own tests) is left to fairseq
        if isinstance(trainer, Trainer) and not cfg.no_save:
            holder = lock.hold_save_dir(cfg.save_dir) if trainer.data_parallel_rank == 0 else None
            if trainer.data_parallel_world_size > 1:
                holder = distributed_utils.broadcast_object(
                    holder, src_rank=0, group=trainer.data_parallel_process_group)
            if holder is not None:
                raise lock.refusal(cfg.save_dir, holder)
        return load_checkpoint(cfg, trainer, **kwargs)

    return load_checkpoint_of_locked_dir

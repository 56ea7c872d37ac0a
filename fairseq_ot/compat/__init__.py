"""Every change the plugin makes to the behaviour of fairseq, torch, numpy and
Python, in one place. `install()` applies them; importing `fairseq_ot`
calls it. Each module's docstring says what it patches, why, for which
versions and how to tell it is no longer needed; the README lists them.

- `background_loader`: fairseq's batch-loading thread stopped before Python
  exits (else a run that stops inside an epoch aborts at exit)
- `checkpoint_safety`: weights-only loading of fairseq checkpoints on torch >= 2.6;
  damaged checkpoint files (empty, truncated, not a checkpoint) in one line
- `checkpoint_writing`: checkpoint copies written atomically (a full disk or a
  kill leaves the previous checkpoint_last.pt whole), no NaN model saved, one
  training per save folder
- `cpu_fp16`: `--fp16` and `--memory-efficient-fp16` on CPU (two lines of
  fairseq that call CUDA: the flat float32 weights, a skipped overflow)
- `ddp_backend`: `--ddp-backend pytorch_ddp` refused in one line on CPU and
  for the mediator models, before PyTorch's DDP wraps the model
- `finished_training`: a rerun of a finished training (--max-update,
  --max-epoch) trains nothing and leaves its checkpoints as they are
- `log_file_once`: `--log-file` holds each line once (fairseq added a file
  handler per epoch)
- `glibc_malloc`: glibc's malloc keeps the memory a training step frees
  (10x fewer page faults on CPU); not where the user chose the allocator
- `numpy_alias`: `np.compat.long` for fairseq's data code on numpy 2
- `one_line_errors`: flag errors as one line (`sys.excepthook`; hydra's main),
  also where fairseq's trainer re-raises them as a bare Exception
- `update_count`: the update number for criterions (a task's `train_step`),
  applied per criterion by the `FollowsUpdateCount` mixin, not here
- `vocabulary_fingerprint`: checkpoints record their dictionaries' symbols;
  loading one with other dictionaries is refused in one line
- `warm_start`: the model knows when fairseq-train loads `--finetune-from-model`
  (a mediator-task checkpoint then gives its generator alone)"""

from fairseq_ot.compat import (
    background_loader,
    checkpoint_safety,
    checkpoint_writing,
    cpu_fp16,
    ddp_backend,
    finished_training,
    glibc_malloc,
    log_file_once,
    numpy_alias,
    one_line_errors,
    vocabulary_fingerprint,
    warm_start,
)
from fairseq_ot.checkpoints.files import DamagedCheckpointError
from fairseq_ot.checkpoints.loading import UnsafeCheckpointError
from fairseq_ot.checkpoints.writing import CheckpointWriteError
from fairseq_ot.errors import FlagError, ModelDiverged

# errors whose message says all: the command lines print them as one line
ONE_LINE_ERRORS = (FlagError, ModelDiverged, UnsafeCheckpointError, DamagedCheckpointError,
                   CheckpointWriteError)


def install() -> None:
    """Apply every process-wide patch. Idempotent."""
    background_loader.install()
    checkpoint_safety.install()
    checkpoint_writing.install()
    cpu_fp16.install()
    ddp_backend.install()
    finished_training.install()
    glibc_malloc.install()
    log_file_once.install()
    numpy_alias.install()
    one_line_errors.install_excepthook(ONE_LINE_ERRORS)
    vocabulary_fingerprint.install()
    warm_start.install()

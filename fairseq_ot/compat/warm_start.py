"""A model told when fairseq-train loads `--finetune-from-model`.

What it patches: `Trainer.load_checkpoint` (fairseq 0.12.x).

Why: fairseq hands the model the weights of the checkpoint it loads, not
why it loads them: a warm start from `--finetune-from-model` looks to the
model like a resume from checkpoint_last.pt. When both hold a generator and
a mediator (a cot checkpoint warm-starting a mediator run), the warm start
loaded as a resume: `--mediator-init` was ignored, and a mediator of other
sizes failed in about 170 lines of `size mismatch`. fairseq loads
`--finetune-from-model`, and nothing else, with the optimizer reset while
that flag is set (it refuses `--reset-optimizer` beside it); during that
load, a model that has a `warm_starting` attribute finds it True.

No longer needed when: fairseq tells a model that it loads a checkpoint to
fine-tune from (not in 0.12.x)."""

import functools

from fairseq.trainer import Trainer


def install() -> None:
    """Idempotent."""
    if not getattr(Trainer.load_checkpoint, "_fairseq_ot_warm_start", False):
        Trainer.load_checkpoint = _telling_the_model(Trainer.load_checkpoint)


def _telling_the_model(load_checkpoint):
    @functools.wraps(load_checkpoint)
    def load_telling_the_model(trainer, filename, reset_optimizer=False, *args, **kwargs):
        model = trainer._model  # the model itself: trainer.model may be a data-parallel wrapper
        warm_start = reset_optimizer and trainer.cfg.checkpoint.finetune_from_model is not None
        if not warm_start or not hasattr(model, "warm_starting"):
            return load_checkpoint(trainer, filename, reset_optimizer, *args, **kwargs)
        model.warm_starting = True
        try:
            return load_checkpoint(trainer, filename, reset_optimizer, *args, **kwargs)
        finally:
            model.warm_starting = False

    load_telling_the_model._fairseq_ot_warm_start = True
    return load_telling_the_model

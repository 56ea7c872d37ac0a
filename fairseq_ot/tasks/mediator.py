"""Mediator tasks: fairseq's translation and language-modeling tasks whose
model is a generator (from `--arch`) plus a mediator (from
`--mediator-arch`), for the `cot` and `gjs` criterions (Lu et al., ICML 2019,
"CoT: Cooperative Training for Generative Modeling of Discrete Data")."""

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Optional

from fairseq import models
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.tasks import register_task
from fairseq.tasks.language_modeling import LanguageModelingConfig, LanguageModelingTask
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import II, OmegaConf

from fairseq_ot.errors import FlagError, require
from fairseq_ot.models.generator_mediator import (
    GENERATOR_INIT,
    RANDOM_INIT,
    GeneratorMediatorModel,
)

MEDIATOR_ARGS = "mediator_model_args"
# the model arguments that each --mediator-* size (and dropout) flag sets
FLAG_ARGS = {
    "mediator_embed_dim": ("encoder_embed_dim", "decoder_embed_dim", "decoder_out_embed_dim",
                           "decoder_input_dim", "decoder_output_dim"),
    "mediator_hidden_dim": ("encoder_hidden_size", "decoder_hidden_size",
                            "encoder_ffn_embed_dim", "decoder_ffn_embed_dim"),
    "mediator_layers": ("encoder_layers", "decoder_layers"),
    "mediator_dropout": ("dropout",),
}


@dataclass
class MediatorConfig:
    mediator_arch: str = field(
        default="",
        metadata={"help": "fairseq architecture of the mediator (default: the generator's --arch)"},
    )
    mediator_embed_dim: int = field(
        default=64, metadata={"help": "mediator embedding size (every embed_dim of the arch)"}
    )
    mediator_hidden_dim: int = field(
        default=64,
        metadata={"help": "mediator hidden size: LSTM hidden size, Transformer FFN size"},
    )
    mediator_layers: int = field(
        default=1, metadata={"help": "mediator layers (encoder and decoder)"}
    )
    mediator_dropout: float = field(default=0.1, metadata={"help": "mediator dropout"})
    mediator_overrides: str = field(
        default="{}",
        metadata={"help": "JSON dict of further mediator model arguments, "
                  "e.g. '{\"attention_dropout\": 0.1}'"},
    )
    mediator_init: str = field(
        default=RANDOM_INIT,
        metadata={"help": "the mediator when --finetune-from-model warm-starts the generator "
                  "from a plain fairseq checkpoint: random; generator (a copy of the "
                  "generator, of its architecture and sizes); or the path of a plain "
                  "checkpoint that fits the mediator of the --mediator-* flags"},
    )
    # fairseq's own flag, read to check --mediator-init and to name the checkpoint in errors
    finetune_from_model: Optional[str] = II("checkpoint.finetune_from_model")


def mediator_model_args(cfg, generator_cfg):
    """The mediator's model arguments: the generator's, then the mediator's
    sizes under every name fairseq's encoder-decoder and LM architectures use
    (none with --mediator-init generator: a copy of the generator), then the
    JSON overrides. (fairseq's legacy models read global flags such as
    --criterion from their arguments, so starting from scratch fails.)"""
    if isinstance(generator_cfg, argparse.Namespace):
        base = dict(vars(generator_cfg))
    else:
        base = OmegaConf.to_container(generator_cfg, resolve=True, enum_to_str=True)
    generator_arch = base.pop("arch", None) or base.pop("_name")
    base.pop("_name", None)
    # legacy architectures (lstm) read this global flag, absent from the
    # dataclass configs of newer ones (transformer_lm)
    base.setdefault("criterion", None)
    arch = cfg.mediator_arch or generator_arch
    if arch not in ARCH_MODEL_REGISTRY:
        raise FlagError(f"--mediator-arch {arch!r} is not a fairseq architecture")
    for flag in ("embed_dim", "hidden_dim", "layers"):
        value = getattr(cfg, f"mediator_{flag}")
        require(value >= 1, f"--mediator-{flag.replace('_', '-')}", ">= 1", value)
    require(0 <= cfg.mediator_dropout < 1, "--mediator-dropout", "in [0, 1)", cfg.mediator_dropout)
    try:
        overrides = json.loads(cfg.mediator_overrides)
    except json.JSONDecodeError as error:
        raise FlagError(f"--mediator-overrides is not JSON: {error}") from None
    if not isinstance(overrides, dict):
        raise FlagError(f"--mediator-overrides must be a JSON object, got {cfg.mediator_overrides}")
    require_warm_start(cfg)
    if cfg.mediator_init == GENERATOR_INIT:  # a copy: the generator's arguments
        require_generator_sizes(cfg, base, generator_arch)
        sizes = {}
    else:
        sizes = {arg: getattr(cfg, flag) for flag, args in FLAG_ARGS.items() for arg in args}
    return argparse.Namespace(**{**base, **sizes, **overrides, "_name": arch, "arch": arch})


def require_warm_start(cfg):
    """--mediator-init acts when --finetune-from-model loads a plain
    checkpoint: without one it would be ignored, silently."""
    if cfg.mediator_init != RANDOM_INIT and not cfg.finetune_from_model:
        raise FlagError(f"--mediator-init {cfg.mediator_init} needs --finetune-from-model: it "
                        "starts the mediator when the generator is warm-started")


def require_generator_sizes(cfg, generator_args, generator_arch):
    """With --mediator-init generator the mediator is built with the
    generator's model arguments: a --mediator-* flag set to another value
    than its default and the generator's is refused, not ignored (the
    default cannot be told from the same value given explicitly)."""
    copy = "--mediator-init generator builds the mediator with the generator's model arguments"
    if cfg.mediator_arch not in ("", generator_arch):
        raise FlagError(f"--mediator-arch {cfg.mediator_arch} differs from the generator's "
                        f"{generator_arch}: {copy}")
    defaults = {f.name: f.default for f in dataclasses.fields(MediatorConfig)}
    for flag, args in FLAG_ARGS.items():
        value = getattr(cfg, flag)
        if value == defaults[flag]:
            continue
        for arg in args:
            if arg in generator_args and generator_args[arg] != value:
                raise FlagError(f"--{flag.replace('_', '-')} {value} differs from the generator's "
                                f"{arg} {generator_args[arg]}: {copy}")


class MediatorTaskMixin:
    """Builds GeneratorMediatorModel; generation uses the generators alone."""

    builds_model = GeneratorMediatorModel  # what makes a task a mediator task

    def build_model(self, cfg, from_checkpoint=False):
        generator = super().build_model(cfg, from_checkpoint)
        # Kept in the task state, which checkpoints save and fairseq restores
        # before building the model: fairseq-generate rebuilds the trained
        # mediator without being given the mediator flags again.
        task_cfg = getattr(self, "cfg", None) or self.args  # legacy tasks keep args
        if MEDIATOR_ARGS not in self.state.state_dict:
            args = vars(mediator_model_args(task_cfg, cfg))
            self.state.merge_state_dict({MEDIATOR_ARGS: args})
        mediator_args = argparse.Namespace(**self.state.state_dict[MEDIATOR_ARGS])
        mediator = models.build_model(mediator_args, self)
        return GeneratorMediatorModel(generator, mediator, task_cfg.mediator_init,
                                      f"--finetune-from-model {task_cfg.finetune_from_model}")

    def build_generator(self, models, args, **kwargs):
        generators = [getattr(m, "generator", m) for m in models]
        return super().build_generator(generators, args, **kwargs)


@dataclass
class MediatorTranslationConfig(TranslationConfig, MediatorConfig):
    pass


@register_task("mediator_translation", dataclass=MediatorTranslationConfig)
class MediatorTranslationTask(MediatorTaskMixin, TranslationTask):
    """Translation (also summarization, any seq2seq data) with a mediator M(y | x)."""


@dataclass
class MediatorLanguageModelingConfig(LanguageModelingConfig, MediatorConfig):
    pass


@register_task("mediator_language_modeling", dataclass=MediatorLanguageModelingConfig)
class MediatorLanguageModelingTask(MediatorTaskMixin, LanguageModelingTask):
    """Language modeling with a mediator language model M(y)."""

"""Mediator tasks: fairseq's translation and language-modeling tasks whose
model is a generator (from `--arch`) plus a mediator (from
`--mediator-arch`), for the `cot` and `gjs` criterions (Lu et al., ICML 2019,
"CoT: Cooperative Training for Generative Modeling of Discrete Data")."""

import argparse
import json
from dataclasses import dataclass, field

from fairseq import models
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.tasks import register_task
from fairseq.tasks.language_modeling import LanguageModelingConfig, LanguageModelingTask
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import OmegaConf

from fairseq_ot.errors import FlagError, require
from fairseq_ot.models.generator_mediator import GeneratorMediatorModel

MEDIATOR_ARGS = "mediator_model_args"


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


def mediator_model_args(cfg, generator_cfg):
    """The mediator's model arguments: the generator's, then the mediator's
    sizes under every name fairseq's encoder-decoder and LM architectures use,
    then the JSON overrides. (fairseq's legacy models read global flags such as
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
    embed, hidden, layers = cfg.mediator_embed_dim, cfg.mediator_hidden_dim, cfg.mediator_layers
    sizes = {
        "encoder_embed_dim": embed, "decoder_embed_dim": embed,
        "decoder_out_embed_dim": embed, "decoder_input_dim": embed, "decoder_output_dim": embed,
        "encoder_hidden_size": hidden, "decoder_hidden_size": hidden,
        "encoder_ffn_embed_dim": hidden, "decoder_ffn_embed_dim": hidden,
        "encoder_layers": layers, "decoder_layers": layers,
        "dropout": cfg.mediator_dropout,
    }
    return argparse.Namespace(**{**base, **sizes, **overrides, "_name": arch, "arch": arch})


class MediatorTaskMixin:
    """Builds GeneratorMediatorModel; generation uses the generators alone."""

    builds_model = GeneratorMediatorModel  # what makes a task a mediator task

    def build_model(self, cfg, from_checkpoint=False):
        generator = super().build_model(cfg, from_checkpoint)
        # Kept in the task state, which checkpoints save and fairseq restores
        # before building the model: fairseq-generate rebuilds the trained
        # mediator without being given the mediator flags again.
        if MEDIATOR_ARGS not in self.state.state_dict:
            task_cfg = getattr(self, "cfg", None) or self.args  # legacy tasks keep args
            args = vars(mediator_model_args(task_cfg, cfg))
            self.state.merge_state_dict({MEDIATOR_ARGS: args})
        mediator_args = argparse.Namespace(**self.state.state_dict[MEDIATOR_ARGS])
        mediator = models.build_model(mediator_args, self)
        return GeneratorMediatorModel(generator, mediator)

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

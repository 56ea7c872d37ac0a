import math
from dataclasses import dataclass, field, fields

from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from fairseq_ot.compat.update_count import FollowsUpdateCount
from fairseq_ot.criterions.mediator_objective import MediatorObjective, MediatorObjectiveConfig
from fairseq_ot.errors import FlagError, check_label_smoothing_flags, require, stops_on_divergence
from fairseq_ot.modules.divergences import MIN_MEDIATOR_PI, MIN_TOKEN_PI, token_js_pi

MODES = ("token", "mediator")


@dataclass
class GJSModeConfig(FairseqDataclass):
    gjs_pi: float = field(
        default=0.5,
        metadata={"help": f"pi in [{MIN_TOKEN_PI}, 1) (mediator mode: [{MIN_MEDIATOR_PI}, 1)): "
                  "towards 0 maximum likelihood KL[P||Q], towards 1 KL[Q||P]"},
    )
    gjs_mode: ChoiceEnum(MODES) = field(
        default="token",
        metadata={"help": "token: per step under teacher forcing, P the (label-smoothed) "
                  "target, no mediator; mediator: sequence level with a mediator task "
                  "(--cot-* flags), pi = 0.5 is cot"},
    )


@dataclass
class TokenGJSConfig(GJSModeConfig):
    label_smoothing: float = field(
        default=0.0, metadata={"help": "token mode: label smoothing of the target P"}
    )
    sentence_avg: bool = II("optimization.sentence_avg")


@dataclass
class MediatorGJSConfig(MediatorObjectiveConfig, GJSModeConfig):
    pass


@dataclass
class GJSCriterionConfig(MediatorGJSConfig, TokenGJSConfig):
    """The flags of `--criterion gjs`: both modes' (fairseq registers one
    dataclass per name); each mode refuses the other's flags."""


def refuse_other_mode_flags(cfg, mode):
    """A flag of the other mode set away from its default is a one-line error,
    not silently ignored."""
    own, other = (MediatorGJSConfig, TokenGJSConfig) if mode == "mediator" else (TokenGJSConfig, MediatorGJSConfig)
    own_names = {f.name for f in fields(own)}
    for other_field in fields(other):
        # fields that mirror a global flag (--seed) take its value, not a default
        mirrors_global = isinstance(other_field.default, str) and other_field.default.startswith("${")
        if (other_field.name not in own_names and not mirrors_global
                and getattr(cfg, other_field.name) != other_field.default):
            other_mode = "token" if mode == "mediator" else "mediator"
            raise FlagError(f"--{other_field.name.replace('_', '-')} applies to --gjs-mode "
                            f"{other_mode} only, not {mode}")


@register_criterion("gjs", dataclass=GJSCriterionConfig)
class GJSCriterion(FollowsUpdateCount, LabelSmoothedCrossEntropyCriterion):
    """Generalized Jensen-Shannon divergence (Huszar 2015, "How (not) to Train
    your Generative Model: Scheduled Sampling, Likelihood, Adversary?"),

        JS_pi[P||Q] = pi KL[P||M] + (1 - pi) KL[Q||M],  M = pi P + (1 - pi) Q,

    per target position under teacher forcing (`--gjs-mode token`):
    loss = sum_t JS_pi[P_t||Q_t] / (pi (1 - pi)), which tends to the NLL as
    pi -> 0 and to KL[Q_t||P_t] as pi -> 1 (with label smoothing; with a
    one-hot P it becomes a bounded, noise-robust loss). `--gjs-mode mediator`
    builds MediatorGJSCriterion instead."""

    @classmethod
    def build_criterion(cls, cfg, task):
        mode = str(cfg.gjs_mode)
        refuse_other_mode_flags(cfg, mode)
        if mode == "mediator":
            return MediatorGJSCriterion.build_criterion(cfg, task)
        return super().build_criterion(cfg, task)

    def __init__(self, task, sentence_avg, gjs_pi, label_smoothing):
        require(MIN_TOKEN_PI <= gjs_pi < 1, "--gjs-pi", f"in [{MIN_TOKEN_PI}, 1)", gjs_pi)
        check_label_smoothing_flags(label_smoothing, 0)
        super().__init__(task, sentence_avg, label_smoothing)
        self.pi = gjs_pi
        self.follow_update_count(task)

    @stops_on_divergence
    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        lprobs = model.get_normalized_probs(net_output, log_probs=True)
        lprobs = lprobs.view(-1, lprobs.size(-1))
        target = model.get_targets(sample, net_output).view(-1)
        # masking the per-token results, not the [N, V] log-probabilities,
        # avoids a copy of the largest tensor of the step
        mask = target.ne(self.padding_idx)
        loss = token_js_pi(lprobs, target, self.pi, self.eps).masked_fill(~mask, 0.0).sum()
        # logged only: a second gather with grad would add a [N, V] gradient
        nll_loss = -lprobs.detach().gather(-1, target.unsqueeze(-1)).squeeze(-1)
        nll_loss = nll_loss.masked_fill(~mask, 0.0).sum()
        nsentences = sample["target"].size(0)
        sample_size = nsentences if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "gjs_sum": loss.data * (self.pi * (1 - self.pi)),
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        ntokens = sum(log.get("ntokens", 0) for log in logging_outputs)
        gjs = sum(float(log.get("gjs_sum", 0)) for log in logging_outputs)
        if ntokens > 0:
            metrics.log_scalar("js_pi", gjs / ntokens / math.log(2), ntokens, round=4)


class MediatorGJSCriterion(MediatorObjective):
    """JS_pi[P_data||G] with a mediator (`--criterion gjs --gjs-mode mediator`,
    Huszar 2015 with Lu et al., ICML 2019): the mediator learns
    M = pi P_data + (1 - pi) G by NLL weighted pi : (1 - pi), the generator
    follows 2 (1 - pi) KL[G||M] along its samples; pi = 1/2 is `cot` exactly."""

    mediator_flags = "--gjs-mode mediator"

    def __init__(self, task, cfg):
        require(MIN_MEDIATOR_PI <= cfg.gjs_pi < 1, "--gjs-pi", f"in [{MIN_MEDIATOR_PI}, 1) with "
                "--gjs-mode mediator", cfg.gjs_pi)
        super().__init__(task, cfg, pi=cfg.gjs_pi)

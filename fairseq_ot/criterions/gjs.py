import math
from dataclasses import dataclass, field

from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics

from fairseq_ot.criterions.cot import CotCriterionConfig, MediatorObjective
from fairseq_ot.criterions.flag_checks import require
from fairseq_ot.modules.divergences import token_js_pi

MODES = ("token", "mediator")


@dataclass
class GJSCriterionConfig(CotCriterionConfig):
    gjs_pi: float = field(
        default=0.5,
        metadata={"help": "pi in (0, 1): towards 0 maximum likelihood KL[P||Q], "
                  "towards 1 KL[Q||P]"},
    )
    gjs_mode: ChoiceEnum(MODES) = field(
        default="token",
        metadata={"help": "token: per step under teacher forcing, P the (label-smoothed) "
                  "target, no mediator; mediator: sequence level with a mediator task "
                  "(--cot-* flags), pi = 0.5 is cot"},
    )
    label_smoothing: float = field(
        default=0.0, metadata={"help": "token mode: label smoothing of the target P"}
    )


@register_criterion("gjs", dataclass=GJSCriterionConfig)
class GJSCriterion(MediatorObjective):
    """Generalized Jensen-Shannon divergence (Huszar 2015, "How (not) to Train
    your Generative Model: Scheduled Sampling, Likelihood, Adversary?"),

        JS_pi[P||Q] = pi KL[P||M] + (1 - pi) KL[Q||M],  M = pi P + (1 - pi) Q.

    token mode: loss = sum_t JS_pi[P_t||Q_t] / (pi (1 - pi)), which tends to the
    NLL as pi -> 0 and to KL[Q_t||P_t] as pi -> 1 (with label smoothing; with a
    one-hot P it becomes a bounded, noise-robust loss). mediator mode: the
    mediator learns M = pi P_data + (1 - pi) G, the generator follows
    2 (1 - pi) KL[G||M] along its samples; pi = 1/2 is `cot` exactly."""

    mediator_flags = "--gjs-mode mediator"

    def __init__(self, task, sentence_avg, gjs_pi, gjs_mode, label_smoothing,
                 cot_max_len_a, cot_max_len_b, cot_samples_per_source, cot_mediator_steps, seed):
        require(0 < gjs_pi < 1, "--gjs-pi", "in (0, 1)", gjs_pi)
        require(0 <= label_smoothing < 1, "--label-smoothing", "in [0, 1)", label_smoothing)
        self.mode = str(gjs_mode)
        if self.mode == "mediator":
            super().__init__(task, sentence_avg, gjs_pi, cot_max_len_a, cot_max_len_b,
                             cot_samples_per_source, cot_mediator_steps, seed)
        else:
            super(MediatorObjective, self).__init__(task)
            self.sentence_avg, self.pi = sentence_avg, gjs_pi
        self.label_smoothing = label_smoothing

    def forward(self, model, sample, reduce=True):
        if self.mode == "mediator":
            return super().forward(model, sample, reduce)
        net_output = model(**sample["net_input"])
        lprobs = model.get_normalized_probs(net_output, log_probs=True)
        lprobs = lprobs.view(-1, lprobs.size(-1))
        target = model.get_targets(sample, net_output).view(-1)
        # masking the per-token results, not the [N, V] log-probabilities,
        # avoids a copy of the largest tensor of the step
        mask = target.ne(self.padding_idx)
        js = token_js_pi(lprobs, target, self.pi, self.label_smoothing).masked_fill(~mask, 0.0)
        loss = js.sum() / (self.pi * (1 - self.pi))
        # logged only: a second gather with grad would add a [N, V] gradient
        nll_loss = -lprobs.detach().gather(-1, target.unsqueeze(-1)).squeeze(-1)
        nll_loss = nll_loss.masked_fill(~mask, 0.0).sum()
        nsentences = sample["target"].size(0)
        sample_size = nsentences if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "gjs_sum": js.sum().data,
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        if any("cot_samples" in log for log in logging_outputs):
            super().reduce_metrics(logging_outputs)
            return
        LabelSmoothedCrossEntropyCriterion.reduce_metrics(logging_outputs)
        ntokens = sum(log.get("ntokens", 0) for log in logging_outputs)
        gjs = sum(float(log.get("gjs_sum", 0)) for log in logging_outputs)
        if ntokens > 0:
            metrics.log_scalar("js_pi", gjs / ntokens / math.log(2), ntokens, round=4)

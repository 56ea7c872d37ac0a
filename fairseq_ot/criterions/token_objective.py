"""What `tailr`, `mixce` and `emo` share: a per-token loss under teacher
forcing (fairseq_ot.modules.token_objectives), summed over the reference
tokens and normalized by sample_size, logged as label_smoothed_cross_entropy
logs (loss and nll_loss in bits, ppl, accuracy) plus per-token means; not a
registered criterion itself."""

from dataclasses import dataclass, field

from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from fairseq_ot.compat.update_count import FollowsUpdateCount
from fairseq_ot.errors import check_label_smoothing_flags, stops_on_divergence
from fairseq_ot.modules.token_objectives import target_log_probs


@dataclass
class TokenObjectiveConfig(FairseqDataclass):
    report_accuracy: bool = field(
        default=False, metadata={"help": "also log the accuracy of the argmax predictions (as "
                                 "label_smoothed_cross_entropy)"},
    )
    ignore_prefix_size: int = field(
        default=0, metadata={"help": "leave the first N target tokens of each sentence out of the "
                             "loss (as label_smoothed_cross_entropy)"},
    )
    sentence_avg: bool = II("optimization.sentence_avg")


class TokenObjective(FollowsUpdateCount, LabelSmoothedCrossEntropyCriterion):
    """loss = sum_t loss_t over the reference tokens, loss_t from
    `token_loss`; subclasses name the per-token values they log in
    `logged_means` (logging-output key -> metric, a mean per target token)."""

    logged_means = {}

    def __init__(self, task, sentence_avg, label_smoothing=0.0, ignore_prefix_size=0,
                 report_accuracy=False):
        check_label_smoothing_flags(label_smoothing, ignore_prefix_size)
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        self.follow_update_count(task)

    def token_loss(self, model, lprobs, target):
        """(loss [N], {logging key: values [N]}) from log-probabilities [N, V]
        and reference tokens [N], padding included (masked by the caller)."""
        raise NotImplementedError

    @stops_on_divergence
    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
        # masking the per-token results, not the [N, V] log-probabilities
        padding = target.eq(self.padding_idx)
        losses, values = self.token_loss(model, lprobs, target)
        loss = losses.masked_fill(padding, 0.0).sum()
        nll_loss = -target_log_probs(lprobs.detach(), target).masked_fill(padding, 0.0).sum()
        nsentences = sample["target"].size(0)
        sample_size = nsentences if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": sample_size,
        }
        for key, value in values.items():
            logging_output[key] = value.detach().masked_fill(padding, 0.0).sum()
        if self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, sample)
            logging_output["n_correct"] = n_correct.item()
            logging_output["total"] = total.item()
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        ntokens = sum(log.get("ntokens", 0) for log in logging_outputs)
        for key, name in cls.logged_means.items():
            total = sum(float(log.get(key, 0)) for log in logging_outputs)
            if ntokens > 0:
                metrics.log_scalar(name, total / ntokens, ntokens, round=4)

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion

from fairseq_ot.criterions.token_objective import TokenObjective, TokenObjectiveConfig
from fairseq_ot.errors import require
from fairseq_ot.modules.token_objectives import tailr_token_loss


@dataclass
class TaiLrCriterionConfig(TokenObjectiveConfig):
    label_smoothing: float = field(
        default=0.1,
        metadata={"help": "eps, spread uniformly over all V types and not reweighted; 0.1 as the "
                  "reference's IWSLT14 script (fairseq's label_smoothed_cross_entropy defaults to 0)"},
    )
    density_ratio_threshold: float = field(
        default=0.1,
        metadata={"help": "gamma in [0, 1] of the weight p / (gamma + (1 - gamma) p): 0 is maximum "
                  "likelihood, 1 weights each token by its probability p; 0.1 as the reference's "
                  "IWSLT14 script"},
    )
    density_min_weight: float = field(
        default=0.3,
        metadata={"help": "lower clamp in [0, 1] of the weights (1: every weight 1, maximum "
                  "likelihood); 0.3 as the reference's IWSLT14 script"},
    )


@register_criterion("tailr", dataclass=TaiLrCriterionConfig)
class TaiLrCriterion(TokenObjective):
    """TaiLr (Ji et al., ICLR 2023, "Tailoring Language Generation Models
    under Total Variation Distance"): the NLL of each reference token
    weighted by its probability under the proxy gamma P_data + (1 - gamma) Q,

        loss = sum_t (1 - eps) w_t (-log q(y_t)) + (eps / V) sum_v (-log q_t(v)),
        w_t = sg(clamp(q(y_t) / (gamma + (1 - gamma) q(y_t)), min_weight, 1)),

    which down-weights the tokens the model finds unlikely (a total
    variation bound instead of the KL of maximum likelihood). gamma = 0 is
    label-smoothed MLE."""

    logged_means = {"tailr_weight_sum": "tailr_weight"}

    def __init__(self, task, sentence_avg, label_smoothing, density_ratio_threshold, density_min_weight,
                 ignore_prefix_size=0, report_accuracy=False):
        require(0 <= density_ratio_threshold <= 1, "--density-ratio-threshold", "in [0, 1]",
                density_ratio_threshold)
        require(0 <= density_min_weight <= 1, "--density-min-weight", "in [0, 1]", density_min_weight)
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        self.gamma = density_ratio_threshold
        self.min_weight = density_min_weight

    def token_loss(self, model, lprobs, target):
        loss, weight = tailr_token_loss(lprobs, target, self.gamma, self.min_weight, self.eps)
        return loss, {"tailr_weight_sum": weight}

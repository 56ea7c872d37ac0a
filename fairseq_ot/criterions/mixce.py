from dataclasses import dataclass, field

from fairseq.criterions import register_criterion

from fairseq_ot.criterions.token_objective import TokenObjective, TokenObjectiveConfig
from fairseq_ot.errors import require
from fairseq_ot.modules.token_objectives import mixce_token_loss


@dataclass
class MixCECriterionConfig(TokenObjectiveConfig):
    mixce_eta: float = field(
        default=0.5,
        metadata={"help": "eta in [0, 1], the weight of the forward cross-entropy (the NLL): 1 is "
                  "maximum likelihood, 0 the reverse cross-entropy's term alone; 0.5 as the "
                  "reference's --mixing_ratio (the paper tunes it over 0, .01, .1, .3, .5, .7, .9, "
                  ".99, 1)"},
    )


@register_criterion("mixce", dataclass=MixCECriterionConfig)
class MixCECriterion(TokenObjective):
    """MixCE (Zhang et al., ACL 2023, "MixCE: Training Autoregressive
    Language Models by Mixing Forward and Reverse Cross-Entropies"):
    eta CE[P_data||Q] + (1 - eta) CE[Q||P_data], the reverse term
    approximated under teacher forcing by the NLL weighted by the model's
    own (detached) probability of the reference token,

        loss = sum_t (eta + (1 - eta) sg(q(y_t))) (-log q(y_t)).

    eta = 1 is maximum likelihood."""

    logged_means = {"mixce_weight_sum": "mixce_weight"}

    def __init__(self, task, sentence_avg, mixce_eta, ignore_prefix_size=0, report_accuracy=False):
        require(0 <= mixce_eta <= 1, "--mixce-eta", "in [0, 1]", mixce_eta)
        super().__init__(task, sentence_avg, 0.0, ignore_prefix_size, report_accuracy)
        self.eta = mixce_eta

    def token_loss(self, model, lprobs, target):
        loss, weight = mixce_token_loss(lprobs, target, self.eta)
        return loss, {"mixce_weight_sum": weight}

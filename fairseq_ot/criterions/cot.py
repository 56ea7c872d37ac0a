from dataclasses import dataclass

from fairseq.criterions import register_criterion

from fairseq_ot.criterions.mediator_objective import MediatorObjective, MediatorObjectiveConfig


@dataclass
class CotCriterionConfig(MediatorObjectiveConfig):
    pass


@register_criterion("cot", dataclass=CotCriterionConfig)
class CotCriterion(MediatorObjective):
    """Cooperative training (Lu et al., ICML 2019, "CoT: Cooperative Training
    for Generative Modeling of Discrete Data"):

        J_m = 1/2 (E_data[-log M(s)] + E_{s~G}[-log M(s)])
        J_g = E_{s~G} sum_t pi_g(s_<t)^T (log pi_g(s_<t) - log pi_m(s_<t))

    the mediator objective at pi = 1/2; one backward of J_g + J_m trains both
    (disjoint parameters, cross terms detached); the logged `jsd` is the
    mediator's estimate of JSD(data || G)."""

    def __init__(self, task, cfg):
        super().__init__(task, cfg, pi=0.5)

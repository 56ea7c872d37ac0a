from dataclasses import dataclass

from fairseq.criterions import register_criterion

from fairseq_ot.criterions.token_objective import TokenObjective, TokenObjectiveConfig
from fairseq_ot.errors import FlagError
from fairseq_ot.modules.token_objectives import emo_token_loss, output_embedding


@dataclass
class EMOCriterionConfig(TokenObjectiveConfig):
    """EMO's reference code has no flag of its own."""


@register_criterion("emo", dataclass=EMOCriterionConfig)
class EMOCriterion(TokenObjective):
    """EMO (Ren et al., ICLR 2024, "Earth Mover Distance Optimization for
    Auto-Regressive Language Modeling"): the earth mover distance from the
    one-hot reference to q_t, under the cosine cost of the model's output
    embedding E (detached, rows of unit length), mixed with the NLL at their
    ratio per token,

        EMO_t = 1 - e_{y_t}^T E^T q_t,
        loss = sum_t 0.5 (NLL_t + sg(NLL_t / (EMO_t + 1e-10)) EMO_t).

    The cost is the current output embedding at each step, detached (the
    reference's `adaptive_emo`); its `emo` copies the embedding once before
    fine-tuning a pretrained model, a copy that neither a model trained
    from scratch nor a resumed run could take the same way."""

    logged_means = {"emo_sum": "emo"}

    def __init__(self, task, sentence_avg, ignore_prefix_size=0, report_accuracy=False):
        super().__init__(task, sentence_avg, 0.0, ignore_prefix_size, report_accuracy)

    def token_loss(self, model, lprobs, target):
        embedding = output_embedding(getattr(model, "decoder", None))
        if embedding is None or embedding.size(0) != lprobs.size(-1):
            found = "none" if embedding is None else f"one of {embedding.size(0)} rows"
            raise FlagError(f"--criterion emo needs the output embedding of the decoder "
                            f"(output_projection, fc_out or shared embed_tokens), a row per type "
                            f"of the {lprobs.size(-1)} predicted; {type(model).__name__} has {found}")
        loss, emo = emo_token_loss(lprobs, target, embedding)
        return loss, {"emo_sum": emo}

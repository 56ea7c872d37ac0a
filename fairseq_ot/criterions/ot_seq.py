from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
    label_smoothed_nll_loss,
)
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from omegaconf import II

from fairseq_ot.compat.update_count import FollowsUpdateCount
from fairseq_ot.errors import (
    FlagError, check_label_smoothing_flags, require, require_finite, require_weight,
    stops_on_divergence,
)
from fairseq_ot.modules.batch_random import batch_generator
from fairseq_ot.modules.optimal_transport import GRADIENT_MODES, SOLVERS
from fairseq_ot.modules.soft_embedding import BELIEFS, sequence_ot_distance, soft_embed

# Cosine costs reach 2; below this beta exp(-2 / beta) leaves float32's range.
MIN_OT_BETA = 0.04


@dataclass
class OTSeqCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    ot_weight: float = field(
        default=0.1,
        metadata={"help": "gamma: weight of the summed per-sentence OT distance "
                  "between the soft predictions and the reference"},
    )
    ot_beta: float = field(
        default=0.5,
        metadata={"help": f"IPOT proximal step size (Sinkhorn: entropic "
                  f"regularization), at least {MIN_OT_BETA}"},
    )
    ot_iters: int = field(
        default=50, metadata={"help": "IPOT outer iterations (Sinkhorn: sweeps)"}
    )
    ot_inner_iters: int = field(
        default=1, metadata={"help": "Sinkhorn sweeps inside each IPOT iteration"}
    )
    ot_temperature: float = field(
        default=1.0,
        metadata={"help": "temperature tau of the beliefs softmax(logits / tau) and "
                  "gumbel_softmax; small values approach argmax"},
    )
    ot_belief: ChoiceEnum(BELIEFS) = field(
        default="softmax",
        metadata={"help": "the model's beliefs w_t that E^T w_t embeds: softmax(z / tau) (the paper's "
                  "soft-argmax), gumbel_softmax (softmax((z + Gumbel noise) / tau), drawn from --seed, "
                  "the update and the sentence ids) or logits (raw z, as the released code's "
                  "Texar soft ids)"},
    )
    ot_solver: ChoiceEnum(SOLVERS) = field(
        default="ipot", metadata={"help": "OT solver"}
    )
    ot_gradient: ChoiceEnum(GRADIENT_MODES) = field(
        default="envelope",
        metadata={"help": "unrolled: backpropagate through every solver iteration; "
                  "envelope: plan T without grad, gradient of sum(T * C) "
                  "(exact at convergence, cheaper)"},
    )
    ot_detach_embeddings: bool = field(
        default=False,
        metadata={"help": "no OT gradient into the embedding matrix, so the cosine "
                  "cost cannot be lowered by collapsing embedding directions"},
    )
    ot_copy_weight: float = field(
        default=0.0,
        metadata={"help": "weight of L_copy, the summed OT distance between the "
                  "source tokens (encoder embeddings) and the soft predictions"},
    )
    ot_warmup_updates: int = field(
        default=0,
        metadata={"help": "ramp both OT weights linearly from 0 over this many updates"},
    )
    seed: int = II("common.seed")


@register_criterion("ot_seq", dataclass=OTSeqCriterionConfig)
class OTSeqCriterion(FollowsUpdateCount, LabelSmoothedCrossEntropyCriterion):
    """Label-smoothed MLE plus sequence-level optimal transport,

        loss = sum_t LS-NLL(y_t) + gamma * sum_s OT(E^T softmax(z_s / tau), E[y_s])
               + gamma_copy * sum_s OT(E_src[x_s], E^T softmax(z_s / tau))

    with cosine cost between embeddings and the OT plan from IPOT or Sinkhorn
    (Chen et al., ICLR 2019, "Improving Sequence-to-Sequence Learning via
    Optimal Transport")."""

    def __init__(
        self,
        task,
        sentence_avg,
        label_smoothing,
        ot_weight,
        ot_beta,
        ot_iters,
        ot_inner_iters,
        ot_temperature,
        ot_solver,
        ot_gradient,
        ot_detach_embeddings,
        ot_copy_weight,
        ot_warmup_updates,
        ot_belief="softmax",
        seed=1,
        ignore_prefix_size=0,
        report_accuracy=False,
    ):
        super().__init__(
            task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy
        )
        require_weight("--ot-weight", ot_weight)
        require_weight("--ot-copy-weight", ot_copy_weight)
        if ot_copy_weight > 0 and task is not None and task.source_dictionary is None:
            raise FlagError(f"--ot-copy-weight needs source tokens; the source of "
                            f"{type(task).__name__} is not text (image features?)")
        require(ot_beta >= MIN_OT_BETA, "--ot-beta", f">= {MIN_OT_BETA}", ot_beta)
        require(ot_iters >= 1, "--ot-iters", ">= 1", ot_iters)
        require(ot_inner_iters >= 1, "--ot-inner-iters", ">= 1", ot_inner_iters)
        require(ot_temperature > 0, "--ot-temperature", "> 0", ot_temperature)
        if str(ot_belief) == "logits" and ot_temperature != 1.0:
            raise FlagError(f"--ot-temperature {ot_temperature} has no effect with --ot-belief logits "
                            f"(cosine costs ignore the scale of E^T z): leave it at 1")
        require(ot_warmup_updates >= 0, "--ot-warmup-updates", ">= 0", ot_warmup_updates)
        check_label_smoothing_flags(label_smoothing, ignore_prefix_size)
        self.ot_weight = ot_weight
        self.ot_copy_weight = ot_copy_weight
        self.ot_temperature = ot_temperature
        self.ot_belief = str(ot_belief)
        self.seed = seed
        self.ot_detach_embeddings = ot_detach_embeddings
        self.ot_warmup_updates = ot_warmup_updates
        self.solver_args = dict(
            solver=str(ot_solver), beta=ot_beta, iters=ot_iters,
            inner_iters=ot_inner_iters, gradient=str(ot_gradient),
        )
        self.follow_update_count(task)

    def warmup_factor(self):
        if self.ot_warmup_updates == 0:
            return 1.0
        return min(1.0, self.num_updates / self.ot_warmup_updates)

    @stops_on_divergence
    def forward(self, model, sample, reduce=True):
        if not reduce:
            raise ValueError("ot_seq adds per-sentence OT terms and needs reduce=True")
        net_output = model(**sample["net_input"])
        lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
        loss, nll_loss = label_smoothed_nll_loss(
            lprobs, target, self.eps, ignore_index=self.padding_idx, reduce=True
        )
        batch_size = sample["target"].size(0)
        lprobs = lprobs.view(batch_size, -1, lprobs.size(-1))
        target = target.view(batch_size, -1)
        logging_output = {}
        if self.ot_weight > 0 or self.ot_copy_weight > 0:
            # outputs gone non-finite would reach the solver as NaN costs
            require_finite(self, model, nll_loss, "the NLL")
            pred, pred_mask = self.soft_predictions(model, net_output, lprobs, target, sample["id"])
        factor = self.warmup_factor()
        if self.ot_weight > 0:
            ot_distance = self.reference_ot(model, pred, pred_mask, target)
            loss = loss + factor * self.ot_weight * ot_distance.sum()
            logging_output["ot_loss_sum"] = ot_distance.sum().data
        if self.ot_copy_weight > 0:
            copy_distance = self.copy_ot(model, pred, pred_mask, sample)
            loss = loss + factor * self.ot_copy_weight * copy_distance.sum()
            logging_output["ot_copy_loss_sum"] = copy_distance.sum().data

        sample_size = batch_size if self.sentence_avg else sample["ntokens"]
        logging_output.update(
            loss=loss.data,
            nll_loss=nll_loss.data,
            ntokens=sample["ntokens"],
            nsentences=batch_size,
            sample_size=sample_size,
        )
        if self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, sample)
            logging_output["n_correct"] = n_correct.item()
            logging_output["total"] = total.item()
        return loss, sample_size, logging_output

    def embedding_matrix(self, model, part):
        module = getattr(model, part, None)
        weight = getattr(getattr(module, "embed_tokens", None), "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            raise FlagError(
                f"--criterion ot_seq needs a model whose {part} has an `embed_tokens` embedding "
                f"matrix; {type(module).__name__} of {type(model).__name__} has none"
            )
        return weight.detach() if self.ot_detach_embeddings else weight

    def soft_predictions(self, model, net_output, lprobs, target, sample_ids):
        embedding = self.embedding_matrix(model, "decoder")
        if embedding.size(0) != lprobs.size(-1):
            raise FlagError(
                f"--criterion ot_seq: decoder embeddings cover {embedding.size(0)} types but the "
                f"output distribution has {lprobs.size(-1)} (adaptive softmax?)"
            )
        mask = target.ne(self.padding_idx)
        # the raw logits, with the prefix that get_lprobs_and_target dropped from lprobs
        scores = net_output[0][:, self.ignore_prefix_size:] if self.ot_belief == "logits" else lprobs
        generator = None
        if self.ot_belief == "gumbel_softmax":
            generator = batch_generator(self.seed, self.num_updates, sample_ids)
        return soft_embed(scores, embedding, self.ot_temperature, mask, self.ot_belief, generator), mask

    def reference_ot(self, model, pred, pred_mask, target):
        reference = F.embedding(target, self.embedding_matrix(model, "decoder"))
        return sequence_ot_distance(pred, pred_mask, reference, pred_mask, **self.solver_args)

    def copy_ot(self, model, pred, pred_mask, sample):
        src_tokens = sample["net_input"]["src_tokens"]
        source = F.embedding(src_tokens, self.embedding_matrix(model, "encoder"))
        if source.size(-1) != pred.size(-1):
            raise FlagError(
                f"--ot-copy-weight needs encoder and decoder embeddings of one size, "
                f"got {source.size(-1)} and {pred.size(-1)}"
            )
        source_mask = src_tokens.ne(self.padding_idx)
        return sequence_ot_distance(source, source_mask, pred, pred_mask, **self.solver_args)

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        nsentences = sum(log.get("nsentences", 0) for log in logging_outputs)
        for name in ("ot_loss", "ot_copy_loss"):
            if any(name + "_sum" in log for log in logging_outputs):
                total = sum(log.get(name + "_sum", 0) for log in logging_outputs)
                metrics.log_scalar(name, total / max(nsentences, 1), nsentences, round=4)

import math
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from fairseq_ot.compat.update_count import FollowsUpdateCount
from fairseq_ot.errors import (
    FlagError, check_label_smoothing_flags, check_sample_length_flags, require, require_weight,
    stops_on_divergence,
)
from fairseq_ot.models.generator_mediator import mediator_tasks
from fairseq_ot.models.teacher import FrozenTeacher, load_teacher, task_name
from fairseq_ot.modules.batch_random import batch_generator, sentence_uniforms
from fairseq_ot.modules.divergences import MIN_DISTILL_BETA, js_beta
from fairseq_ot.modules.packed_positions import packed_logits
from fairseq_ot.modules.sampling import draw_continuations, teacher_forcing_input
from fairseq_ot.modules.token_prediction import BANNED_LOG_PROB, banned_symbols


# the key of the teacher's path and SHA-256 in a checkpoint's task state
TEACHER_RECORD = "fairseq_ot_teacher"


@dataclass
class DistillCriterionConfig(FairseqDataclass):
    teacher_path: str = field(
        default="", metadata={"help": "the teacher: a fairseq checkpoint of any architecture "
                              "over the student's dictionaries and task kind (a cot or gjs "
                              "mediator checkpoint gives its generator); frozen, never saved "
                              "in the student's checkpoints"}
    )
    teacher_sha256: str = field(
        default="", metadata={"help": "the SHA-256 the teacher file must have (empty: not "
                              "checked); the file's path and SHA-256 are recorded in every "
                              "checkpoint's task state (key fairseq_ot_teacher)"}
    )
    distill_beta: float = field(
        default=0.0, metadata={"help": "beta in [0, 1] of JS_beta[T||S] / (beta (1 - beta)): "
                               "0 is KL[T||S] (word-level KD), 1 KL[S||T]; (0, "
                               f"{MIN_DISTILL_BETA:g}) is refused (float32 range)"}
    )
    distill_on_policy: float = field(
        default=0.0, metadata={"help": "lambda in [0, 1]: fraction of sentences, drawn per "
                               "sentence from (seed, update, id), whose prefixes are the "
                               "student's own samples instead of the references"}
    )
    distill_alpha: float = field(
        default=0.0, metadata={"help": "weight of the label-smoothed NLL of the references "
                               "added to the divergence"}
    )
    distill_temperature: float = field(
        default=1.0, metadata={"help": "tau > 0: teacher and student logits divided by tau in "
                               "the divergence (not rescaled by tau^2); the NLL uses tau 1"}
    )
    distill_topk: int = field(
        default=0, metadata={"help": "K: the teacher's K most probable tokens per position, "
                             "renormalised per position (needs beta < 1); 0: the full vocabulary"}
    )
    distill_max_len_a: float = field(
        default=1.2, metadata={"help": "on-policy samples are at most a * source length + b "
                               "tokens (language models: b), and at most the student's max positions"}
    )
    distill_max_len_b: int = field(default=10, metadata={"help": "see --distill-max-len-a"})
    label_smoothing: float = field(
        default=0.0, metadata={"help": "epsilon of the NLL term (--distill-alpha)"}
    )
    sentence_avg: bool = II("optimization.sentence_avg")
    seed: int = II("common.seed")


@register_criterion("distill", dataclass=DistillCriterionConfig)
class DistillCriterion(FollowsUpdateCount, FairseqCriterion):
    """Distillation from a frozen teacher T into the student S (GKD: Agarwal
    et al., ICLR 2024, "On-Policy Distillation of Language Models: Learning
    from Self-Generated Mistakes"; Kim & Rush 2016 for word-level KD):

        L = sum_{x, y in batch} sum_t D_beta(T(.|y_<t, x) || S(.|y_<t, x))
            + alpha sum_t LS-NLL_S(y*_t | y*_<t, x),
        D_beta = JS_beta[T||S] / (beta (1 - beta)),  M = beta T + (1 - beta) S,

    over the full vocabulary (or the teacher's top K, renormalised), both
    at temperature tau, with y the reference y* for a fraction 1 - lambda of
    the sentences and a sample y ~ S of the student for the others
    (on-policy). No gradient flows through the sampling: the gradient is
    E_{y~S}[sum_t grad D_beta], GKD's choice. D_0 = KL[T||S], D_1 = KL[S||T]."""

    def __init__(self, task, cfg):
        super().__init__(task)
        beta = cfg.distill_beta
        require(beta in (0, 1) or MIN_DISTILL_BETA <= beta < 1, "--distill-beta",
                f"0, 1 or in [{MIN_DISTILL_BETA:g}, 1)", beta)
        require(0 <= cfg.distill_on_policy <= 1, "--distill-on-policy", "in [0, 1]", cfg.distill_on_policy)
        require_weight("--distill-alpha", cfg.distill_alpha)
        require(math.isfinite(cfg.distill_temperature) and cfg.distill_temperature > 0,
                "--distill-temperature", "finite and > 0", cfg.distill_temperature)
        vocabulary = len(task.target_dictionary)
        require(0 <= cfg.distill_topk <= vocabulary, "--distill-topk",
                f"in [0, {vocabulary}] (the target vocabulary)", cfg.distill_topk)
        if cfg.distill_topk and beta == 1:
            raise FlagError("--distill-topk with --distill-beta 1: KL[S||T] is infinite where the "
                            "top-k teacher has no mass; use beta < 1 or --distill-topk 0")
        check_sample_length_flags("distill", cfg.distill_max_len_a, cfg.distill_max_len_b)
        check_label_smoothing_flags(cfg.label_smoothing, 0)
        name = task_name(task)
        if name in mediator_tasks():
            raise FlagError(f"--criterion distill trains a plain model: use --task "
                            f"{mediator_tasks()[name]}, not {name}")
        if not cfg.teacher_path:
            raise FlagError("--criterion distill needs --teacher-path CHECKPOINT")
        model, sha256 = load_teacher(cfg.teacher_path, task, cfg.teacher_sha256)
        # saved with the task's state in every checkpoint: the exact teacher file
        task.state.merge_state_dict({TEACHER_RECORD: {"path": os.path.abspath(cfg.teacher_path),
                                                      "sha256": sha256}})
        self.teacher = FrozenTeacher(model, cfg.teacher_path, sha256)
        self.beta, self.on_policy = beta, cfg.distill_on_policy
        self.alpha, self.eps = cfg.distill_alpha, cfg.label_smoothing
        self.temperature, self.topk = cfg.distill_temperature, cfg.distill_topk
        self.max_len_a, self.max_len_b = cfg.distill_max_len_a, cfg.distill_max_len_b
        self.sentence_avg, self.seed = cfg.sentence_avg, cfg.seed
        self.eos = task.target_dictionary.eos()
        self.banned = banned_symbols(task.target_dictionary)
        self.follow_update_count(task)

    @property
    def teacher(self):
        return self.__dict__["_teacher"]

    @teacher.setter
    def teacher(self, frozen):
        # in __dict__, not nn.Module's registry: see fairseq_ot.models.teacher
        self.__dict__["_teacher"] = frozen

    @stops_on_divergence
    def forward(self, model, sample, reduce=True):
        teacher = self.teacher.follow(model)
        net_input, target = sample["net_input"], sample["target"]
        mask = target.ne(self.padding_idx)
        on_policy = self.on_policy_sentences(sample)
        tokens = target[mask]
        # with every sentence on-policy and no NLL term, the references'
        # forward is for the logged NLLs only
        logged_only = self.alpha == 0 and bool(on_policy.all())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not logged_only):
            student = packed_logits(model, net_input, mask)
            lprobs = F.log_softmax(student.float(), dim=-1)
            smoothed, nll = label_smoothed_nll_loss(lprobs, tokens, self.eps, reduce=True)
        with torch.no_grad():
            teacher_logits = packed_logits(teacher, net_input, mask)
        with torch.no_grad():
            teacher_lprobs = F.log_softmax(teacher_logits.float(), dim=-1)
            teacher_nll = -teacher_lprobs.gather(-1, tokens.unsqueeze(-1)).sum()

        reference = ~on_policy.unsqueeze(1).expand_as(mask)[mask]  # [N]: positions distilled here
        student_lprobs = lprobs
        if not reference.all():
            student, teacher_logits = student[reference], teacher_logits[reference]
            student_lprobs, teacher_lprobs = lprobs[reference], teacher_lprobs[reference]
        divergence = self.divergence(student, teacher_logits, student_lprobs, teacher_lprobs)
        positions = int(reference.sum())

        rows = on_policy.nonzero().squeeze(1)
        sample_tokens = 0
        if rows.numel() > 0:
            rng = batch_generator(self.seed, self.num_updates, sample["id"].index_select(0, rows))
            samples, _ = draw_continuations(model, net_input, rows, self.max_len_a, self.max_len_b,
                                            self.eos, self.padding_idx, self.banned, rng)
            sample_input = teacher_forcing_input(net_input, samples, rows, self.eos, self.padding_idx)
            sample_mask = samples.ne(self.padding_idx)
            student_samples = packed_logits(model, sample_input, sample_mask)
            with torch.no_grad():
                teacher_samples = packed_logits(teacher, sample_input, sample_mask)
            divergence = divergence + self.divergence(student_samples, teacher_samples)
            sample_tokens = int(sample_mask.sum())
        loss = divergence + self.alpha * smoothed if self.alpha > 0 else divergence

        nsentences = target.size(0)
        sample_size = nsentences if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll.data,
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": sample_size,
            "distill_divergence_sum": divergence.data,
            "distill_positions": positions + sample_tokens,
            "distill_teacher_nll_sum": teacher_nll.data,
            "distill_on_policy_sentences": rows.numel(),
            "distill_sample_tokens": sample_tokens,
        }
        return loss, sample_size, logging_output

    def on_policy_sentences(self, sample):
        """[B] bool: the sentences whose prefixes are student samples, each
        with probability lambda from its own (seed, update, id)."""
        ids = sample["id"]
        if self.on_policy == 0:
            return torch.zeros_like(ids, dtype=torch.bool)
        return sentence_uniforms(self.seed, self.num_updates, ids) < self.on_policy

    def divergence(self, student_logits, teacher_logits, student_lprobs=None, teacher_lprobs=None):
        """Summed D_beta at packed positions, from [N, V] logits at
        temperature tau; the log-softmaxes at tau 1, when given, are reused
        at tau 1 (the teacher's over the full vocabulary only)."""
        if self.temperature != 1:
            student_logits = student_logits / self.temperature
            teacher_logits = teacher_logits / self.temperature
            student_lprobs = teacher_lprobs = None
        if student_lprobs is None:
            student_lprobs = F.log_softmax(student_logits.float(), dim=-1)
        if teacher_lprobs is None or self.topk:
            teacher_lprobs = self.teacher_log_probs(teacher_logits)
        return js_beta(student_lprobs, teacher_lprobs, self.beta).sum()

    def teacher_log_probs(self, logits):
        """log T over the full vocabulary, or over the top K renormalised per
        position (BANNED_LOG_PROB elsewhere)."""
        logits = logits.float()
        if not self.topk:
            return F.log_softmax(logits, dim=-1)
        top, index = logits.topk(self.topk, dim=-1)
        return torch.full_like(logits, BANNED_LOG_PROB).scatter_(-1, index, top.log_softmax(-1))

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        total = lambda key: sum(float(log.get(key, 0)) for log in logging_outputs)  # noqa: E731
        ntokens, nsentences, sample_size = total("ntokens"), total("nsentences"), total("sample_size")
        if sample_size == 0:
            return
        metrics.log_scalar("loss", total("loss") / sample_size / math.log(2), sample_size, round=3)
        metrics.log_scalar("nll_loss", total("nll_loss") / ntokens / math.log(2), ntokens, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))
        metrics.log_scalar("teacher_nll_loss", total("distill_teacher_nll_sum") / ntokens / math.log(2),
                           ntokens, round=3)
        positions = total("distill_positions")
        if positions > 0:
            metrics.log_scalar("divergence_bits", total("distill_divergence_sum") / positions / math.log(2),
                               positions, round=4)
        on_policy = total("distill_on_policy_sentences")
        metrics.log_scalar("on_policy", on_policy / nsentences, nsentences, round=3)
        if on_policy > 0:
            metrics.log_scalar("sample_len", total("distill_sample_tokens") / on_policy, on_policy, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

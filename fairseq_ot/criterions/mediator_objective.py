"""The mediator objective shared by `cot` and `gjs --gjs-mode mediator`
(Lu et al., ICML 2019, "CoT: Cooperative Training for Generative Modeling of
Discrete Data"; Huszar 2015 for the weight pi):

    J_m = pi E_data[-log M(s)] + (1 - pi) E_{s~G}[-log M(s)]
    J_g = 2 (1 - pi) E_{s~G} sum_t pi_g(s_<t)^T (log pi_g(s_<t) - log pi_m(s_<t))

with pi_m detached; not a registered criterion itself."""

import math
from dataclasses import dataclass, field

import torch
from fairseq import utils
from fairseq.criterions import FairseqCriterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from fairseq_ot.compat.update_count import FollowsUpdateCount
from fairseq_ot.errors import FlagError, check_sample_length_flags, require, stops_on_divergence
from fairseq_ot.models.generator_mediator import GeneratorMediatorModel, mediator_tasks
from fairseq_ot.modules.batch_random import batch_generator
from fairseq_ot.modules.divergences import (
    js_pi_terms,
    masked_log_softmax,
    score_function_surrogate,
    sequence_log_probs,
    step_kl,
)
from fairseq_ot.modules.packed_positions import packed_logits, unpack
from fairseq_ot.modules.sampling import decoder_input_key, draw_continuations, teacher_forcing_input
from fairseq_ot.modules.token_prediction import ban_, banned_symbols


@dataclass
class MediatorObjectiveConfig(FairseqDataclass):
    cot_max_len_a: float = field(
        default=1.2, metadata={"help": "samples are at most a * source length + b tokens "
                               "(language models: b tokens), and at most the generator's "
                               "max positions"}
    )
    cot_max_len_b: int = field(default=10, metadata={"help": "see --cot-max-len-a"})
    cot_samples_per_source: int = field(
        default=1, metadata={"help": "generator samples drawn per source sentence (per "
                             "data sequence for language models) at each update"}
    )
    cot_mediator_steps: int = field(
        default=1, metadata={"help": "mediator updates per generator update: the "
                             "generator term is added every this many updates"}
    )
    cot_mediator_warmup_updates: int = field(
        default=0, metadata={"help": "train only the mediator (generator term off) for "
                             "this many updates first, e.g. after a warm start"}
    )
    cot_gamma: float = field(
        default=0.0, metadata={"help": "gamma in [0, 1]: weight of the score-function term "
                               "of the generator's estimator; 0 is CoT's practice, 1 the "
                               "exact gradient of KL[G||M]"}
    )
    sentence_avg: bool = II("optimization.sentence_avg")
    seed: int = II("common.seed")


class MediatorObjective(FollowsUpdateCount, FairseqCriterion):
    """The mediator learns the mixture M = pi P_data + (1 - pi) G by weighted
    NLL on data and on generator samples; the generator minimizes
    2 (1 - pi) KL[G||M] along its own samples, sum_t pi_g^T (log pi_g - log pi_m)
    with pi_m detached. Subclasses fix pi."""

    mediator_flags = "--criterion cot"  # what asked for a mediator, for errors

    def __init__(self, task, cfg, pi):
        """`cfg`: the criterion's MediatorObjectiveConfig fields (fairseq's
        build_criterion passes the config node); `pi`: the mixture weight."""
        super().__init__(task)
        check_sample_length_flags("cot", cfg.cot_max_len_a, cfg.cot_max_len_b)
        require(cfg.cot_samples_per_source >= 1, "--cot-samples-per-source", ">= 1",
                cfg.cot_samples_per_source)
        require(cfg.cot_mediator_steps >= 1, "--cot-mediator-steps", ">= 1", cfg.cot_mediator_steps)
        require(cfg.cot_mediator_warmup_updates >= 0, "--cot-mediator-warmup-updates", ">= 0",
                cfg.cot_mediator_warmup_updates)
        require(0 <= cfg.cot_gamma <= 1, "--cot-gamma", "in [0, 1]", cfg.cot_gamma)
        self.sentence_avg = cfg.sentence_avg
        self.pi = pi
        self.max_len_a, self.max_len_b = cfg.cot_max_len_a, cfg.cot_max_len_b
        self.samples_per_source = cfg.cot_samples_per_source
        self.mediator_steps = cfg.cot_mediator_steps
        self.mediator_warmup_updates = cfg.cot_mediator_warmup_updates
        self.gamma = cfg.cot_gamma
        dictionary = task.target_dictionary
        self.eos = dictionary.eos()
        self.banned = banned_symbols(dictionary)
        self.seed = cfg.seed
        self.follow_update_count(task)

    @stops_on_divergence
    def forward(self, model, sample, reduce=True):
        check_wrapped_model(model, self.mediator_flags)
        data_input, data_target = sample["net_input"], sample["target"]
        rng = batch_generator(self.seed, self.num_updates, sample["id"])
        samples, forced = self.draw_samples(model.generator, data_input, data_target.size(0), rng)
        # The JS estimate and the generator's data NLL cost a forward of the
        # generator on the data that training does not need: validation only.
        estimate = not model.training
        terms = self.sequence_terms(model.generator, model.mediator, data_input, data_target,
                                    samples, forced, estimate)
        mediator_loss = (self.pi * terms["mediator_nll_data"].sum()
                         + (1 - self.pi) * terms["mediator_nll_samples"].sum())
        generator_weight = 2 * (1 - self.pi) if self.is_generator_update(model) else 0.0
        loss = mediator_loss + generator_weight * self.generator_loss(terms).sum()
        nsentences = data_target.size(0)
        sample_size = nsentences if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": sample_size,
            "cot_samples": samples.size(0),
            "cot_sample_tokens": samples.ne(self.padding_idx).sum().item(),
            "cot_generator_kl_sum": terms["generator_kl"].sum().data,
            "cot_mediator_nll_data_sum": terms["mediator_nll_data"].sum().data,
            "cot_mediator_nll_samples_sum": terms["mediator_nll_samples"].sum().data,
        }
        if estimate:
            js_data, js_samples = js_pi_terms(
                terms["generator_log_prob_data"], terms["mediator_log_prob_data"],
                terms["generator_log_prob_samples"], terms["mediator_log_prob_samples"], self.pi,
            )
            # validation reports the generator's NLL as the loss: checkpoint_best
            # then selects the generator
            generator_nll = -terms["generator_log_prob_data"].sum()
            logging_output.update(
                loss=generator_nll,
                nll_loss=generator_nll,
                cot_js_data_sum=js_data.sum().data,
                cot_js_samples_sum=js_samples.sum().data,
            )
        return loss, sample_size, logging_output

    def sequence_terms(self, generator, mediator, data_input, data_target, samples, forced,
                       estimate=True, score=None):
        """Per-sequence terms [B] and [S]: mediator NLL of data and samples,
        the generator's stepwise KL to the (detached) mediator along its
        samples, with `score` (default: --cot-gamma above 0) the zero-valued
        surrogate of its score-function term (from the same forward: see
        `generator_loss`) and, with `estimate`, the generator's and the
        mediator's log-probabilities of data and samples, in float64 (for the
        JS estimate, `estimate_log_probs`). Logits and everything over the
        vocabulary are computed at the tokens' positions only (packed)."""
        data_mask = data_target.ne(self.padding_idx)
        sample_input = self.teacher_forcing_input(data_input, samples)
        sample_mask = samples.ne(self.padding_idx)
        drawn = sample_mask & ~forced  # forced EOS is not a draw from G
        data_tokens, sample_tokens = data_target[data_mask], samples[sample_mask]

        mediator_data, mediator_samples = self.mediator_logits(mediator, data_input, sample_input,
                                                               data_mask, sample_mask)
        generator_samples = packed_logits(generator, sample_input, sample_mask)
        # masked once, in place: each masked copy of an [N, V] tensor cost about
        # what its log-softmax does (the log-softmaxes below then mask nothing)
        for logits in (mediator_data, mediator_samples, generator_samples):
            ban_(logits, self.banned)
        terms = {}
        if estimate:  # from the logits, before float32 log-probabilities replace them
            with torch.no_grad():
                generator_data = ban_(packed_logits(generator, data_input, data_mask), self.banned)
            terms = self.estimate_log_probs(generator_data, generator_samples, mediator_data,
                                            mediator_samples, data_tokens, data_mask, sample_tokens,
                                            sample_mask, drawn)
        # the logits are freed as each log-softmax replaces them
        mediator_data = masked_log_softmax(mediator_data)
        mediator_samples = masked_log_softmax(mediator_samples)
        step_kls = unpack(step_kl(generator_samples, mediator_samples), sample_mask)  # [S, T]
        terms.update({
            "mediator_nll_data": -sequence_log_probs(mediator_data, data_tokens, data_mask),
            "mediator_nll_samples": -sequence_log_probs(mediator_samples, sample_tokens, sample_mask),
            "generator_kl": (step_kls * drawn).sum(-1),
        })
        if (self.gamma > 0) if score is None else score:  # unused at gamma 0: not built
            drawn_lprobs = masked_log_softmax(generator_samples).gather(
                -1, sample_tokens.unsqueeze(-1)).squeeze(-1)
            terms["generator_score"] = score_function_surrogate(step_kls, unpack(drawn_lprobs, sample_mask),
                                                                drawn)
        return terms

    @torch.no_grad()
    def estimate_log_probs(self, generator_data, generator_samples, mediator_data, mediator_samples,
                           data_tokens, data_mask, sample_tokens, sample_mask, drawn):
        """log G and log M of the data and of the samples' drawn tokens, from
        the four packed logits, in float64: the JS estimate (`js_pi_terms`)
        divides their rounding error by pi through P/M = (1 - (1 - pi) G/M) / pi.
        float32's, 1e-7 of each log-probability, put the estimate of an exact
        mixture 0.35% off at pi = 1e-6 and 17% at 1e-9 (one rounding per
        sequence; a sequence sums one per token)."""
        def log_probs(logits, tokens, mask, counted=None):
            lprobs = masked_log_softmax(logits, dtype=torch.float64)  # banned in sequence_terms
            return sequence_log_probs(lprobs, tokens, mask, counted)

        return {
            "generator_log_prob_data": log_probs(generator_data, data_tokens, data_mask),
            "mediator_log_prob_data": log_probs(mediator_data, data_tokens, data_mask),
            "generator_log_prob_samples": log_probs(generator_samples, sample_tokens, sample_mask, drawn),
            "mediator_log_prob_samples": log_probs(mediator_samples, sample_tokens, sample_mask, drawn),
        }

    def generator_loss(self, terms):
        """Per sample, the generator's loss, whose gradient is CoT's estimator
        (Lu et al., ICML 2019)

            grad J_g^gamma = E_{s~G} sum_t grad[gamma sg(L(s_t)) log G(s_t) + L(s_t)],

        L(s_t) = KL_t = pi_g(s_<t)^T (log pi_g(s_<t) - log pi_m(s_<t)) the step's
        KL, s_t the prefix. Summed over t, the prefix log-probabilities
        log G(s_<t) = sum_{t'<t} log G(s_t' | s_<t') make each drawn token
        carry the KL of the later steps, sum_{t>t'} sg(KL_t): with M fixed,
        gamma = 1 is the exact gradient of KL[G||M] = E_G[sum_t KL_t] and
        gamma = 0 CoT's practice, the pathwise term alone (see
        score_function_surrogate). The surrogate is zero in value, so the
        loss still reads as the KL whatever gamma."""
        if self.gamma == 0:
            return terms["generator_kl"]
        return terms["generator_kl"] + self.gamma * terms["generator_score"]

    def mediator_logits(self, mediator, data_input, sample_input, data_mask, sample_mask):
        """The mediator's packed logits at the data's and the samples' token
        positions. Both hold the same sources: an encoder-decoder mediator
        encodes them once (its encoder's gradient is then the sum of both
        terms', as with two passes)."""
        if decoder_input_key(data_input) == "src_tokens":  # language model
            return (packed_logits(mediator, data_input, data_mask),
                    packed_logits(mediator, sample_input, sample_mask))
        encoder_out = mediator.encoder(data_input["src_tokens"], src_lengths=data_input["src_lengths"])
        sample_encoder_out = encoder_out
        if self.samples_per_source > 1:
            order = self.source_order(data_input["src_tokens"].size(0), data_input["src_tokens"].device)
            sample_encoder_out = mediator.encoder.reorder_encoder_out(encoder_out, order)
        return (packed_logits(mediator, data_input, data_mask, encoder_out),
                packed_logits(mediator, sample_input, sample_mask, sample_encoder_out))

    def source_order(self, batch_size, device):
        """Row of each sample's source: every source repeated --cot-samples-per-source times."""
        return torch.arange(batch_size, device=device).repeat_interleave(self.samples_per_source)

    def is_generator_update(self, model):
        """Whether the generator term counts: always in validation; in
        training after --cot-mediator-warmup-updates updates (the mediator
        first catches up with a warm-started generator), then every
        --cot-mediator-steps updates."""
        if not model.training:
            return True
        return (self.num_updates >= self.mediator_warmup_updates
                and self.num_updates % self.mediator_steps == 0)

    def draw_samples(self, generator, data_input, batch_size, rng):
        """--cot-samples-per-source samples per source (per data sequence
        for language models), capped as `draw_continuations` caps them."""
        order = self.source_order(batch_size, data_input["src_tokens"].device)
        return draw_continuations(generator, data_input, order, self.max_len_a, self.max_len_b,
                                  self.eos, self.padding_idx, self.banned, rng)

    def teacher_forcing_input(self, data_input, samples):
        """The net_input that feeds `samples` as gold targets (`teacher_forcing_input`)."""
        order = self.source_order(data_input["src_tokens"].size(0), samples.device)
        return teacher_forcing_input(data_input, samples, order, self.eos, self.padding_idx)

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """Every value of the line in bits per token (`loss` per `sample_size`),
        `sample_len` in tokens."""
        total = lambda key: sum(float(log.get(key, 0)) for log in logging_outputs)  # noqa: E731
        ntokens, nsentences = total("ntokens"), total("nsentences")
        samples, sample_tokens = total("cot_samples"), total("cot_sample_tokens")
        if nsentences == 0 or samples == 0:
            return
        bits = lambda key, count: total(key) / count / math.log(2)  # noqa: E731
        metrics.log_scalar("loss", bits("loss", total("sample_size")), total("sample_size"), round=3)
        if any("nll_loss" in log for log in logging_outputs):  # validation
            metrics.log_scalar("nll_loss", bits("nll_loss", ntokens), ntokens, round=3)
            metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))
            # each half of the estimate per token of its own sequences
            metrics.log_scalar("jsd", bits("cot_js_data_sum", ntokens) + bits("cot_js_samples_sum", sample_tokens),
                               nsentences, round=4)
        metrics.log_scalar("generator_kl", bits("cot_generator_kl_sum", sample_tokens), sample_tokens, round=4)
        metrics.log_scalar("mediator_nll_data", bits("cot_mediator_nll_data_sum", ntokens), ntokens, round=4)
        metrics.log_scalar("mediator_nll_samples", bits("cot_mediator_nll_samples_sum", sample_tokens),
                           sample_tokens, round=4)
        # samples run to the length limit until the generator learns to stop,
        # and their length sets most of the step's cost
        metrics.log_scalar("sample_len", sample_tokens / samples, samples, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


def check_wrapped_model(model, mediator_flags):
    """The model under fairseq's distributed wrappers must be a generator and
    mediator (built by a mediator task), and no wrapper may be PyTorch's DDP,
    which refuses the several forwards per update that the criterion runs."""
    while hasattr(model, "module"):
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            raise FlagError(GeneratorMediatorModel.pytorch_ddp_refusal)
        model = model.module
    if not isinstance(model, GeneratorMediatorModel):
        raise FlagError(f"{mediator_flags} needs a generator and a mediator: use --task "
                        f"{' or '.join(mediator_tasks())}, not a task whose model is "
                        f"{type(model).__name__}")

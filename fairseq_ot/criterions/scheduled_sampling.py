from dataclasses import dataclass, field

import torch
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from fairseq.models import FairseqIncrementalDecoder
from omegaconf import II

from fairseq_ot.compat.update_count import FollowsUpdateCount
from fairseq_ot.errors import FlagError, check_label_smoothing_flags, require, stops_on_divergence
from fairseq_ot.modules.batch_random import batch_generator
from fairseq_ot.modules.embedding_mixtures import MIXES, embedded_as, mixture_weights
from fairseq_ot.modules.sampling import decoder_input_key
from fairseq_ot.modules.schedules import (
    SCHEDULES,
    check_schedule,
    teacher_forcing_probability,
)
from fairseq_ot.modules.token_prediction import PREDICTIONS, banned_symbols, predict_tokens

MODES = ("two_pass", "stepwise")


@dataclass
class ScheduledSamplingCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    ss_mode: ChoiceEnum(MODES) = field(
        default="two_pass",
        metadata={"help": "two_pass: teacher-forced pass without grad, its shifted "
                  "predictions mixed into the inputs of a second pass (Transformers); "
                  "stepwise: the prefix built token by token from the model's outputs "
                  "on the mixed prefix (Bengio et al.; RNNs; needs incremental decoding)"},
    )
    ss_prediction: ChoiceEnum(PREDICTIONS) = field(
        default="sample",
        metadata={"help": "a replaced input is sampled from the model's distribution or its argmax"},
    )
    ss_mix: ChoiceEnum(MIXES) = field(
        default="prediction",
        metadata={"help": "two_pass only: what a replaced input is: prediction (the token of "
                  "--ss-prediction), or a mixture of word embeddings E^T w: topk (w = softmax over the "
                  "--ss-topk largest logits), softmax (w = softmax(z / --ss-mix-temperature)), gumbel "
                  "(w = softmax((z + Gumbel noise) / --ss-mix-temperature), drawn like the coins) "
                  "(Mihaylova & Martins 2019)"},
    )
    ss_topk: int = field(
        default=5, metadata={"help": "k of --ss-mix topk, at most the vocabulary size"}
    )
    ss_mix_temperature: float = field(
        default=1.0, metadata={"help": "temperature of --ss-mix softmax and gumbel, > 0"}
    )
    ss_schedule: ChoiceEnum(SCHEDULES) = field(
        default="inverse_sigmoid",
        metadata={"help": "teacher-forcing probability eps over updates i: constant k, "
                  "linear k - c i, exponential k^i, inverse_sigmoid k / (k + exp(i / k))"},
    )
    ss_k: float = field(
        default=2000.0,
        metadata={"help": "k of the schedule (constant/linear: in [0, 1]; exponential: "
                  "in (0, 1); inverse_sigmoid: >= 1, eps = 0.5 at i = k ln k)"},
    )
    ss_c: float = field(default=0.0, metadata={"help": "slope c of the linear schedule"})
    ss_min: float = field(
        default=0.0, metadata={"help": "floor eps_min of the teacher-forcing probability"}
    )
    ss_warmup_updates: int = field(
        default=0, metadata={"help": "pure teacher forcing for this many updates first"}
    )
    seed: int = II("common.seed")


@register_criterion("scheduled_sampling", dataclass=ScheduledSamplingCriterionConfig)
class ScheduledSamplingCriterion(FollowsUpdateCount, LabelSmoothedCrossEntropyCriterion):
    """Label-smoothed NLL of the gold target given a mixed prefix,

        loss = sum_t LS-NLL(y_t | z_<t, x),  z_t = y_t with probability eps_i,
                                                  else y_hat_t ~ model

    with a coin per token and sentence and eps_i from a schedule over the update
    number i (Bengio et al., NeurIPS 2015, "Scheduled Sampling for Sequence
    Prediction with Recurrent Neural Networks"; two-pass form for Transformers:
    Mihaylova & Martins, ACL SRW 2019, whose second pass may also take the
    embedding mixture E^T w_t of the first pass's outputs in place of a token,
    `--ss-mix`). Validation stays teacher-forced."""

    def __init__(
        self,
        task,
        sentence_avg,
        label_smoothing,
        ss_mode,
        ss_prediction,
        ss_schedule,
        ss_k,
        ss_c,
        ss_min,
        ss_warmup_updates,
        seed,
        ss_mix="prediction",
        ss_topk=5,
        ss_mix_temperature=1.0,
        ignore_prefix_size=0,
        report_accuracy=False,
    ):
        super().__init__(
            task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy
        )
        check_label_smoothing_flags(label_smoothing, ignore_prefix_size)
        check_schedule(str(ss_schedule), ss_k, ss_c, ss_min, ss_warmup_updates)
        self.mode = str(ss_mode)
        self.prediction = str(ss_prediction)
        self.mix = str(ss_mix)
        if self.mix != "prediction" and self.mode != "two_pass":
            raise FlagError(f"--ss-mix {self.mix} applies to --ss-mode two_pass only: the stepwise "
                            f"prefix is made of tokens")
        require(ss_topk >= 1, "--ss-topk", ">= 1", ss_topk)
        if task is not None and task.target_dictionary is not None:
            vocabulary = len(task.target_dictionary)
            require(ss_topk <= vocabulary, "--ss-topk", f"at most the vocabulary size {vocabulary}", ss_topk)
        require(ss_mix_temperature > 0, "--ss-mix-temperature", "> 0", ss_mix_temperature)
        self.topk = ss_topk
        self.mix_temperature = ss_mix_temperature
        self.schedule = dict(
            schedule=str(ss_schedule), k=ss_k, c=ss_c, eps_min=ss_min,
            warmup_updates=ss_warmup_updates,
        )
        self.banned = banned_symbols(task.target_dictionary if task is not None else None)
        self.seed = seed
        self.follow_update_count(task)

    def teacher_forcing_probability(self):
        return teacher_forcing_probability(update_num=self.num_updates, **self.schedule)

    @stops_on_divergence
    def forward(self, model, sample, reduce=True):
        eps = self.teacher_forcing_probability() if model.training else 1.0
        net_input = sample["net_input"]
        gold = net_input[decoder_input_key(net_input)]
        if eps >= 1.0:
            net_output, replaced = model(**net_input), 0
        else:
            generator = batch_generator(self.seed, self.num_updates, sample["id"])
            if self.mode == "two_pass" and self.mix != "prediction":
                net_output, coins = self.two_pass_mixture(model, net_input, eps, generator)
            elif self.mode == "two_pass":
                mixed, coins = self.two_pass_inputs(model, net_input, eps, generator)
                net_output = model(**{**net_input, decoder_input_key(net_input): mixed})
            else:
                net_output, mixed, coins = self.stepwise_forward(model, net_input, eps, generator)
            replaced = coins.sum().item()
        loss, nll_loss = self.compute_loss(model, net_output, sample, reduce=reduce)
        nsentences = sample["target"].size(0)
        sample_size = nsentences if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": sample_size,
            "ss_eps_sum": eps * nsentences,
            "ss_replaced": replaced,
            "ss_inputs": gold[:, 1:].ne(self.padding_idx).sum().item(),
        }
        if self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, sample)
            logging_output["n_correct"] = n_correct.item()
            logging_output["total"] = total.item()
        return loss, sample_size, logging_output

    def replacement_coins(self, gold, eps, generator):
        """Per token and sentence: True where the gold input is replaced. The
        first input (EOS, fairseq's BOS) and padding are never replaced."""
        coins = torch.rand(gold.shape, device=gold.device, generator=generator) >= eps
        coins[:, 0] = False
        return coins & gold.ne(self.padding_idx)

    def two_pass_inputs(self, model, net_input, eps, generator):
        gold = net_input[decoder_input_key(net_input)]
        with torch.no_grad():
            logits = model(**net_input)[0]
        # the output at position t predicts y_t, which is the input at t + 1
        predictions = predict_tokens(logits[:, :-1], self.prediction, self.banned, generator)
        coins = self.replacement_coins(gold, eps, generator)
        mixed = gold.clone()
        mixed[:, 1:] = torch.where(coins[:, 1:], predictions, gold[:, 1:])
        return mixed, coins

    def two_pass_mixture(self, model, net_input, eps, generator):
        """The second pass with the replaced inputs' embeddings E^T w, w from
        the first pass's outputs (`embedding_mixtures`); returns its output
        and the coins."""
        gold = net_input[decoder_input_key(net_input)]
        embed_tokens = getattr(model.decoder, "embed_tokens", None)
        if not isinstance(getattr(embed_tokens, "weight", None), torch.Tensor):
            raise FlagError(f"--ss-mix {self.mix} needs a decoder with an `embed_tokens` embedding; "
                            f"{type(model.decoder).__name__} has none: use --ss-mix prediction")
        with torch.no_grad():
            logits = model(**net_input)[0]
        coins = self.replacement_coins(gold, eps, generator)
        # the output at position t predicts y_t, which is the input at t + 1
        weights = mixture_weights(logits[:, :-1][coins[:, 1:]], self.mix, self.topk, self.mix_temperature,
                                  self.banned, generator)
        rows = weights.to(embed_tokens.weight.dtype) @ embed_tokens.weight
        with embedded_as(embed_tokens, gold, coins, rows):
            net_output = model(**net_input)
        return net_output, coins

    def stepwise_forward(self, model, net_input, eps, generator):
        decoder = model.decoder
        if not isinstance(decoder, FairseqIncrementalDecoder):
            raise FlagError(
                f"--ss-mode stepwise needs an incremental decoder; "
                f"{type(decoder).__name__} is not one: use --ss-mode two_pass"
            )
        key = decoder_input_key(net_input)
        gold = net_input[key]
        encoder_out = None
        if key == "prev_output_tokens":
            encoder_out = model.encoder(net_input["src_tokens"], src_lengths=net_input["src_lengths"])
        coins = self.replacement_coins(gold, eps, generator)
        mixed = gold.clone()
        incremental_state = {}
        step_outputs = []
        for t in range(gold.size(1)):
            # a copy: embeddings keep their input indices for backward, and
            # `mixed` is written further on
            logits, extra = decoder(
                mixed[:, : t + 1].clone(), encoder_out=encoder_out,
                incremental_state=incremental_state,
            )
            step_outputs.append(logits)
            if t + 1 < gold.size(1):
                prediction = predict_tokens(logits[:, -1], self.prediction, self.banned, generator)
                mixed[:, t + 1] = torch.where(coins[:, t + 1], prediction, gold[:, t + 1])
        return (torch.cat(step_outputs, dim=1), extra), mixed, coins

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        total = lambda key: sum(log.get(key, 0) for log in logging_outputs)  # noqa: E731
        nsentences = total("nsentences")
        if nsentences > 0:
            metrics.log_scalar("ss_eps", total("ss_eps_sum") / nsentences, nsentences, round=4)
        inputs = total("ss_inputs")
        if inputs > 0:
            metrics.log_scalar("ss_replaced", total("ss_replaced") / inputs, inputs, round=4)

"""`tailr`, `mixce` and `emo`: loss and gradient against float64
transcriptions of the reference code's formulas (thu-coai/TaiLr
fairseq/criterions/tailr.py, bloomberg/MixCE-acl2023 gpt2.py, DRSY/EMO
emo_patch.py), on random logits and through the criterions on a model; a
padded batch is the sum of its sentences; the maximum-likelihood limits
are fairseq's criterions exactly."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from fairseq import metrics, options, tasks
from fairseq.criterions.cross_entropy import CrossEntropyCriterion
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

from conftest import TINY_TRANSFORMER, USER_DIR, assert_batch_sums_its_sentences
from fairseq_ot.errors import FlagError
from fairseq_ot.modules.token_objectives import (
    emo_token_loss, mixce_token_loss, output_embedding, tailr_token_loss,
)

LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-4


# ---------------------------------------------------------------- references (float64)


def tailr_reference(logits, target, epsilon, min_weight, gamma):
    """tailr_loss of thu-coai/TaiLr, per token: lprobs = log softmax, weight
    from the softmax probabilities under no_grad, smoothing eps / V."""
    lprobs = torch.softmax(logits, dim=-1).log()
    target = target.unsqueeze(-1)
    nll_loss = -lprobs.gather(dim=-1, index=target)
    smooth_loss = -lprobs.sum(dim=-1, keepdim=True)
    weight = torch.softmax(logits, dim=-1).gather(dim=-1, index=target)
    with torch.no_grad():
        weight = (weight.log() - (gamma + (1 - gamma) * weight).log()).exp()
        weight = torch.clamp(weight, min=min_weight, max=1.0)
    eps_i = epsilon / lprobs.size(-1)
    return ((1.0 - epsilon) * weight * nll_loss + eps_i * smooth_loss).squeeze(-1)


def mixce_reference(logits, target, mixing_ratio):
    """GPT2MIXModel.forward of bloomberg/MixCE-acl2023 (gpt2.py), per token."""
    mle_loss = F.cross_entropy(logits, target, reduction="none")
    with torch.no_grad():
        q = torch.exp(-mle_loss.detach())
    return mixing_ratio * mle_loss + (1.0 - mixing_ratio) * q * mle_loss


def emo_reference(logits, target, cost_embedding):
    """emo_forward of DRSY/EMO (emo_patch.py), per token, with the
    embedding a detached copy. The one departure: a zero row (fairseq's
    padding embedding) divides by a norm clamped at 1e-12, where the
    reference's 0 / 0 is NaN."""
    mle_loss = F.cross_entropy(logits, target, reduction="none")
    one_hot = F.one_hot(target, num_classes=logits.size(-1)).to(logits.dtype)
    stable_onehot = (one_hot + 1e-15) / torch.linalg.vector_norm(one_hot + 1e-15, ord=1, dim=-1, keepdim=True)
    embedding_matrix = cost_embedding.detach()
    norm = torch.linalg.vector_norm(embedding_matrix, ord=2, dim=1, keepdim=True).clamp(min=1e-12)
    embedding_matrix = embedding_matrix / norm
    p_contextual_repr = stable_onehot @ embedding_matrix
    q_grad = torch.log_softmax(logits, dim=-1).exp()
    q_contextual_repr = q_grad @ embedding_matrix
    emo_loss = 1 - torch.sum(p_contextual_repr * q_contextual_repr, dim=-1)
    return ((mle_loss / (emo_loss + 1e-10)).detach() * emo_loss + mle_loss) * 0.5, emo_loss


def relative_error(ours, reference):
    ours, reference = torch.as_tensor(ours).double(), torch.as_tensor(reference).double()
    return float((ours - reference).norm() / reference.norm())


# ---------------------------------------------------------------- 1. random logits

ROWS, VOCABULARY, DIM = 96, 40, 12


def random_case(scale, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(ROWS, VOCABULARY, generator=generator) * scale
    target = torch.randint(VOCABULARY, (ROWS,), generator=generator)
    upstream = torch.rand(ROWS, generator=generator) + 0.5  # a gradient that is not all ones
    embedding = torch.randn(VOCABULARY, DIM, generator=generator)
    return logits, target, upstream, embedding


def ours_and_reference(ours_fn, reference_fn, logits, upstream):
    """Loss [N] and gradient over the logits of ours (float32 logits, as
    fairseq's log_softmax gives them) and of the float64 reference."""
    ours_logits = logits.float().requires_grad_()
    ours = ours_fn(F.log_softmax(ours_logits, -1))
    (ours_grad,) = torch.autograd.grad((ours * upstream).sum(), ours_logits)
    reference_logits = logits.double().requires_grad_()
    reference = reference_fn(reference_logits)
    (reference_grad,) = torch.autograd.grad((reference * upstream.double()).sum(), reference_logits)
    return ours.detach(), ours_grad, reference.detach(), reference_grad


@pytest.mark.parametrize("scale", [1.0, 5.0, 20.0])
@pytest.mark.parametrize("gamma,min_weight,eps", [(0.1, 0.3, 0.1), (0.5, 0.0, 0.0), (1.0, 0.2, 0.3),
                                                  (0.0, 0.3, 0.1), (1e-4, 0.0, 0.0)])
def test_tailr_loss_and_logit_gradient_equal_the_reference(scale, gamma, min_weight, eps):
    logits, target, upstream, _ = random_case(scale, seed=1)
    weights = []

    def ours_fn(lprobs):
        loss, weight = tailr_token_loss(lprobs, target, gamma, min_weight, eps)
        weights.append(weight)
        return loss

    ours, ours_grad, reference, reference_grad = ours_and_reference(
        ours_fn, lambda z: tailr_reference(z, target, eps, min_weight, gamma), logits, upstream)
    assert relative_error(ours, reference) < LOSS_RTOL
    assert relative_error(ours_grad, reference_grad) < GRAD_RTOL
    (weight,) = weights
    assert not weight.requires_grad and weight.min() >= min_weight and weight.max() <= 1
    p = F.softmax(logits.double(), -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    assert relative_error(weight, (p / (gamma + (1 - gamma) * p)).clamp(min_weight, 1)) < LOSS_RTOL


@pytest.mark.parametrize("scale", [1.0, 5.0, 20.0])
@pytest.mark.parametrize("eta", [0.0, 0.1, 0.5, 0.99, 1.0])
def test_mixce_loss_and_logit_gradient_equal_the_reference(scale, eta):
    logits, target, upstream, _ = random_case(scale, seed=2)
    ours, ours_grad, reference, reference_grad = ours_and_reference(
        lambda lprobs: mixce_token_loss(lprobs, target, eta)[0], lambda z: mixce_reference(z, target, eta),
        logits, upstream)
    assert relative_error(ours, reference) < LOSS_RTOL
    assert relative_error(ours_grad, reference_grad) < GRAD_RTOL


@pytest.mark.parametrize("scale", [1.0, 5.0, 20.0])
def test_emo_loss_and_logit_gradient_equal_the_reference(scale):
    logits, target, upstream, embedding = random_case(scale, seed=3)
    emos = []

    def ours_fn(lprobs):
        loss, emo = emo_token_loss(lprobs, target, embedding)
        emos.append(emo)
        return loss

    ours, ours_grad, reference, reference_grad = ours_and_reference(
        ours_fn, lambda z: emo_reference(z, target, embedding.double())[0], logits, upstream)
    assert relative_error(ours, reference) < LOSS_RTOL
    assert relative_error(ours_grad, reference_grad) < GRAD_RTOL
    (emo,) = emos
    _, emo_expected = emo_reference(logits.double(), target, embedding.double())
    assert relative_error(emo, emo_expected) < LOSS_RTOL
    assert not emo.requires_grad and emo.min() >= 0


def test_emo_is_zero_at_the_reference_and_the_embedding_gets_no_gradient():
    """A model sure of each reference token has EMO 0 exactly (no rounding
    of 1 - cos(e, e)); a zero embedding row costs 1 to every other type;
    the embedding is a constant."""
    logits, target, _, embedding = random_case(1.0, seed=4)
    embedding[0] = 0.0
    embedding.requires_grad_()
    sure = torch.full_like(logits, -1e4).scatter_(-1, target.unsqueeze(-1), 0.0)
    loss, emo = emo_token_loss(F.log_softmax(sure, -1), target, embedding)
    assert torch.equal(emo, torch.zeros_like(emo)) and torch.equal(loss, torch.zeros_like(loss))
    to_pad = torch.zeros(ROWS, dtype=torch.long)
    _, emo = emo_token_loss(F.log_softmax(logits, -1), to_pad, embedding)
    assert torch.allclose(emo, 1 - F.softmax(logits, -1)[:, 0], rtol=0, atol=1e-6)
    loss, _ = emo_token_loss(F.log_softmax(logits.requires_grad_(), -1), target, embedding)
    assert not loss.requires_grad or torch.autograd.grad(loss.sum(), embedding, allow_unused=True)[0] is None


# ---------------------------------------------------------------- 2. the criterions on a model


def build(data_bin, *args):
    """Task, tiny transformer and criterion from fairseq-train flags
    (fairseq's argparse namespace, as test_bad_input.py builds them)."""
    parser = options.get_training_parser()
    parsed = options.parse_args_and_arch(parser, [
        str(data_bin), "--user-dir", USER_DIR, "--task", "translation", "--cpu",
        *TINY_TRANSFORMER, "--dropout", "0", *map(str, args),
    ])
    task = tasks.setup_task(parsed)
    torch.manual_seed(3)
    model = task.build_model(parsed)
    return task, model, task.build_criterion(parsed)


def parameter_grads(model):
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).double().flatten()
                      for p in model.parameters()])


CRITERIA = {
    "tailr": (["--criterion", "tailr"], "tailr_weight_sum",
              lambda z, y, model: tailr_reference(z, y, 0.1, 0.3, 0.1)),
    "tailr-gamma1": (["--criterion", "tailr", "--density-ratio-threshold", "1", "--density-min-weight", "0.1",
                      "--label-smoothing", "0"], "tailr_weight_sum",
                     lambda z, y, model: tailr_reference(z, y, 0.0, 0.1, 1.0)),
    "mixce": (["--criterion", "mixce"], "mixce_weight_sum", lambda z, y, model: mixce_reference(z, y, 0.5)),
    "mixce-eta0.1": (["--criterion", "mixce", "--mixce-eta", "0.1"], "mixce_weight_sum",
                     lambda z, y, model: mixce_reference(z, y, 0.1)),
    "emo": (["--criterion", "emo"], "emo_sum",
            lambda z, y, model: emo_reference(z, y, model.decoder.output_projection.weight)[0]),
}


@pytest.mark.parametrize("name", CRITERIA)
def test_criterion_loss_and_gradients_equal_the_reference_on_float64_forwards(toy_data_bin, batch, name):
    flags, _, reference_fn = CRITERIA[name]
    _, model, criterion = build(toy_data_bin, *flags)
    model.train()  # dropout 0: deterministic
    loss, sample_size, log = criterion(model, batch)
    loss.backward()
    reference_model = copy.deepcopy(model).double()
    reference_model.zero_grad()
    logits = reference_model(**batch["net_input"])[0]
    real = batch["target"].ne(model.decoder.padding_idx)
    expected = reference_fn(logits[real], batch["target"][real], reference_model).sum()
    expected.backward()
    assert relative_error(loss, expected) < LOSS_RTOL
    assert relative_error(parameter_grads(model), parameter_grads(reference_model)) < GRAD_RTOL
    assert sample_size == batch["ntokens"]
    nll = F.cross_entropy(logits[real], batch["target"][real], reduction="sum")
    assert relative_error(log["nll_loss"], nll) < LOSS_RTOL


@pytest.mark.parametrize("name", ["tailr", "mixce", "emo"])
def test_padded_batch_is_the_sum_of_its_sentences(toy_data_bin, batch, name):
    """fairseq's tests/test_label_smoothing.py form: the loss and every
    summed logging output of a padded batch equal the sums over its
    sentences, each alone in a batch."""
    flags, key, _ = CRITERIA[name]
    task, model, criterion = build(toy_data_bin, *flags, "--report-accuracy")
    assert_batch_sums_its_sentences(criterion, model, task, batch, (
        "loss", "nll_loss", "ntokens", "nsentences", "sample_size", "n_correct", "total", key), LOSS_RTOL)


def loss_log_and_grads(criterion, model, batch):
    model.zero_grad()
    loss, _, log = criterion(model, batch)
    loss.backward()
    return loss.detach(), log, parameter_grads(model)


@pytest.mark.parametrize("flags", [["--density-ratio-threshold", "0"], ["--density-min-weight", "1"]],
                         ids=["gamma0", "min_weight1"])
def test_tailr_without_reweighting_is_label_smoothed_cross_entropy(toy_data_bin, batch, flags):
    """Every weight 1: at eps = 0 fairseq's label_smoothed_cross_entropy bit
    for bit; at eps > 0 TaiLr's eps / V over all V types is fairseq's
    eps' / (V - 1) over the other types at eps' = eps (V - 1) / V."""
    task, model, tailr = build(toy_data_bin, "--criterion", "tailr", "--label-smoothing", "0", *flags)
    model.train()
    loss, log, grads = loss_log_and_grads(tailr, model, batch)
    expected, expected_log, expected_grads = loss_log_and_grads(
        LabelSmoothedCrossEntropyCriterion(task, False, 0.0), model, batch)
    assert torch.equal(loss, expected) and torch.equal(log["nll_loss"], expected_log["nll_loss"])
    assert torch.equal(grads, expected_grads)
    assert float(log["tailr_weight_sum"]) == batch["ntokens"]

    _, _, smoothed = build(toy_data_bin, "--criterion", "tailr", "--label-smoothing", "0.1", *flags)
    loss, log, grads = loss_log_and_grads(smoothed, model, batch)
    vocabulary = len(task.target_dictionary)
    fairseq_smoothed = LabelSmoothedCrossEntropyCriterion(task, False, 0.1 * (vocabulary - 1) / vocabulary)
    expected, expected_log, expected_grads = loss_log_and_grads(fairseq_smoothed, model, batch)
    assert relative_error(loss, expected) < 1e-6 and torch.equal(log["nll_loss"], expected_log["nll_loss"])
    assert relative_error(grads, expected_grads) < 1e-5


def test_mixce_at_eta_1_is_the_nll(toy_data_bin, batch):
    """Bit for bit fairseq's label_smoothed_cross_entropy without smoothing
    (the same gather and sum), and cross_entropy to float32 rounding."""
    task, model, mixce = build(toy_data_bin, "--criterion", "mixce", "--mixce-eta", "1")
    model.train()
    loss, log, grads = loss_log_and_grads(mixce, model, batch)
    expected, expected_log, expected_grads = loss_log_and_grads(
        LabelSmoothedCrossEntropyCriterion(task, False, 0.0), model, batch)
    assert torch.equal(loss, expected) and torch.equal(log["nll_loss"], expected_log["nll_loss"])
    assert torch.equal(grads, expected_grads)
    assert float(log["mixce_weight_sum"]) == batch["ntokens"]
    cross_entropy, _, ce_grads = loss_log_and_grads(CrossEntropyCriterion(task, False), model, batch)
    assert relative_error(loss, cross_entropy) < 1e-6 and relative_error(grads, ce_grads) < 1e-5


def test_tailr_at_gamma_1_weights_by_the_probability_as_mixce_at_eta_0(toy_data_bin, batch):
    _, model, tailr = build(toy_data_bin, "--criterion", "tailr", "--density-ratio-threshold", "1",
                            "--density-min-weight", "0", "--label-smoothing", "0")
    _, _, mixce = build(toy_data_bin, "--criterion", "mixce", "--mixce-eta", "0")
    model.train()
    loss, log, grads = loss_log_and_grads(tailr, model, batch)
    expected, expected_log, expected_grads = loss_log_and_grads(mixce, model, batch)
    assert relative_error(loss, expected) < 1e-6 and relative_error(grads, expected_grads) < 1e-5
    assert relative_error(log["tailr_weight_sum"], expected_log["mixce_weight_sum"]) < 1e-6


def test_emo_loss_is_the_nll_with_another_gradient(toy_data_bin, batch):
    task, model, emo = build(toy_data_bin, "--criterion", "emo")
    model.train()
    loss, log, grads = loss_log_and_grads(emo, model, batch)
    nll, _, nll_grads = loss_log_and_grads(LabelSmoothedCrossEntropyCriterion(task, False, 0.0), model, batch)
    assert relative_error(loss, nll) < 1e-6
    assert relative_error(grads, nll_grads) > 1e-2
    assert output_embedding(model.decoder) is model.decoder.embed_tokens.weight  # --share-all-embeddings
    with pytest.raises(FlagError, match="^--criterion emo needs the output embedding of the decoder"):
        emo.token_loss(torch.nn.Module(), torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("name,metric", [("tailr", "tailr_weight"), ("mixce", "mixce_weight"), ("emo", "emo")])
def test_logged_metrics_are_fairseqs_plus_a_mean_per_token(toy_data_bin, batch, name, metric):
    flags, key, _ = CRITERIA[name]
    _, model, criterion = build(toy_data_bin, *flags)
    with torch.no_grad():
        _, _, log = criterion(model, batch)
    with metrics.aggregate(new_root=True) as logged:
        type(criterion).reduce_metrics([log, log])
    values = logged.get_smoothed_values()
    assert math.isclose(values["loss"], float(log["loss"]) / log["sample_size"] / math.log(2), rel_tol=1e-3)
    assert math.isclose(values["nll_loss"], float(log["nll_loss"]) / log["ntokens"] / math.log(2), rel_tol=1e-3)
    assert math.isclose(values[metric], float(log[key]) / log["ntokens"], rel_tol=1e-3)
    assert "ppl" in values

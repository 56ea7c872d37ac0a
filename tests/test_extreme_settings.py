"""Every criterion at the extreme settings its flag checks accept, against a
reference: the definitions evaluated in float64, exact OT, closed forms in
exact arithmetic, enumeration of a tiny language model.
test_bad_input.py checks that such settings give finite values; here they
must give the right ones (relative 1e-4 unless said otherwise)."""

import math
from decimal import Decimal, getcontext

import numpy as np
import ot as pot
import pytest
import torch
import torch.nn.functional as F

from conftest import build
from test_cooperative import TINY_LSTM_LM, brute_force, build_lm, enumerate_outcomes
from fairseq_ot.errors import FlagError
from fairseq_ot.modules.divergences import (
    MIN_MEDIATOR_PI,
    MIN_TOKEN_PI,
    js_pi_terms,
    masked_log_softmax,
    step_kl,
    token_js_pi,
)
from fairseq_ot.modules.schedules import teacher_forcing_probability

RTOL = 1e-4
# 1 - 1e-9 is 1 in float32: pi stays a Python float; 1 - 2^-53 is the
# largest float below 1
PIS = [MIN_TOKEN_PI, 1e-12, 1e-9, 1e-6, 0.5, 1 - 1e-6, 1 - 1e-9, 1 - 2**-53]
MEDIATOR_PIS = [pi for pi in PIS if pi >= MIN_MEDIATOR_PI]


def relative_error(ours, reference):
    """|ours - reference| / |reference|, vectors by their norms, in float64."""
    ours, reference = torch.as_tensor(ours).double(), torch.as_tensor(reference).double()
    return float((ours - reference).norm() / reference.norm())


# ---------------------------------------------------------------- gjs, token mode


def log_mixture_ratio(other, this, weight):
    """log(M / this) for M = weight other + (1 - weight) this, as
    log1p(weight other/this - weight). In float64, log(M/this) within 1e-12
    of 1 (weight near 0) keeps 4 significant digits; weight (other - this)/this
    with other = 0 and weight = 1 - 2^-53 misses -weight by 1e-16, all of
    1 - weight."""
    return torch.log1p(weight * other / this - weight)


def token_js_by_definition(logits, target, pi, smoothing):
    """JS_pi[P||Q] / (pi (1 - pi)) per row, in float64 over the whole
    vocabulary, from the definition pi KL[P||M] + (1 - pi) KL[Q||M],
    M = pi P + (1 - pi) Q, each KL summed entry by entry (0 log 0 = 0)."""
    q = torch.softmax(logits, -1)
    p = torch.full_like(q, smoothing / (q.size(-1) - 1))
    p.scatter_(-1, target.unsqueeze(-1), 1 - smoothing)
    support = p > 0
    p_safe = torch.where(support, p, 1.0)
    kl_p_m = torch.where(support, -p * log_mixture_ratio(q, p_safe, 1 - pi), 0.0).sum(-1)
    kl_q_m = (-q * log_mixture_ratio(p, q, pi)).sum(-1)
    return (pi * kl_p_m + (1 - pi) * kl_q_m) / (pi * (1 - pi))


def random_positions(peaked):
    """200 positions over 1000 types, float32 logits; `peaked`: the target's
    logit raised by 12, as in a trained model, where Q(y) near 1 made the
    float32 error largest."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 1000, generator=generator) * 3
    target = torch.randint(0, 1000, (200,), generator=generator)
    if peaked:
        logits[torch.arange(200), target] += 12
    return logits, target


@pytest.mark.parametrize("peaked", [False, True], ids=["spread", "peaked"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("pi", PIS)
def test_token_js_loss_and_gradient_equal_the_float64_definition(pi, smoothing, peaked):
    logits, target = random_positions(peaked)
    logits.requires_grad_()
    ours = token_js_pi(torch.log_softmax(logits, -1), target, pi, smoothing)
    (grad,) = torch.autograd.grad(ours.sum(), logits)
    logits64 = logits.detach().double().requires_grad_()
    expected = token_js_by_definition(logits64, target, pi, smoothing)
    (expected_grad,) = torch.autograd.grad(expected.sum(), logits64)
    assert ours.dtype == torch.float32
    assert relative_error(ours.sum(), expected.sum()) < RTOL
    # per position too; where Q(y) is near 1 the loss is near 0, and
    # float32's log-softmax alone rounds log Q(y) by 1e-7: absolute 1e-4 of the mean
    expected = expected.detach()
    assert torch.allclose(ours.double(), expected, rtol=RTOL, atol=RTOL * float(expected.mean()))
    assert relative_error(grad, expected_grad) < RTOL


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("pi", PIS)
def test_gjs_criterion_loss_and_logit_gradient_equal_the_float64_definition(
        toy_data_bin, batch, pi, smoothing):
    """The criterion as fairseq calls it, padding and normalization included:
    its loss is sum_t JS_pi / (pi (1 - pi)), once (a second division by
    pi (1 - pi) would be off by 1e9 at pi = 1e-9)."""
    _, model, criterion = build(toy_data_bin, "--criterion", "gjs", "--gjs-pi", repr(pi),
                                "--label-smoothing", str(smoothing))
    outputs = []
    hook = model.decoder.register_forward_hook(lambda module, args, output: outputs.append(output[0]))
    loss, _, log = criterion(model, batch)
    hook.remove()
    (logits,) = outputs
    (grad,) = torch.autograd.grad(loss, logits)
    real = batch["target"].ne(criterion.padding_idx)
    logits64 = logits.detach().double().requires_grad_()
    expected = token_js_by_definition(logits64[real], batch["target"][real], pi, smoothing).sum()
    (expected_grad,) = torch.autograd.grad(expected, logits64)
    assert relative_error(loss, expected) < RTOL
    assert relative_error(grad, expected_grad) < RTOL
    assert relative_error(log["gjs_sum"], expected * (pi * (1 - pi))) < RTOL
    if pi <= 1e-9 and smoothing == 0:  # JS_pi / pi is the NLL to O(pi)
        assert relative_error(log["loss"], log["nll_loss"]) < 1e-6


def test_gjs_pi_bounds_name_the_flag(toy_data_bin):
    """Token mode down to MIN_TOKEN_PI (1/pi scales the smoothed loss in
    float32); mediator mode down to MIN_MEDIATOR_PI (its JS estimate)."""
    build(toy_data_bin, "--criterion", "gjs", "--gjs-pi", repr(MIN_TOKEN_PI))
    with pytest.raises(FlagError, match=rf"^--gjs-pi must be in \[{MIN_TOKEN_PI}, 1\), got 1e-31$"):
        build(toy_data_bin, "--criterion", "gjs", "--gjs-pi", "1e-31")
    for pi in [pi for pi in PIS if pi < MIN_MEDIATOR_PI]:
        with pytest.raises(FlagError, match=rf"^--gjs-pi must be in \[{MIN_MEDIATOR_PI}, 1\) with "
                                            rf"--gjs-mode mediator, got {pi}$"):
            build(toy_data_bin, "--criterion", "gjs", "--gjs-mode", "mediator", "--gjs-pi", repr(pi),
                  "--task", "mediator_translation")


# ---------------------------------------------------------------- gjs, mediator mode


def js_pi_by_definition(p, q, pi):
    """JS_pi[P||Q] in float64 from the definition (see token_js_by_definition)."""
    kl_p_m = (-p * log_mixture_ratio(q, p, 1 - pi)).sum()
    return pi * kl_p_m + (1 - pi) * (-q * log_mixture_ratio(p, q, pi)).sum()


@pytest.mark.parametrize("pi", MEDIATOR_PIS)
def test_js_estimate_of_the_exact_mixture_is_js_pi_in_float64(pi):
    """log Q and log M given in float64 over 200 outcomes, M the exact
    mixture: the estimate's expectation is JS_pi. Near pi = 0 the data terms
    take P/M from 1 - (1 - pi) Q/M = pi P/M; near pi = 1 from 1 - (1 - pi) Q/M
    near 1: 1 - 1e-9 Q/M, which the former code rounded to 1 even in float64."""
    generator = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(200, generator=generator, dtype=torch.float64) * 3, 0)
    q = torch.softmax(torch.randn(200, generator=generator, dtype=torch.float64) * 3, 0)
    log_m = q.log() + log_mixture_ratio(p, q, pi)  # log(pi P + (1 - pi) Q), rounded once
    data_terms, sample_terms = js_pi_terms(q.log(), log_m, q.log(), log_m, pi)
    estimate = (p * data_terms).sum() + (q * sample_terms).sum()
    assert relative_error(estimate, js_pi_by_definition(p, q, pi)) < RTOL


@pytest.fixture(scope="module")
def lm_outcomes(tiny_lm_data_bin):
    """Every outcome of the tiny language model's sampler, and a batch of its
    data (other sequences, so that data and sample terms differ)."""
    task, _, _ = build_lm(tiny_lm_data_bin, "--criterion", "cot")
    tokens, forced, allowed = enumerate_outcomes(task.target_dictionary)
    task.load_dataset("valid")
    data = next(iter(task.get_batch_iterator(task.dataset("valid"), max_sentences=6)
                     .next_epoch_itr(shuffle=False)))
    return task.target_dictionary, tokens, forced, allowed, data


def mediator_criterion(data_bin, pi, monkeypatch, tokens, forced):
    """gjs in mediator mode on the tiny language model, far from uniform, its
    samples every outcome of the sampler."""
    _, model, criterion = build_lm(data_bin, "--criterion", "gjs", "--gjs-mode", "mediator",
                                   "--gjs-pi", repr(pi))
    torch.manual_seed(5)
    for parameter in model.parameters():
        parameter.data.normal_(0, 1.0)
    monkeypatch.setattr(criterion, "draw_samples", lambda *args: (tokens, forced))
    return model, criterion


def sequence_log_probs(model, rows, eos, allowed, forced=None):
    """log-probability of each row, by float64 softmax of per-prefix forwards
    (test_cooperative.brute_force), without its `forced` tokens (default: every
    token counted)."""
    forced = torch.zeros_like(rows, dtype=torch.bool) if forced is None else forced
    return torch.stack([log_prob for log_prob, _ in brute_force(model, rows, forced, allowed, eos)])


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_step_kl_and_its_logit_gradient_equal_the_float64_definition(scale):
    """KL[p||q] per step from p's logits, the hand-made gradient against
    autograd through sum_v p (log p - log q) in float64: ordinary, peaked
    (KLs of tens of nats) and one-hot distributions (logits 1e4 apart, where
    p underflows to exact zeros), banned symbols excluded from both."""
    generator = torch.Generator().manual_seed(3)
    logits_p = torch.randn(3, 4, 9, generator=generator, dtype=torch.float64) * scale
    logits_q = torch.randn(3, 4, 9, generator=generator, dtype=torch.float64) * min(scale, 30.0)
    banned = (0, 2)
    weights = torch.rand(3, 4, generator=generator, dtype=torch.float64)
    logits = logits_p.float().requires_grad_()
    kl = step_kl(logits, masked_log_softmax(logits_q.float(), banned), banned)
    assert kl.dtype == torch.float32
    grad, = torch.autograd.grad((kl * weights.float()).sum(), logits)

    allowed = torch.ones(9, dtype=torch.bool)
    allowed[list(banned)] = False
    reference_logits = logits_p.clone().requires_grad_()
    log_p = torch.log_softmax(reference_logits[..., allowed], -1)
    log_q = torch.log_softmax(logits_q[..., allowed], -1)
    expected = (log_p.exp() * (log_p - log_q)).sum(-1)
    expected_grad, = torch.autograd.grad((expected * weights).sum(), reference_logits)
    assert relative_error(kl, expected) < RTOL
    # relative to at least 1: one-hot p has a zero gradient
    assert float((grad.double() - expected_grad).norm()) < RTOL * max(float(expected_grad.norm()), 1.0)
    assert bool((grad[..., list(banned)] == 0).all())


@pytest.mark.parametrize("pi", MEDIATOR_PIS)
def test_mediator_gjs_loss_and_gradients_equal_float64_enumeration(tiny_lm_data_bin, lm_outcomes, pi,
                                                                   monkeypatch):
    """pi E_data[-log M] + (1 - pi) E_G[-log M] + 2 (1 - pi) E_G[sum_t KL_t]
    over every outcome, generator's and mediator's gradients apart: near
    pi = 1 the generator's are 2e-9 of the mediator's."""
    dictionary, tokens, forced, allowed, data = lm_outcomes
    eos = dictionary.eos()
    model, criterion = mediator_criterion(tiny_lm_data_bin, pi, monkeypatch, tokens, forced)
    model.train()
    loss, _, _ = criterion(model, data)
    groups = [list(model.generator.parameters()), list(model.mediator.parameters())]
    grads = [torch.cat([g.flatten() for g in torch.autograd.grad(loss, group, retain_graph=True)])
             for group in groups]

    nll_data = -sequence_log_probs(model.mediator, data["target"], eos, allowed).sum()
    nll_samples = -sequence_log_probs(model.mediator, tokens, eos, allowed).sum()
    step_kls = 0.0
    for (_, g_steps), (_, m_steps) in zip(brute_force(model.generator, tokens, forced, allowed, eos),
                                          brute_force(model.mediator, tokens, forced, allowed, eos)):
        for g, m in zip(g_steps, m_steps):
            step_kls = step_kls + (g.exp() * (g - m.detach())).sum()
    expected = pi * nll_data + (1 - pi) * nll_samples + 2 * (1 - pi) * step_kls
    assert relative_error(loss, expected) < RTOL
    for grad, group in zip(grads, groups):
        expected_grad = torch.autograd.grad(expected, group, retain_graph=True)
        assert relative_error(grad, torch.cat([g.flatten() for g in expected_grad])) < RTOL


@pytest.mark.parametrize("pi", MEDIATOR_PIS)
def test_mediator_js_estimate_equals_float64_enumeration(tiny_lm_data_bin, lm_outcomes, pi, monkeypatch):
    """The validation estimate, term by term, from float64 log-probabilities
    (the criterion's, from its batched forwards, are float64 too) by the
    textbook formula in 60-digit decimals: pi log((1 - (1 - pi) G/M) / pi),
    P/M at least 1e-8, and (1 - pi) log(G/M)."""
    dictionary, tokens, forced, allowed, data = lm_outcomes
    eos = dictionary.eos()
    model, criterion = mediator_criterion(tiny_lm_data_bin, pi, monkeypatch, tokens, forced)
    model.eval()
    with torch.no_grad():
        _, _, log = criterion(model, data)
        terms = criterion.sequence_terms(model.generator, model.mediator, data["net_input"],
                                         data["target"], tokens, forced)
        generator_samples = sequence_log_probs(model.generator, tokens, eos, allowed, forced)
        mediator_samples = sequence_log_probs(model.mediator, tokens, eos, allowed, forced)
        generator_data = sequence_log_probs(model.generator, data["target"], eos, allowed)
        mediator_data = sequence_log_probs(model.mediator, data["target"], eos, allowed)
    assert all(terms[key].dtype == torch.float64 for key in terms if "log_prob" in key)
    getcontext().prec = 60
    weight = Decimal(pi)

    def exactly(term, log_g, log_m):
        return torch.tensor([float(term((Decimal(float(g)) - Decimal(float(m))).exp()))
                             for g, m in zip(log_g, log_m)], dtype=torch.float64)

    expected_data = exactly(lambda ratio: weight * max((1 - (1 - weight) * ratio) / weight,
                                                       Decimal("1e-8")).ln(),
                            generator_data, mediator_data)
    expected_samples = exactly(lambda ratio: (1 - weight) * ratio.ln(),
                               generator_samples, mediator_samples)
    assert torch.allclose(log["cot_js_data_sum"].double(), expected_data.sum(), rtol=RTOL, atol=0)
    assert torch.allclose(log["cot_js_samples_sum"].double(), expected_samples.sum(), rtol=RTOL, atol=0)
    data_terms, sample_terms = js_pi_terms(
        terms["generator_log_prob_data"], terms["mediator_log_prob_data"],
        terms["generator_log_prob_samples"], terms["mediator_log_prob_samples"], pi)
    assert torch.allclose(data_terms, expected_data, rtol=RTOL, atol=0)
    assert torch.allclose(sample_terms, expected_samples, rtol=RTOL, atol=0)


# ---------------------------------------------------------------- ot_seq


def ipot_by_algorithm(cost, a, b, beta, iters):
    """Xie et al. (2019), Algorithm 1 (one inner sweep), in float64 numpy."""
    kernel, plan, sigma = np.exp(-cost / beta), np.ones_like(cost), b.copy()
    for _ in range(iters):
        q = kernel * plan
        delta = a / (q @ sigma)
        sigma = b / (q.T @ delta)
        plan = delta[:, None] * q * sigma[None, :]
    return float((plan * cost).sum())


def sinkhorn_by_algorithm(cost, a, b, epsilon, iters):
    """Cuturi (2013), `iters` sweeps from sigma = b, transport cost of the plan."""
    kernel, sigma = np.exp(-cost / epsilon), b.copy()
    for _ in range(iters):
        delta = a / (kernel @ sigma)
        sigma = b / (kernel.T @ delta)
    return float((delta[:, None] * kernel * sigma[None, :] * cost).sum())


def sentence_costs(model, batch, temperature, pad):
    """Per sentence, the cosine cost [n, n] between the soft predictions
    E^T softmax(log Q / tau) and the reference embeddings, in float64 from
    the model's logits."""
    with torch.no_grad():
        logits = model(**batch["net_input"])[0].double()
    embedding = model.decoder.embed_tokens.weight.detach().double()
    for row, target in zip(logits, batch["target"]):
        real = target.ne(pad)
        beliefs = torch.softmax(torch.log_softmax(row[real], -1) / temperature, -1)
        predicted = F.normalize(beliefs @ embedding, dim=-1)
        reference = F.normalize(embedding[target[real]], dim=-1)
        yield (1 - predicted @ reference.T).numpy()


# beta's extremes; tau's, where the beliefs are one-hot (the argmax) or uniform
OT_SETTINGS = {
    "ipot beta 0.04": (["--ot-beta", "0.04"], "ipot"),
    "ipot beta 1e9": (["--ot-beta", "1e9"], "ipot"),
    "sinkhorn epsilon 0.04": (["--ot-solver", "sinkhorn", "--ot-beta", "0.04"], "sinkhorn"),
    "sinkhorn epsilon 1e9": (["--ot-solver", "sinkhorn", "--ot-beta", "1e9"], "sinkhorn"),
    "temperature 1e-6": (["--ot-temperature", "1e-6"], "ipot"),
    "temperature 1e9": (["--ot-temperature", "1e9"], "ipot"),
}


@pytest.mark.parametrize("setting", OT_SETTINGS)
def test_ot_seq_distance_equals_float64_solver_and_exact_ot(toy_data_bin, batch, setting):
    """The logged OT distance against the same solver's iterations in float64
    numpy, and against exact OT (POT's network simplex) where they converge:
    IPOT at beta 0.04 in its 50 iterations, unlike beta 1e9, whose kernel
    exp(-C / 1e9) is 1: every iteration returns the independent coupling,
    whose cost is the mean cost, as entropic OT's at epsilon 1e9 (the
    algorithms' answers at those steps, not float32 errors)."""
    args, solver = OT_SETTINGS[setting]
    _, model, criterion = build(toy_data_bin, "--criterion", "ot_seq", "--ot-weight", "1", *args)
    model.train()
    _, _, log = criterion(model, batch)
    beta, iters = criterion.solver_args["beta"], criterion.solver_args["iters"]
    by_algorithm = ipot_by_algorithm if solver == "ipot" else sinkhorn_by_algorithm
    expected = exact = mean_cost = 0.0
    for cost in sentence_costs(model, batch, criterion.ot_temperature, criterion.padding_idx):
        uniform = np.full(len(cost), 1 / len(cost))
        expected += by_algorithm(cost, uniform, uniform, beta, iters)
        exact += pot.emd2(uniform, uniform, cost)
        mean_cost += cost.mean()
    assert relative_error(log["ot_loss_sum"], expected) < RTOL
    if setting in ("ipot beta 0.04", "temperature 1e-6", "temperature 1e9"):
        assert relative_error(log["ot_loss_sum"], exact) < RTOL
    if beta == 1e9:
        assert relative_error(log["ot_loss_sum"], mean_cost) < RTOL


# ---------------------------------------------------------------- scheduled_sampling


def schedule_in_exact_arithmetic(schedule, k, c, eps_min, warmup, update):
    """eps of Bengio et al.'s closed forms in 60-digit decimals, floored at
    eps_min and capped at 1, from the flags' exact binary values."""
    getcontext().prec = 60
    if update < warmup:
        return 1.0
    i, k = Decimal(update - warmup), Decimal(k)
    eps = {"constant": lambda: k, "linear": lambda: k - Decimal(c) * i, "exponential": lambda: k ** i,
           "inverse_sigmoid": lambda: k / (k + (i / k).exp())}[schedule]()
    return float(min(Decimal(1), max(Decimal(eps_min), eps)))


SCHEDULES = [  # schedule, k, c, eps_min, warm-up, update
    ("constant", 0.0, 0.0, 0.0, 0, 10**9),
    ("linear", 1.0, 1e-300, 0.0, 0, 10**9),  # eps 1 - 1e-291: 1 in float64
    ("linear", 1.0, 1e308, 0.0, 0, 10),  # k - c i overflows to -inf: the floor
    ("linear", 0.5, 1e308, 0.25, 0, 1),
    ("linear", 1.0, 0.5, 0.0, 10**18, 10**18 - 1),  # still warming up
    ("exponential", 1e-300, 0.0, 0.0, 0, 1),
    ("exponential", 1e-300, 0.0, 0.0, 0, 2),  # 1e-600: 0
    ("exponential", 1 - 2**-53, 0.0, 0.0, 0, 10**15),
    ("inverse_sigmoid", 1.0, 0.0, 0.0, 0, 0),
    ("inverse_sigmoid", 1.0, 0.0, 0.0, 0, 10**5),
    ("inverse_sigmoid", 1e6, 0.0, 0.0, 0, 13815511),  # k ln k: 1/2
    ("inverse_sigmoid", 1e300, 0.0, 0.0, 0, 10**18),
]


@pytest.mark.parametrize("schedule,k,c,eps_min,warmup,update", SCHEDULES)
def test_schedule_extremes_equal_the_closed_forms_in_exact_arithmetic(schedule, k, c, eps_min, warmup,
                                                                       update):
    eps = teacher_forcing_probability(schedule, update, k, c, eps_min, warmup)
    expected = schedule_in_exact_arithmetic(schedule, k, c, eps_min, warmup, update)
    assert math.isclose(eps, expected, rel_tol=1e-9, abs_tol=1e-300), (eps, expected)


def label_smoothed_loss(data_bin, model, batch, inputs):
    """label_smoothed_cross_entropy's loss with `inputs` as the decoder's."""
    _, _, reference = build(data_bin, "--criterion", "label_smoothed_cross_entropy",
                            "--label-smoothing", "0.1")
    net_input = dict(batch["net_input"], prev_output_tokens=inputs)
    loss, _, _ = reference(model, dict(batch, net_input=net_input))
    return loss


def greedy_inputs(model, batch, pad, bos, stepwise):
    """Every decoder input after the first replaced by the model's argmax
    (never pad or BOS), padding kept: predicted from the gold prefix in one
    pass (two_pass) or from the model's own prefix, token by token, by full
    forwards (stepwise)."""
    gold = batch["net_input"]["prev_output_tokens"]
    inputs = gold.clone()
    with torch.no_grad():
        for t in range(1, gold.size(1)):
            prefix = inputs[:, :t] if stepwise else gold
            logits = model(**dict(batch["net_input"], prev_output_tokens=prefix))[0][:, t - 1]
            logits[:, [pad, bos]] = float("-inf")
            inputs[:, t] = torch.where(gold[:, t].ne(pad), logits.argmax(-1), pad)
    return inputs


# schedule flags and update: eps rounds to exactly 1, or to exactly 0
EXTREME_EPS = {
    "inverse_sigmoid k 1e300": (["--ss-schedule", "inverse_sigmoid", "--ss-k", "1e300"], 10**18, 1.0),
    "linear c 1e-300": (["--ss-schedule", "linear", "--ss-k", "1", "--ss-c", "1e-300"], 10**9, 1.0),
    "linear c 1e308": (["--ss-schedule", "linear", "--ss-k", "1", "--ss-c", "1e308"], 1, 0.0),
    "exponential k 1e-300": (["--ss-schedule", "exponential", "--ss-k", "1e-300"], 2, 0.0),
}


@pytest.mark.parametrize("mode", ["two_pass", "stepwise"])
@pytest.mark.parametrize("setting", EXTREME_EPS)
def test_scheduled_sampling_at_eps_one_and_zero_is_mle_on_gold_or_predicted_inputs(
        toy_data_bin, batch, setting, mode):
    args, update, eps = EXTREME_EPS[setting]
    task, model, criterion = build(toy_data_bin, "--criterion", "scheduled_sampling",
                                   "--label-smoothing", "0.1", "--ss-mode", mode,
                                   "--ss-prediction", "argmax", *args)
    model.train()  # dropout 0: training mode only switches the mixing on
    criterion.set_num_updates(update)
    assert criterion.teacher_forcing_probability() == eps
    loss, _, log = criterion(model, batch)
    gold = batch["net_input"]["prev_output_tokens"]
    if eps == 1.0:
        inputs = gold
        assert log["ss_replaced"] == 0
    else:
        dictionary = task.target_dictionary
        inputs = greedy_inputs(model, batch, dictionary.pad(), dictionary.bos(), mode == "stepwise")
        assert log["ss_replaced"] == log["ss_inputs"]
    expected = label_smoothed_loss(toy_data_bin, model, batch, inputs)
    assert relative_error(loss, expected) < 1e-6


# ---------------------------------------------------------------- cot sample lengths


def test_cot_one_token_samples_equal_enumeration(tiny_lm_data_bin, lm_outcomes):
    """--cot-max-len-b 1, the shortest limit: every sample is a forced EOS,
    which the generator did not draw. The loss is the mediator's NLL, half on
    the data and half on [EOS] samples, and the generator gets no gradient."""
    dictionary, _, _, allowed, data = lm_outcomes
    eos = dictionary.eos()
    _, model, criterion = build(tiny_lm_data_bin, "--criterion", "cot", "--cot-max-len-b", "1",
                                arch=TINY_LSTM_LM, task="mediator_language_modeling")
    model.train()
    loss, _, log = criterion(model, data)
    samples = log["cot_samples"]
    assert log["cot_sample_tokens"] == samples and log["cot_generator_kl_sum"] == 0
    nll_data = -sequence_log_probs(model.mediator, data["target"], eos, allowed).sum()
    nll_eos = -sequence_log_probs(model.mediator, torch.tensor([[eos]]), eos, allowed).sum()
    expected = 0.5 * nll_data + 0.5 * samples * nll_eos
    assert relative_error(loss, expected) < RTOL
    mediator = list(model.mediator.parameters())
    grads = torch.autograd.grad(loss, mediator + list(model.generator.parameters()), allow_unused=True)
    expected_grads = torch.autograd.grad(expected, mediator)
    assert relative_error(torch.cat([g.flatten() for g in grads[:len(mediator)]]),
                          torch.cat([g.flatten() for g in expected_grads])) < RTOL
    assert all(g is None or not g.any() for g in grads[len(mediator):])


def test_cot_huge_max_len_b_stops_at_the_decoder_positions(tiny_lm_data_bin, lm_outcomes):
    """--cot-max-len-b 1e9 on a language model: samples of at most its
    max_decoder_positions (--tokens-per-sample, 16) tokens, as with b 16."""
    *_, data = lm_outcomes
    results = []
    for b in ("1000000000", "16"):
        _, model, criterion = build(tiny_lm_data_bin, "--criterion", "cot", "--cot-max-len-b", b,
                                    arch=TINY_LSTM_LM, task="mediator_language_modeling")
        model.train()
        torch.manual_seed(5)
        for parameter in model.parameters():
            parameter.data.normal_(0, 1.0)
        results.append(criterion(model, data))
    (loss, _, log), (expected, _, expected_log) = results
    assert log["cot_sample_tokens"] > 3 * log["cot_samples"]  # long samples: the limit matters
    assert torch.equal(loss, expected) and log == expected_log


def test_cot_huge_max_len_a_stops_at_the_decoder_positions(toy_data_bin, batch):
    """--cot-max-len-a 1e300: a * length + b past 2^63 once wrapped to a
    negative integer, clamped to one-token samples. The limit is now the
    generator's max_decoder_positions (1024), as with a = 1000."""
    flags = ["--criterion", "cot", "--task", "mediator_translation", "--mediator-embed-dim", "16",
             "--mediator-hidden-dim", "16", "--mediator-dropout", "0"]
    results = []
    for a in ("1e300", "1000"):
        _, model, criterion = build(toy_data_bin, *flags, "--cot-max-len-a", a)
        model.train()
        results.append(criterion(model, batch))
    (loss, _, log), (expected, _, expected_log) = results
    assert log["cot_sample_tokens"] > log["cot_samples"]  # not one token each
    assert torch.equal(loss, expected) and log == expected_log

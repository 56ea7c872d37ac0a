"""`cot` and `gjs` against brute-force enumeration: every sequence of a tiny
language model is listed, so expectations under the generator are exact sums."""

import itertools
import math

import pytest
import torch
from fairseq.logging import metrics

from conftest import TINY_TRANSFORMER, build
from fairseq_ot.criterions.cot import CotCriterion
from fairseq_ot.modules.batch_random import batch_generator
from fairseq_ot.modules.divergences import js_pi_terms, score_function_surrogate, token_js_pi

TINY_LSTM_LM = [
    "--arch", "lstm_lm", "--decoder-embed-dim", "8", "--decoder-hidden-size", "8",
    "--decoder-out-embed-dim", "8", "--sample-break-mode", "eos", "--tokens-per-sample", "16",
    "--mediator-embed-dim", "8", "--mediator-hidden-dim", "8", "--mediator-dropout", "0",
]
MAX_LEN = 3


def build_lm(data_bin, *criterion_args):
    return build(data_bin, *criterion_args, "--cot-max-len-b", str(MAX_LEN),
                 arch=TINY_LSTM_LM, task="mediator_language_modeling")


def enumerate_outcomes(dictionary):
    """Every sampler outcome of at most MAX_LEN tokens: tokens [S, MAX_LEN]
    (EOS-terminated, right-padded) and where the length limit forced EOS."""
    allowed = [i for i in range(len(dictionary)) if i not in (dictionary.pad(), dictionary.bos())]
    words = [i for i in allowed if i != dictionary.eos()]
    sequences = [[]] + [[w] for w in words] + [list(p) for p in itertools.product(words, repeat=2)]
    eos, pad = dictionary.eos(), dictionary.pad()
    tokens = torch.tensor([s + [eos] + [pad] * (MAX_LEN - 1 - len(s)) for s in sequences])
    forced = torch.zeros_like(tokens, dtype=torch.bool)
    forced[:, MAX_LEN - 1] = torch.tensor([len(s) == MAX_LEN - 1 for s in sequences])
    return tokens, forced, allowed


def step_log_probs(model, prefix, allowed):
    """log pi(. | prefix) over the allowed tokens, by a full forward of the
    prefix (no incremental state, no batching, no masks)."""
    logits = model(torch.tensor([prefix]), src_lengths=torch.tensor([len(prefix)]))[0][0, -1]
    return torch.log_softmax(logits[allowed].double(), -1)


def brute_force(model, tokens, forced, allowed, eos):
    """For each outcome: its log-probability and the list of step
    distributions at its drawn positions."""
    results = []
    for row, row_forced in zip(tokens.tolist(), forced.tolist()):
        prefix, log_prob, steps = [eos], 0.0, []
        for token, is_forced in zip(row, row_forced):
            if is_forced:
                break
            lp = step_log_probs(model, prefix, allowed)
            steps.append(lp)
            log_prob = log_prob + lp[allowed.index(token)]
            if token == eos:
                break
            prefix.append(token)
        results.append((log_prob, steps))
    return results


@pytest.fixture(scope="module")
def lm(tiny_lm_data_bin):
    task, model, criterion = build_lm(tiny_lm_data_bin, "--criterion", "cot")
    torch.manual_seed(5)
    for parameter in model.parameters():  # far from uniform: a meaningful KL
        parameter.data.normal_(0, 1.0)
    tokens, forced, allowed = enumerate_outcomes(task.target_dictionary)
    return task, model, criterion, tokens, forced, allowed


def data_batch(tokens, eos):
    shifted = torch.cat([torch.full_like(tokens[:, :1], eos), tokens[:, :-1]], 1)
    return {"src_tokens": shifted, "src_lengths": tokens.ne(1).sum(1)}, tokens


def test_generator_loss_expectation_is_the_sequence_kl(lm):
    task, model, criterion, tokens, forced, allowed = lm
    eos = task.target_dictionary.eos()
    data_input, data_target = data_batch(tokens, eos)
    terms = criterion.sequence_terms(model.generator, model.mediator, data_input, data_target,
                                     tokens, forced)
    generator = brute_force(model.generator, tokens, forced, allowed, eos)
    mediator = brute_force(model.mediator, tokens, forced, allowed, eos)
    log_g = torch.stack([lp for lp, _ in generator])
    log_m = torch.stack([lp for lp, _ in mediator])
    assert math.isclose(float(log_g.exp().sum()), 1.0, rel_tol=1e-9)  # the enumeration is complete
    exact_kl = float((log_g.exp() * (log_g - log_m)).sum())
    estimate = float((log_g.exp().float() * terms["generator_kl"]).sum())
    assert exact_kl > 0.05
    assert math.isclose(estimate, exact_kl, rel_tol=1e-4)
    assert torch.allclose(terms["generator_log_prob_samples"].double(), log_g, atol=1e-5)
    assert torch.allclose(terms["mediator_log_prob_samples"].double(), log_m, atol=1e-5)


def test_generator_gradient_matches_enumerated_objective(lm):
    """The criterion's pathwise gradient (samples fixed, no REINFORCE term),
    weighted by the exact outcome probabilities, against the same objective
    written out by enumeration with per-prefix forwards."""
    task, model, criterion, tokens, forced, allowed = lm
    eos = task.target_dictionary.eos()
    data_input, data_target = data_batch(tokens, eos)
    parameters = list(model.generator.parameters())
    generator = brute_force(model.generator, tokens, forced, allowed, eos)
    weights = torch.stack([lp for lp, _ in generator]).exp().detach()

    terms = criterion.sequence_terms(model.generator, model.mediator, data_input, data_target,
                                     tokens, forced)
    ours = torch.autograd.grad((weights.float() * terms["generator_kl"]).sum(), parameters)

    mediator = brute_force(model.mediator, tokens, forced, allowed, eos)
    objective = 0.0
    for weight, (_, g_steps), (_, m_steps) in zip(weights, generator, mediator):
        for g, m in zip(g_steps, m_steps):
            objective = objective + weight * (g.exp() * (g - m.detach())).sum()
    expected = torch.autograd.grad(objective, parameters)
    for a, b in zip(ours, expected):
        assert torch.allclose(a.double(), b.double(), atol=1e-5, rtol=1e-4)


def test_generator_and_mediator_gradients_are_disjoint(lm, tiny_lm_data_bin):
    task, model, criterion, tokens, forced, allowed = lm
    data_input, data_target = data_batch(tokens, task.target_dictionary.eos())
    terms = criterion.sequence_terms(model.generator, model.mediator, data_input, data_target,
                                     tokens, forced)
    generator_params = list(model.generator.parameters())
    mediator_params = list(model.mediator.parameters())
    mediator_loss = terms["mediator_nll_data"].sum() + terms["mediator_nll_samples"].sum()
    for loss, moved, untouched in ((terms["generator_kl"].sum(), generator_params, mediator_params),
                                   (mediator_loss, mediator_params, generator_params)):
        grads = torch.autograd.grad(loss, moved + untouched, retain_graph=True, allow_unused=True)
        assert all(g is not None and g.abs().sum() > 0 for g in grads[: len(moved)])
        assert all(g is None for g in grads[len(moved):])


def js_pi(p, q, pi):
    m = pi * p + (1 - pi) * q
    return pi * (p * (p / m).log()).sum() + (1 - pi) * (q * (q / m).log()).sum()


def kl(p, q):
    return (p * (p / q).log()).sum()


@pytest.mark.parametrize("pi", [0.1, 0.5, 0.9])
def test_js_estimate_is_exact_with_the_exact_mixture(pi):
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(21, dtype=torch.float64) * 2, 0)
    q = torch.softmax(torch.randn(21, dtype=torch.float64) * 2, 0)
    log_m = (pi * p + (1 - pi) * q).log()
    data_terms, sample_terms = js_pi_terms(q.log(), log_m, q.log(), log_m, pi)
    estimate = (p * data_terms).sum() + (q * sample_terms).sum()
    assert math.isclose(float(estimate), float(js_pi(p, q, pi)), rel_tol=1e-9)


def test_js_pi_limits_are_the_two_kl_directions():
    torch.manual_seed(1)
    p = torch.softmax(torch.randn(21, dtype=torch.float64), 0)
    q = torch.softmax(torch.randn(21, dtype=torch.float64), 0)
    small, large = 1e-5, 1 - 1e-5
    assert math.isclose(float(js_pi(p, q, small) / small), float(kl(p, q)), rel_tol=1e-3)
    assert math.isclose(float(js_pi(p, q, large) / (1 - large)), float(kl(q, p)), rel_tol=1e-3)


def token_js_by_definition(logits, target, pi, smoothing):
    """JS_pi per row in probability space, float64, straight from the definition."""
    q = torch.softmax(logits.double(), -1)
    vocab = q.size(-1)
    p = torch.full_like(q, smoothing / (vocab - 1))
    p.scatter_(-1, target.unsqueeze(-1), 1 - smoothing)
    m = pi * p + (1 - pi) * q
    kl_pm = (p * torch.log(torch.where(p > 0, p, m) / m)).sum(-1)  # 0 log 0 = 0
    return pi * kl_pm + (1 - pi) * (q * (q / m).log()).sum(-1)


@pytest.mark.parametrize("pi", [0.01, 0.3, 0.5, 0.97])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_token_js_value_and_gradient_match_the_definition(pi, smoothing):
    torch.manual_seed(2)
    logits = (torch.randn(6, 7, dtype=torch.float64) * 2).requires_grad_()
    target = torch.randint(0, 7, (6,))
    ours = token_js_pi(torch.log_softmax(logits, -1), target, pi, smoothing)  # JS_pi / (pi (1 - pi))
    expected = token_js_by_definition(logits, target, pi, smoothing) / (pi * (1 - pi))
    assert torch.allclose(ours.double(), expected, rtol=1e-4, atol=1e-7)
    (grad_ours,) = torch.autograd.grad(ours.sum(), logits)
    (grad_expected,) = torch.autograd.grad(expected.sum(), logits)
    assert torch.allclose(grad_ours.double(), grad_expected, rtol=1e-3, atol=1e-6)


def test_token_gjs_tends_to_mle_and_to_reverse_kl(toy_data_bin, batch):
    _, model, mle = build(toy_data_bin, "--criterion", "label_smoothed_cross_entropy")
    nll, _, _ = mle(model, batch)
    _, _, near_zero = build(toy_data_bin, "--criterion", "gjs", "--gjs-pi", "1e-5")
    loss, _, _ = near_zero(model, batch)
    assert math.isclose(float(loss), float(nll), rel_tol=1e-3)

    _, _, near_one = build(toy_data_bin, "--criterion", "gjs", "--gjs-pi", str(1 - 1e-5),
                           "--label-smoothing", "0.1")
    loss, _, _ = near_one(model, batch)
    with torch.no_grad():
        logits = model(**batch["net_input"])[0].double()
    target = batch["target"]
    real = target.ne(model.decoder.padding_idx)
    log_q = torch.log_softmax(logits[real], -1)
    log_p = torch.full_like(log_q, math.log(0.1 / (log_q.size(-1) - 1)))
    log_p.scatter_(-1, target[real].unsqueeze(-1), math.log(0.9))
    reverse_kl = (log_q.exp() * (log_q - log_p)).sum()
    assert math.isclose(float(loss), float(reverse_kl), rel_tol=1e-2)


def test_gjs_mediator_mode_at_one_half_is_cot(tiny_lm_data_bin):
    task, model, cot = build_lm(tiny_lm_data_bin, "--criterion", "cot")
    _, _, gjs = build_lm(tiny_lm_data_bin, "--criterion", "gjs", "--gjs-mode", "mediator",
                         "--gjs-pi", "0.5")
    task.load_dataset("valid")
    sample = next(iter(task.get_batch_iterator(task.dataset("valid"), max_sentences=8)
                       .next_epoch_itr(shuffle=False)))
    model.train()
    torch.manual_seed(11)
    expected, _, expected_log = cot(model, sample)
    torch.manual_seed(11)
    loss, _, log = gjs(model, sample)
    assert torch.equal(loss, expected)
    assert log["cot_generator_kl_sum"] == expected_log["cot_generator_kl_sum"]


@pytest.mark.parametrize("copies", [1, 3])
def test_mediator_encodes_the_sources_once_as_two_full_passes_would(toy_data_bin, batch, copies):
    """The oracle: fairseq's own forward of the mediator on the data and on
    the samples, each encoding the sources itself, at the tokens' positions."""
    task, model, cot = build(toy_data_bin, "--criterion", "cot", "--task", "mediator_translation",
                             "--mediator-embed-dim", "16", "--mediator-hidden-dim", "32",
                             "--mediator-dropout", "0", "--cot-samples-per-source", str(copies))
    model.train()
    data_input = batch["net_input"]
    samples, _ = cot.draw_samples(model.generator, data_input, batch["target"].size(0),
                                  torch.Generator().manual_seed(2))
    sample_input = cot.teacher_forcing_input(data_input, samples)
    mediator = model.mediator

    def losses_and_gradients(data_logits, sample_logits):
        loss = data_logits.logsumexp(-1).sum() + 0.7 * sample_logits.logsumexp(-1).sum()
        gradients = torch.autograd.grad(loss, list(mediator.parameters()))
        return torch.stack([data_logits.sum(), sample_logits.sum()]), gradients

    data_mask, sample_mask = batch["target"].ne(cot.padding_idx), samples.ne(cot.padding_idx)
    values, gradients = losses_and_gradients(*cot.mediator_logits(mediator, data_input, sample_input,
                                                                  data_mask, sample_mask))
    expected, expected_gradients = losses_and_gradients(mediator(**data_input)[0][data_mask],
                                                        mediator(**sample_input)[0][sample_mask])
    torch.testing.assert_close(values, expected, rtol=1e-5, atol=1e-4)
    for gradient, expected_gradient in zip(gradients, expected_gradients):
        torch.testing.assert_close(gradient, expected_gradient, rtol=1e-4, atol=1e-6)


# (a mediator criterion without a mediator task: test_bad_input.py, at the first forward)
@pytest.mark.parametrize("args,message", [
    (["--criterion", "gjs", "--gjs-pi", "1"], "--gjs-pi must be in"),
    (["--criterion", "gjs", "--gjs-pi", "0"], "--gjs-pi must be in"),
])
def test_impossible_combinations_are_one_line_errors(toy_data_bin, args, message):
    with pytest.raises(ValueError, match=message) as error:
        build(toy_data_bin, *args, arch=TINY_TRANSFORMER)
    assert "\n" not in str(error.value)


def test_bad_cot_flags_name_the_flag(tiny_lm_data_bin):
    for flag, value in (("--cot-samples-per-source", "0"), ("--cot-mediator-steps", "0"),
                        ("--cot-max-len-a", "-1")):
        with pytest.raises(ValueError, match=flag):
            build_lm(tiny_lm_data_bin, "--criterion", "cot", flag, value)


def test_logged_sample_length_pools_the_workers_samples():
    """Two workers' sums, 3 samples of 7 tokens in all and 1 of 5: the mean
    length is 12 / 4 = 3.0, not the mean of the workers' means (3.67)."""
    def worker_log(samples, sample_tokens):
        return {"loss": 1.0, "ntokens": 4, "nsentences": 2, "sample_size": 4, "cot_samples": samples,
                "cot_sample_tokens": sample_tokens, "cot_generator_kl_sum": 0.5,
                "cot_mediator_nll_data_sum": 1.0, "cot_mediator_nll_samples_sum": 1.0}

    with metrics.aggregate(new_root=True) as logged:
        CotCriterion.reduce_metrics([worker_log(3, 7), worker_log(1, 5)])
    assert logged.get_smoothed_values()["sample_len"] == 3.0



def test_logged_values_are_bits_per_token():
    """Two workers, 4 data tokens each and 7 + 5 sampled tokens: the KL and
    the samples' NLL per sampled token, the data's per data token, the
    validation JSD estimate as the sum of its halves each per token of its own
    sequences, all in bits."""
    def worker_log(sample_tokens, kl, js_data, js_samples):
        return {"loss": 1.0, "nll_loss": 2.0, "ntokens": 4, "nsentences": 2, "sample_size": 4, "cot_samples": 2,
                "cot_sample_tokens": sample_tokens, "cot_generator_kl_sum": kl, "cot_mediator_nll_data_sum": 1.0,
                "cot_mediator_nll_samples_sum": 3.0, "cot_js_data_sum": js_data, "cot_js_samples_sum": js_samples}

    with metrics.aggregate(new_root=True) as logged:
        CotCriterion.reduce_metrics([worker_log(7, 0.5, 0.25, 1.0), worker_log(5, 1.5, 0.75, 2.0)])
    values = logged.get_smoothed_values()
    ln2 = math.log(2)
    assert values["generator_kl"] == pytest.approx(2.0 / 12 / ln2, abs=1e-4)
    assert values["mediator_nll_samples"] == pytest.approx(6.0 / 12 / ln2, abs=1e-4)
    assert values["mediator_nll_data"] == pytest.approx(2.0 / 8 / ln2, abs=1e-4)
    assert values["jsd"] == pytest.approx((1.0 / 8 + 3.0 / 12) / ln2, abs=1e-4)
    assert values["nll_loss"] == pytest.approx(4.0 / 8 / ln2, abs=1e-3)

def enumerated_gradients(model, tokens, forced, allowed, eos):
    """G(s) of every outcome (detached), and the gradients over the
    generator's parameters of CoT's pathwise objective E_G[sum_t KL_t] with G's
    weights held fixed, and of KL[G||M] = sum_s G(s) log(G(s) / M(s)), both
    with M fixed: written out by enumeration with per-prefix forwards."""
    parameters = list(model.generator.parameters())
    generator = brute_force(model.generator, tokens, forced, allowed, eos)
    mediator = brute_force(model.mediator, tokens, forced, allowed, eos)
    log_g = torch.stack([lp for lp, _ in generator])
    log_m = torch.stack([lp for lp, _ in mediator]).detach()
    weights = log_g.exp().detach()
    pathwise = 0.0
    for weight, (_, g_steps), (_, m_steps) in zip(weights, generator, mediator):
        for g, m in zip(g_steps, m_steps):
            pathwise = pathwise + weight * (g.exp() * (g - m.detach())).sum()
    exact = (log_g.exp() * (log_g - log_m)).sum()
    return (weights, torch.autograd.grad(pathwise, parameters, retain_graph=True),
            torch.autograd.grad(exact, parameters))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_gamma_estimator_expectation_is_the_exact_kl_gradient_at_one(lm, tiny_lm_data_bin, gamma):
    """E_{s~G}[grad J^gamma], summed over every outcome weighted by G(s), is
    (1 - gamma) times the pathwise gradient plus gamma times the exact
    gradient of KL[G||M]: CoT's practice at 0, exact at 1. The outcomes have
    padding and forced EOS."""
    task, model, _, tokens, forced, allowed = lm
    _, _, criterion = build_lm(tiny_lm_data_bin, "--criterion", "cot", "--cot-gamma", str(gamma))
    eos = task.target_dictionary.eos()
    weights, pathwise, exact = enumerated_gradients(model, tokens, forced, allowed, eos)
    # the score-function term matters here: the test tells the two apart
    assert max(float((p - e).abs().max()) for p, e in zip(pathwise, exact)) > 1e-3

    data_input, data_target = data_batch(tokens, eos)
    terms = criterion.sequence_terms(model.generator, model.mediator, data_input, data_target,
                                     tokens, forced)
    estimate = (weights.float() * criterion.generator_loss(terms)).sum()
    ours = torch.autograd.grad(estimate, list(model.generator.parameters()))
    for a, p, e in zip(ours, pathwise, exact):
        expected = (1 - gamma) * p.double() + gamma * e.double()
        assert torch.allclose(a.double(), expected, atol=1e-5, rtol=1e-4)


def test_gamma_zero_is_the_pathwise_loss_bitwise_and_gamma_moves_only_gradients(tiny_lm_data_bin):
    """On a real batch, --cot-gamma 0 (the default) gives bitwise the loss and
    gradients of the objective before the flag, mediator NLL plus
    2 (1 - pi) times the stepwise KL on the same draws; --cot-gamma 1 the
    same loss value (its surrogate is zero-valued) and other gradients."""
    task, model, criterion = build_lm(tiny_lm_data_bin, "--criterion", "cot")
    _, _, exact_criterion = build_lm(tiny_lm_data_bin, "--criterion", "cot", "--cot-gamma", "1")
    task.load_dataset("valid")
    sample = next(iter(task.get_batch_iterator(task.dataset("valid"), max_sentences=8)
                       .next_epoch_itr(shuffle=False)))
    model.train()
    parameters = list(model.parameters())

    loss, _, _ = criterion(model, sample)
    grads = torch.autograd.grad(loss, parameters)
    rng = batch_generator(criterion.seed, criterion.num_updates, sample["id"])
    samples, forced = criterion.draw_samples(model.generator, sample["net_input"],
                                             sample["target"].size(0), rng)
    terms = criterion.sequence_terms(model.generator, model.mediator, sample["net_input"],
                                     sample["target"], samples, forced, estimate=False)
    before = (0.5 * terms["mediator_nll_data"].sum() + 0.5 * terms["mediator_nll_samples"].sum()
              + 1.0 * terms["generator_kl"].sum())
    assert torch.equal(loss, before)
    assert all(torch.equal(a, b) for a, b in zip(grads, torch.autograd.grad(before, parameters)))

    exact_loss, _, _ = exact_criterion(model, sample)
    assert torch.equal(exact_loss, loss)
    exact_grads = torch.autograd.grad(exact_loss, parameters)
    assert not all(torch.equal(a, b) for a, b in zip(grads, exact_grads))


def test_score_function_surrogate_weights_each_token_by_the_later_steps_kl():
    """Zero in value; d/d log G(s_t | s_<t) = sum of the KLs of the drawn
    steps after t (reward-to-go): steps 0..3 with KLs 1, 2, 4, 8, the last a
    forced EOS (not drawn), padding after it."""
    token_lprobs = torch.log_softmax(torch.randn(1, 5, 4), -1)[:, :, 0].detach().requires_grad_()
    mask = torch.tensor([[True, True, True, False, False]])
    step_losses = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0]], requires_grad=True)
    surrogate = score_function_surrogate(step_losses, token_lprobs, mask)
    assert torch.equal(surrogate, torch.zeros(1))
    grad, = torch.autograd.grad(surrogate.sum(), token_lprobs)
    assert torch.equal(grad, torch.tensor([[2.0 + 4.0, 4.0, 0.0, 0.0, 0.0]]))

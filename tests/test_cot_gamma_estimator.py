"""The statistics of CoT's Figure 3 (fairseq_ot/analysis/gamma_estimator.py)
on tiny cases whose answer is known."""

import math

import torch

from fairseq_ot.analysis.gamma_estimator import build_cot, compare_estimators, estimator_gradients


def first_batch(task):
    task.load_dataset("valid")
    iterator = task.get_batch_iterator(task.dataset("valid"), max_sentences=8)
    return next(iter(iterator.next_epoch_itr(shuffle=False)))


def test_estimators_agree_when_no_step_follows_a_draw(tiny_lm_data_bin):
    """Samples of at most two tokens: one draw, then EOS (drawn or forced).
    No drawn step follows a draw, every reward-to-go is 0, so grad J^1 =
    grad J^0 estimate by estimate: cosine 1. The one drawn step's prefix is
    always the start, so neither estimator varies: no ratio to report."""
    task, model, criterion = build_cot(tiny_lm_data_bin, "--cot-max-len-b", "2")
    pathwise, exact, kl = estimator_gradients(criterion, model, first_batch(task), 3, seed=0)
    assert kl > 0 and pathwise.abs().sum() > 0
    assert torch.equal(pathwise, exact)
    stats = compare_estimators(pathwise, exact)
    assert math.isclose(stats["cosine"], 1.0, rel_tol=1e-12)
    assert stats["dimensions"] == 0 and math.isnan(stats["log_var_ratio_quantiles"]["0.5"])


def test_estimators_differ_when_later_steps_follow(tiny_lm_data_bin):
    task, model, criterion = build_cot(tiny_lm_data_bin, "--cot-max-len-b", "4")
    pathwise, exact, _ = estimator_gradients(criterion, model, first_batch(task), 3, seed=0)
    assert not torch.equal(pathwise, exact)
    assert compare_estimators(pathwise, exact)["cosine"] < 1


def test_log_variance_ratio_of_a_scaled_estimator_is_twice_the_log_scale():
    pathwise = torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stats = compare_estimators(pathwise, 3 * pathwise)
    assert math.isclose(stats["cosine"], 1.0, rel_tol=1e-12)
    assert math.isclose(stats["log_var_ratio_mean"], 2 * math.log(3), rel_tol=1e-9)
    assert stats["dimensions"] == 7 and stats["fraction_lower_variance_at_gamma_0"] == 1.0

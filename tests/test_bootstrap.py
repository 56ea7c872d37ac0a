"""Paired bootstrap intervals (fairseq_ot/evaluation/bootstrap.py) against
sacrebleu's own --paired-bs, against a brute-force loop that rescores every
resampled test set from its sentences, and against closed-form cases."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU

from fairseq_ot.evaluation.bootstrap import (
    DifferenceInterval,
    format_interval,
    mean_over_items,
    paired_bootstrap,
    paired_bootstrap_bleu,
)

VOCABULARY = ("the a cat dog bird sat ran flew on under over mat rug roof house "
              "garden big small red blue quickly slowly").split()
N_SENTENCES = 60


def random_sentence(rng):
    return " ".join(rng.choice(VOCABULARY, size=rng.integers(4, 16)))


def perturbed(sentence, rate, rng):
    """``sentence`` with each word replaced at ``rate`` and, at ``rate``, its
    last word dropped (so that the brevity penalty varies too)."""
    words = [str(rng.choice(VOCABULARY)) if rng.random() < rate else word for word in sentence.split()]
    return " ".join(words[:-1] if rng.random() < rate else words)


@pytest.fixture(scope="module")
def corpus():
    """Two reference streams and two systems a few BLEU points apart."""
    rng = np.random.default_rng(2004)
    references = [random_sentence(rng) for _ in range(N_SENTENCES)]
    second_references = [perturbed(reference, 0.3, rng) for reference in references]
    system = [perturbed(reference, 0.30, rng) for reference in references]
    control = [perturbed(reference, 0.36, rng) for reference in references]
    return {"references": references, "second_references": second_references,
            "system": system, "control": control}


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def sacrebleu_paired_bs(reference_files, control_file, system_file, n_resamples, seed):
    """{"control": ..., "system": ...}, each sacrebleu's JSON result
    {"score", "mean", "ci", "p_value"} of `sacrebleu --paired-bs`."""
    env = dict(os.environ, SACREBLEU_SEED=str(seed), SACREBLEU_FORMAT="json", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "sacrebleu", *map(str, reference_files),
               "-i", str(control_file), str(system_file), "-m", "bleu",
               "--paired-bs", "--paired-bs-n", str(n_resamples), "--quiet"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    control, system = json.loads(result.stdout)
    assert control["system"] == f"Baseline: {control_file}"
    return {"control": control["BLEU"], "system": system["BLEU"]}


@pytest.mark.parametrize("n_references, seed", [(1, 12345), (1, 2024), (2, 12345)])
def test_bleu_equals_sacrebleu_paired_bs(corpus, tmp_path, n_references, seed):
    streams = [corpus["references"], corpus["second_references"]][:n_references]
    reference_files = [write_lines(tmp_path / f"ref{k}.txt", stream) for k, stream in enumerate(streams)]
    reported = sacrebleu_paired_bs(
        reference_files, write_lines(tmp_path / "control.txt", corpus["control"]),
        write_lines(tmp_path / "system.txt", corpus["system"]), n_resamples=1000, seed=seed)
    refs = streams[0] if n_references == 1 else streams
    ours = paired_bootstrap_bleu(corpus["system"], corpus["control"], refs, n_resamples=1000, seed=seed)
    # sacrebleu's JSON holds the floats unrounded, so equality here is bit for bit
    for name, estimate in [("system", ours.system), ("control", ours.control)]:
        assert (estimate.score, estimate.mean, estimate.half_width) == (
            reported[name]["score"], reported[name]["mean"], reported[name]["ci"])
    assert ours.difference.p_two_sided == reported["system"]["p_value"]
    # the data are meant to leave the test undecided, not to pin p at 1 / 1001
    assert 0.01 < ours.difference.p_two_sided < 0.9


def test_one_reference_stream_or_a_list_of_one(corpus):
    one_stream = paired_bootstrap_bleu(corpus["system"], corpus["control"], corpus["references"], seed=3)
    list_of_one = paired_bootstrap_bleu(corpus["system"], corpus["control"], [corpus["references"]], seed=3)
    assert one_stream == list_of_one


def brute_force_bleu(hypotheses, references, indices):
    """(float64, float32-rounded) BLEU of the resampled sentences, each from
    sacrebleu.corpus_bleu rerun on them. sacrebleu's paired bootstrap (and
    bootstrap.py) scores resamples from float32 sums, which rounds the n-gram
    precisions to float32; replaying corpus_bleu's totals through BLEU.compute_bleu
    as float32 reproduces that rounding."""
    score = sacrebleu.corpus_bleu([hypotheses[i] for i in indices], [[references[i] for i in indices]])
    rounded = BLEU.compute_bleu(
        np.array(score.counts, dtype=np.float32), np.array(score.totals, dtype=np.float32),
        score.sys_len, score.ref_len, smooth_method="exp")
    return score.score, rounded.score


def test_difference_interval_equals_a_brute_force_loop(corpus):
    n_resamples, seed = 200, 7
    ours = paired_bootstrap_bleu(corpus["system"], corpus["control"], corpus["references"],
                                 n_resamples=n_resamples, seed=seed)
    resamples = np.random.default_rng(seed).choice(N_SENTENCES, size=(n_resamples, N_SENTENCES))
    exact, rounded = [], []
    for indices in resamples:
        system_exact, system_rounded = brute_force_bleu(corpus["system"], corpus["references"], indices)
        control_exact, control_rounded = brute_force_bleu(corpus["control"], corpus["references"], indices)
        exact.append(system_exact - control_exact)
        rounded.append(system_rounded - control_rounded)
    rounded = np.array(rounded)
    # 200 = 5 x 40: these percentiles drop the 5 lowest and the 5 highest differences
    lower = np.percentile(rounded, 2.5, method="higher")
    upper = np.percentile(rounded, 97.5, method="lower")
    difference = ours.difference
    assert difference.lower == pytest.approx(lower, abs=1e-9)
    assert difference.upper == pytest.approx(upper, abs=1e-9)
    assert difference.mean == pytest.approx(rounded.mean(), abs=1e-9)
    assert difference.p_not_better == np.count_nonzero(rounded <= 0) / n_resamples
    # float32 rounding moves a BLEU score by about 1e-6
    assert np.max(np.abs(np.array(exact) - rounded)) < 1e-4
    assert difference.observed == pytest.approx(
        sacrebleu.corpus_bleu(corpus["system"], [corpus["references"]]).score
        - sacrebleu.corpus_bleu(corpus["control"], [corpus["references"]]).score, abs=1e-9)


def test_identical_systems_give_a_zero_interval():
    values = np.random.default_rng(0).random(50)
    result = paired_bootstrap(mean_over_items, values, values.copy(), n_resamples=400, seed=1)
    assert result.system == result.control
    assert result.difference == DifferenceInterval(
        observed=0.0, mean=0.0, lower=0.0, upper=0.0,
        # never better; sacrebleu's p-value is at its floor 1 / (R + 1) as no
        # resample beats the observed difference, zero, by more than zero
        p_not_better=1.0, p_two_sided=1 / 401)


def test_a_constant_shift_is_the_whole_interval():
    # item scores on a 1/4 grid keep every mean exact in binary floating point
    control = np.random.default_rng(0).integers(0, 40, size=64) / 4
    result = paired_bootstrap(mean_over_items, control + 0.5, control, n_resamples=400, seed=1)
    assert (result.difference.observed, result.difference.mean) == (0.5, 0.5)
    assert (result.difference.lower, result.difference.upper) == (0.5, 0.5)
    assert result.difference.p_not_better == 0.0
    assert result.system.half_width == result.control.half_width


def test_half_width_of_a_mean_is_about_two_standard_errors():
    values = np.random.default_rng(0).normal(size=400)
    result = paired_bootstrap(mean_over_items, values, np.zeros(400), n_resamples=2000, seed=5)
    standard_error = values.std() / np.sqrt(len(values))
    assert result.system.half_width == pytest.approx(1.96 * standard_error, rel=0.1)
    assert result.system.mean == pytest.approx(values.mean(), abs=0.2 * standard_error)
    assert result.difference.upper - result.difference.lower == pytest.approx(2 * result.system.half_width)


def test_the_seed_fixes_the_draws():
    rng = np.random.default_rng(0)
    system, control = rng.random(40), rng.random(40)
    first, again, other = (paired_bootstrap(mean_over_items, system, control, n_resamples=200, seed=seed)
                           for seed in (11, 11, 12))
    assert first == again
    assert first.difference.mean != other.difference.mean
    assert first.difference.observed == other.difference.observed


def test_format_interval():
    difference = DifferenceInterval(observed=0.42, mean=0.4, lower=-0.31, upper=1.1,
                                    p_not_better=0.2, p_two_sided=0.4)
    assert format_interval(difference) == "+0.42 [-0.31, +1.10]"
    assert format_interval(difference, digits=1) == "+0.4 [-0.3, +1.1]"


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_bleu(["a b"], ["a b", "c d"], ["a b", "c d"])
    with pytest.raises(ValueError, match="too few"):
        paired_bootstrap(mean_over_items, np.ones(5), np.ones(5), n_resamples=39)
    with pytest.raises(ValueError, match="3 system items for 2"):
        paired_bootstrap(mean_over_items, np.ones(3), np.ones(2))

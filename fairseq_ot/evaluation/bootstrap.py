"""Paired bootstrap confidence intervals of a corpus metric's difference
between a system and a control scored on the same test items.

Koehn (2004), "Statistical Significance Tests for Machine Translation
Evaluation" (EMNLP): draw R test sets of n items with replacement from the n
test items, score both systems on every drawn set, and read a 95% interval
off the R scores by dropping the lowest and the highest 2.5% of them. Both
systems are scored on the same drawn sets, so the interval of the difference
(system minus control) accounts for items that are hard for both.

The corpus score of a drawn set is recomputed from its items: by summing
per-sentence sufficient statistics for BLEU, by averaging per-item values for
ROUGE F1, as pycocoevalcap computes it on the drawn items for the COCO caption
metrics (fairseq_ot/evaluation/caption_scoring.py; CIDEr's document
frequencies then come from the references of the drawn items).

``paired_bootstrap_bleu`` reproduces ``sacrebleu REF -i CONTROL SYSTEM
--paired-bs`` (checked with sacrebleu 2.6.0) to the last bit; the same draws give the
interval of the difference that sacrebleu does not report.
"""

from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import BLEU

# sacrebleu's defaults for SACREBLEU_SEED and --paired-bs-n
DEFAULT_SEED = 12345
DEFAULT_RESAMPLES = 1000
# Koehn's 95% interval drops 1/40 of the sorted scores on each side
TAIL_FRACTION_DENOMINATOR = 40


@dataclass(frozen=True)
class SystemEstimate:
    """One system's corpus score and its bootstrap distribution."""

    score: float  # on the whole test set
    mean: float  # over the resampled test sets
    half_width: float  # half the width of the 95% interval of the resampled scores


@dataclass(frozen=True)
class DifferenceInterval:
    """The system-minus-control difference of a corpus score."""

    observed: float  # system score minus control score on the whole test set
    mean: float  # over the resampled test sets
    lower: float  # the 95% interval of the resampled differences
    upper: float
    p_not_better: float  # one-sided: fraction of resampled differences <= 0
    p_two_sided: float  # sacrebleu's --paired-bs p-value


@dataclass(frozen=True)
class PairedBootstrap:
    system: SystemEstimate
    control: SystemEstimate
    difference: DifferenceInterval
    n_resamples: int
    seed: int


def draw_resamples(n_items, n_resamples, seed):
    """An ``n_resamples`` x ``n_items`` matrix of item indices drawn uniformly
    with replacement, row r being the r-th resampled test set.

    Drawn as sacrebleu draws them (``numpy.random.default_rng(seed).choice``
    with ``size=(n_resamples, n_items)``), so that a seed gives sacrebleu's
    test sets."""
    if n_items < 1:
        raise ValueError("no test items to resample")
    if n_resamples < TAIL_FRACTION_DENOMINATOR:
        raise ValueError(f"{n_resamples} resamples are too few for a 95% interval "
                         f"(at least {TAIL_FRACTION_DENOMINATOR})")
    rng = np.random.default_rng(seed)
    return rng.choice(n_items, size=(n_resamples, n_items), replace=True)


def resampled_scores(corpus_score, items, resamples):
    """``corpus_score(items, indices)`` for the indices of every resampled test set."""
    return np.array([corpus_score(items, indices) for indices in resamples], dtype=np.float64)


def interval_of_sorted(sorted_values):
    """Koehn's 95% interval of R sorted values: (v[k], v[R - 1 - k]) with
    k = floor(R / 40), which drops k values on each side (25 of 1,000) as
    sacrebleu's ``estimate_ci`` does."""
    dropped = len(sorted_values) // TAIL_FRACTION_DENOMINATOR
    return sorted_values[dropped], sorted_values[len(sorted_values) - 1 - dropped]


def system_estimate(score, scores):
    """The SystemEstimate of a system scoring ``score`` on the test set and
    ``scores`` on the resampled sets: the mean of ``scores`` and half the
    width of their 95% interval, sacrebleu's "mean ± half-width"."""
    sorted_scores = np.sort(scores)
    lower, upper = interval_of_sorted(sorted_scores)
    # sacrebleu averages the sorted scores; summing in that order keeps its rounding
    return SystemEstimate(score=float(score), mean=float(sorted_scores.mean()),
                          half_width=float(0.5 * (upper - lower)))


def sacrebleu_p_value(observed_difference, system_scores, control_scores):
    """sacrebleu's two-sided paired bootstrap p-value (after Moses'
    bootstrap-hypothesis-difference-significance.pl and Koehn 2004):

        d_r = |s_r - c_r|,   p = (1 + #{r : d_r - mean(d) > |observed|}) / (R + 1).

    Centring the d_r at their mean makes them a sample of the null hypothesis
    "no difference"; the +1 keeps p above zero for a finite R."""
    absolute_differences = np.abs(system_scores - control_scores)
    centred = absolute_differences - absolute_differences.mean()
    exceeding = int(np.sum(centred > abs(observed_difference)))
    return (exceeding + 1) / (len(centred) + 1)


def difference_interval(system_score, control_score, system_scores, control_scores):
    """The DifferenceInterval of differences d_r = s_r - c_r of the resampled
    scores: their mean, their 95% interval and p_not_better = #{r : d_r <= 0} / R
    (Koehn 2004: the system is better with 95% confidence when p_not_better <= 0.05;
    two identical systems give d_r = 0 and p_not_better = 1)."""
    differences = system_scores - control_scores
    lower, upper = interval_of_sorted(np.sort(differences))
    observed = system_score - control_score
    return DifferenceInterval(
        observed=float(observed),
        mean=float(differences.mean()),
        lower=float(lower),
        upper=float(upper),
        p_not_better=float(np.mean(differences <= 0)),
        p_two_sided=sacrebleu_p_value(observed, system_scores, control_scores),
    )


def summarize(system_score, control_score, system_scores, control_scores, seed):
    """The PairedBootstrap of whole-test-set scores and resampled scores."""
    return PairedBootstrap(
        system=system_estimate(system_score, system_scores),
        control=system_estimate(control_score, control_scores),
        difference=difference_interval(system_score, control_score, system_scores, control_scores),
        n_resamples=len(system_scores),
        seed=seed,
    )


def paired_bootstrap(corpus_score, system_items, control_items,
                     n_resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED):
    """The PairedBootstrap of a corpus metric over test items.

    ``system_items[i]`` and ``control_items[i]`` are what each system produced
    for test item i (a hypothesis, a per-item score, ...), indexable by an
    integer array when ``corpus_score`` indexes them so;
    ``corpus_score(items, indices)`` is the corpus score of the test set made
    of items ``indices`` (repeats included), the same function for both
    systems. The whole test set is ``indices = 0 .. n - 1``."""
    n_items = len(system_items)
    if len(control_items) != n_items:
        raise ValueError(f"{n_items} system items for {len(control_items)} control items")
    resamples = draw_resamples(n_items, n_resamples, seed)
    whole_test_set = np.arange(n_items)
    return summarize(
        corpus_score(system_items, whole_test_set), corpus_score(control_items, whole_test_set),
        resampled_scores(corpus_score, system_items, resamples),
        resampled_scores(corpus_score, control_items, resamples),
        seed,
    )


def mean_over_items(values, indices):
    """A corpus score that is the mean of per-item values (ROUGE F1 per item):
    (1 / |I|) * sum over i in I of values[i], with I the drawn ``indices``
    (repeats included); pass the values as a numpy array."""
    return float(np.mean(values[indices]))


def reference_streams(refs):
    """sacrebleu's reference layout, a list of streams (stream k holds the
    k-th reference of every sentence), from one stream or several."""
    return [list(refs)] if isinstance(refs[0], str) else [list(stream) for stream in refs]


def sacrebleu_resampled_bleu(bleu):
    """The corpus score of a resampled test set from float32 per-sentence
    statistics, as sacrebleu's paired bootstrap computes it."""
    def score(sentence_stats, indices):
        # sacrebleu hands float32 sums to BLEU, whose precisions then round to
        # float32 under NumPy 2's promotion rules: passing the same float32 sums
        # keeps its scores bit for bit whatever NumPy does with them
        return bleu._compute_score_from_stats(sentence_stats[indices].sum(axis=0)).score

    return score


def paired_bootstrap_bleu(hyps_system, hyps_control, refs,
                          n_resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED):
    """The PairedBootstrap of sacrebleu's corpus BLEU (default options: 13a
    tokenization, exp smoothing), equal to what

        SACREBLEU_SEED=seed sacrebleu REF... -i CONTROL SYSTEM -m bleu \\
            --paired-bs --paired-bs-n n_resamples

    reports: system.score / .mean / .half_width and control's are its
    "score (mean ± CI)", difference.p_two_sided its p-value.

    sacrebleu extracts per-sentence statistics [hyp length, closest ref length,
    matches of 1..4-grams, hyp 1..4-grams], scores the whole test set from
    their integer sums and each resample from their float32 sums. It draws
    the same index matrix for both systems (it reseeds per system), except
    with seed 0, which it treats as unseeded for the system; here the draws
    are shared for every seed.

    ``refs`` is one reference stream (a list of strings) or several."""
    streams = reference_streams(refs)
    lengths = {len(hyps_system), len(hyps_control)} | {len(stream) for stream in streams}
    if len(lengths) != 1:
        raise ValueError(f"hypotheses and reference streams differ in length: {sorted(lengths)}")
    bleu = BLEU(references=streams)
    system_stats = bleu._extract_corpus_statistics(hyps_system, None)
    control_stats = bleu._extract_corpus_statistics(hyps_control, None)
    resamples = draw_resamples(len(hyps_system), n_resamples, seed)
    resampled_bleu = sacrebleu_resampled_bleu(bleu)
    return summarize(
        bleu._aggregate_and_compute(system_stats).score,
        bleu._aggregate_and_compute(control_stats).score,
        resampled_scores(resampled_bleu, np.array(system_stats, dtype=np.float32), resamples),
        resampled_scores(resampled_bleu, np.array(control_stats, dtype=np.float32), resamples),
        seed,
    )


def format_interval(difference, digits=2):
    """The observed difference and its 95% interval for a table, signed:
    "+0.42 [-0.31, +1.10]"."""
    return (f"{difference.observed:+.{digits}f} "
            f"[{difference.lower:+.{digits}f}, {difference.upper:+.{digits}f}]")

"""Quality and diversity of unconditionally generated sentences: BLEU-N
against references, Self-BLEU-N among the generations, distinct-n.

Every sentence is a list of tokens. BLEU-N is the mean over hypotheses h of

    nltk.translate.bleu_score.sentence_bleu(references, h,
        weights=(1/N,) * N, smoothing_function=SmoothingFunction().method1)

reproduced exactly (to rounding) but without nltk's pass over every
reference for every hypothesis: each n-gram's largest count in any reference
and the multiset of reference lengths are tabulated once. Self-BLEU-N scores
each generation against all the others (by position: a duplicate at another
position is a reference), with the per-n-gram table holding the largest
count, where it occurs and the runner-up, so that leaving one sentence out is
O(1). nltk's behaviour, kept here:

* modified precision p_n = sum_g min(count_h(g), max_r count_r(g)) / max(1, |n-grams of h|):
  a hypothesis shorter than n has p_n = 0/1, not 0/0;
* no re-weighting when the hypothesis is shorter than N (auto_reweigh=False);
* the score is 0 when no unigram matches (an empty hypothesis included),
  before any smoothing;
* method1 smoothing replaces a zero p_n by (0 + 0.1) / denominator, so an
  order the hypothesis is too short for counts 0.1;
* r is the reference length closest to the hypothesis length c, ties to the
  shorter; brevity penalty BP = 1 if c > r else exp(1 - r / c);
* BLEU-N = BP * exp(sum_{n<=N} (1/N) log p_n).

The real-data reference point: the test references scored the same way as
generations, against the training sentences (``real_data_scores``): the
BLEU a model would reach by reproducing the test set, and the Self-BLEU and
distinct-n of real text.
"""

import bisect
import math
from collections import Counter

BLEU_ORDERS = (2, 3, 4, 5)
DISTINCT_ORDERS = (1, 2, 3, 4)
EPSILON = 0.1  # nltk SmoothingFunction's default epsilon for method1
SMOOTHING = f"nltk SmoothingFunction().method1, epsilon {EPSILON}"


class UndefinedScoreError(ValueError):
    """A score asked of too few sentences: BLEU without references or
    hypotheses, Self-BLEU of fewer than two sentences."""


def ngrams(tokens, n):
    """The n-grams of ``tokens`` as tuples, in order; none when len < n."""
    return zip(*(tokens[start:] for start in range(n)))


def ngram_counts(tokens, max_order):
    """[Counter of the n-grams of ``tokens``] for n = 1..max_order."""
    return [Counter(ngrams(tokens, n)) for n in range(1, max_order + 1)]


class ReferenceLengths:
    """The multiset of reference lengths, for nltk's closest reference length

        r(c) = argmin_{r in lengths} (|r - c|, r)

    (ties go to the shorter reference)."""

    def __init__(self, lengths):
        self.count = Counter(lengths)
        self.distinct = sorted(self.count)

    def closest(self, hyp_len, excluding_one=None):
        """r(hyp_len) over the lengths with one occurrence of
        ``excluding_one`` removed (Self-BLEU's own sentence)."""

        def present(length):
            return self.count[length] - (length == excluding_one) > 0

        # the nearest present length below hyp_len and the nearest at or
        # above it; only one length can be used up, so each walk skips at most one
        longer = bisect.bisect_left(self.distinct, hyp_len)
        shorter = longer - 1
        while shorter >= 0 and not present(self.distinct[shorter]):
            shorter -= 1
        while longer < len(self.distinct) and not present(self.distinct[longer]):
            longer += 1
        candidates = [self.distinct[i] for i in (shorter, longer) if 0 <= i < len(self.distinct)]
        return min(candidates, key=lambda length: (abs(length - hyp_len), length))


def reference_max_counts(references, max_order, wanted):
    """{n-gram: max_r count_r(n-gram)} over ``references``, for n-grams of
    orders 1..max_order that are in ``wanted``: those of the hypotheses,
    which keeps a large training set's table small."""
    maxima = {}
    for reference in references:
        for counts in ngram_counts(reference, max_order):
            for gram, count in counts.items():
                if gram in wanted and count > maxima.get(gram, 0):
                    maxima[gram] = count
    return maxima


class LeaveOneOutMaxCounts:
    """Per n-gram over the sentences of a set: the largest count in one
    sentence, that sentence's position, and the largest count at any other
    position, so that max_{j != i} count_j(n-gram) costs O(1)."""

    def __init__(self, sentence_counts):
        """``sentence_counts[i]``: ngram_counts of the sentence at position i."""
        self.leaders = {}
        for position, counts_by_order in enumerate(sentence_counts):
            for counts in counts_by_order:
                for gram, count in counts.items():
                    largest, at, runner_up = self.leaders.get(gram, (0, None, 0))
                    if count > largest:
                        self.leaders[gram] = (count, position, largest)
                    elif count > runner_up:
                        self.leaders[gram] = (largest, at, count)

    def max_count_without(self, gram, position):
        """max over positions j != ``position`` of count_j(gram), for an
        n-gram of the set."""
        largest, at, runner_up = self.leaders[gram]
        return runner_up if at == position else largest


def modified_precisions(hypothesis_counts, max_reference_count):
    """[(numerator, denominator)] per order n of nltk's modified precision:
    sum_g min(count_h(g), max_reference_count(g)) over max(1, sum_g count_h(g))."""
    return [
        (sum(min(count, max_reference_count(gram)) for gram, count in counts.items()),
         max(1, sum(counts.values())))
        for counts in hypothesis_counts
    ]


def smoothed_precision(numerator, denominator):
    """numerator / denominator, with method1's (0 + epsilon) / denominator
    for a zero numerator."""
    return (numerator + EPSILON) / denominator if numerator == 0 else numerator / denominator


def brevity_penalty(closest_ref_len, hyp_len):
    """1 if c > r, else exp(1 - r / c); c > 0 (an empty hypothesis matches no
    unigram and scores 0 before this)."""
    if hyp_len > closest_ref_len:
        return 1
    return math.exp(1 - closest_ref_len / hyp_len)


def sentence_bleu_by_order(precisions, hyp_len, closest_ref_len, orders):
    """{N: BP * exp(sum_{n<=N} (1/N) log p_n)} for N in ``orders``, from the
    modified precisions of orders 1..max(orders); 0 when no unigram matches."""
    if precisions[0][0] == 0:
        # nltk returns before smoothing: epsilon never rescues a unigram miss
        return dict.fromkeys(orders, 0.0)
    penalty = brevity_penalty(closest_ref_len, hyp_len)
    logs = [math.log(smoothed_precision(*precision)) for precision in precisions]
    # weights (1/N,) * N and math.fsum, as nltk sums them
    return {order: penalty * math.exp(math.fsum((1 / order) * log for log in logs[:order]))
            for order in orders}


def mean_by_order(sentence_scores, orders):
    """{N: mean over sentences of their score of order N}."""
    return {order: math.fsum(scores[order] for scores in sentence_scores) / len(sentence_scores)
            for order in orders}


def bleu(hypotheses, references, orders=BLEU_ORDERS):
    """{N: mean over hypotheses of nltk's smoothed sentence BLEU-N against
    all ``references``}."""
    if not hypotheses or not references:
        raise UndefinedScoreError(
            f"BLEU of {len(hypotheses)} hypotheses against {len(references)} references")
    max_order = max(orders)
    hypothesis_counts = [ngram_counts(hypothesis, max_order) for hypothesis in hypotheses]
    wanted = {gram for counts_by_order in hypothesis_counts for counts in counts_by_order for gram in counts}
    maxima = reference_max_counts(references, max_order, wanted)
    lengths = ReferenceLengths(len(reference) for reference in references)
    scores = [
        sentence_bleu_by_order(
            modified_precisions(counts, lambda gram: maxima.get(gram, 0)),
            len(hypothesis), lengths.closest(len(hypothesis)), orders,
        )
        for hypothesis, counts in zip(hypotheses, hypothesis_counts)
    ]
    return mean_by_order(scores, orders)


def self_bleu(sentences, orders=BLEU_ORDERS):
    """{N: mean over positions i of nltk's smoothed sentence BLEU-N of
    sentence i against the sentences at all other positions}."""
    if len(sentences) < 2:
        raise UndefinedScoreError(f"Self-BLEU needs at least 2 sentences, got {len(sentences)}")
    max_order = max(orders)
    sentence_counts = [ngram_counts(sentence, max_order) for sentence in sentences]
    others = LeaveOneOutMaxCounts(sentence_counts)
    lengths = ReferenceLengths(len(sentence) for sentence in sentences)
    scores = [
        sentence_bleu_by_order(
            modified_precisions(counts, lambda gram: others.max_count_without(gram, position)),
            len(sentence), lengths.closest(len(sentence), excluding_one=len(sentence)), orders,
        )
        for position, (sentence, counts) in enumerate(zip(sentences, sentence_counts))
    ]
    return mean_by_order(scores, orders)


def distinct_n(sentences, n):
    """|distinct n-grams over all sentences| / |n-grams over all sentences|;
    0.0 when no sentence is n tokens long."""
    grams = [gram for sentence in sentences for gram in ngrams(sentence, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def generation_scores(hypotheses, references):
    """{"bleuN", "self_bleuN": N = 2..5; "distinctN": N = 1..4} of
    ``hypotheses``, BLEU against ``references``."""
    scores = {f"bleu{order}": value for order, value in bleu(hypotheses, references).items()}
    scores.update({f"self_bleu{order}": value for order, value in self_bleu(hypotheses).items()})
    scores.update({f"distinct{order}": distinct_n(hypotheses, order) for order in DISTINCT_ORDERS})
    return scores


def real_data_scores(references, train_references):
    """The real-data reference point: generation_scores of the test
    ``references`` as if generated, against ``train_references``, each key
    prefixed "real_"."""
    return {f"real_{name}": value for name, value in generation_scores(references, train_references).items()}

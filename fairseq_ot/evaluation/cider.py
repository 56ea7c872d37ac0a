"""pycocoevalcap's CIDEr(-D) of many resampled test sets, for the paired
bootstrap of caption scores: equal (to rounding, about 1e-15 relative) to
``Cider().compute_score`` rerun on each drawn set, about 100 times faster.

CIDEr's idf comes from the drawn set itself: for an n-gram g counted in
df(g) drawn items (by their references; an item drawn twice counts twice)
out of N drawn,

    idf(g) = log N - log max(1, df(g))   (>= 0 since df(g) <= N).

The tf-idf vectors of a caption are tf(g) idf(g), so every quantity CIDEr
sums is a fixed linear form in idf(g)^2: per hypothesis h, reference r and
order n,

    num  = sum over g of order n of min(tf_h(g), tf_r(g)) tf_r(g) idf(g)^2,
    |h|^2 = sum tf_h(g)^2 idf(g)^2,   |r|^2 = sum tf_r(g)^2 idf(g)^2,

and pycocoevalcap's score of an item is 10 / 4 * sum over n of the mean over
its references of num / (|h| |r|) (0 where a norm is 0) times
exp(-(l_h - l_r)^2 / (2 sigma^2)), l being the count of bigrams (its
"length"); the corpus score is the mean over the drawn items. The forms are
built once from pycocoevalcap's own n-gram counts (``cook_test``,
``cook_refs``) and evaluated per drawn set with ``numpy.bincount``.
"""

import numpy as np
from pycocoevalcap.cider.cider_scorer import cook_refs, cook_test

ORDERS = 4
SIGMA = 6.0  # pycocoevalcap's default


class LinearForms:
    """Sparse rows of weights over columns, evaluated on a vector x as
    ``values(x)[row] = sum of weight * x[column]`` over the row's entries."""

    def __init__(self):
        self.rows, self.columns, self.weights = [], [], []
        self.n_rows = None

    def add(self, row, column, weight):
        self.rows.append(row)
        self.columns.append(column)
        self.weights.append(weight)

    def freeze(self, n_rows):
        """Turn the entries into arrays, once all are added."""
        self.rows = np.array(self.rows, dtype=np.int64)
        self.columns = np.array(self.columns, dtype=np.int64)
        self.weights = np.array(self.weights, dtype=np.float64)
        self.n_rows = n_rows

    def values(self, x):
        return np.bincount(self.rows, weights=self.weights * x[self.columns], minlength=self.n_rows)


def bigram_count(counts):
    """pycocoevalcap's "length" of a caption: the count of its bigrams."""
    return sum(count for gram, count in counts.items() if len(gram) == 2)


def length_penalty(hypothesis_counts, reference_counts):
    """exp(-(l_h - l_r)^2 / (2 sigma^2)) of the bigram counts l."""
    delta = float(bigram_count(hypothesis_counts) - bigram_count(reference_counts))
    return np.exp(-(delta ** 2) / (2 * SIGMA ** 2))


class ResampledCider:
    """CIDEr of any multiset of the items (hypothesis, its references) of a
    test set: ``score(indices)`` equals ``Cider().compute_score`` on the
    items ``indices`` (repeats included); ``len`` is the number of items.

    Columns are the n-grams; the forms are ``document_frequency`` (a row per
    n-gram, a column per item: df = document_frequency.values(times drawn)),
    and the squared norms and overlaps above, evaluated on idf^2, with a row
    per (hypothesis, order) or (reference, order)."""

    def __init__(self, hypotheses, references):
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference lists")
        self.grams = {}
        self.document_frequency = LinearForms()
        self.hypothesis_norms, self.reference_norms, self.overlaps = LinearForms(), LinearForms(), LinearForms()
        item_of_reference, penalties = [], []
        for item, (hypothesis, refs) in enumerate(zip(hypotheses, references)):
            hypothesis_counts, reference_counts = cook_test(hypothesis), cook_refs(refs)
            self.add_item(item, hypothesis_counts, reference_counts, first_reference=len(item_of_reference))
            item_of_reference += [item] * len(refs)
            penalties += [length_penalty(hypothesis_counts, counts) for counts in reference_counts]
        self.document_frequency.freeze(len(self.grams))
        self.hypothesis_norms.freeze(len(hypotheses) * ORDERS)
        self.reference_norms.freeze(len(item_of_reference) * ORDERS)
        self.overlaps.freeze(len(item_of_reference) * ORDERS)
        self.item_of_reference = np.array(item_of_reference, dtype=np.int64)
        self.penalties = np.array(penalties, dtype=np.float64)
        self.references_per_item = np.array([len(refs) for refs in references], dtype=np.float64)

    def __len__(self):
        return len(self.references_per_item)

    def column(self, gram):
        return self.grams.setdefault(gram, len(self.grams))

    def add_item(self, item, hypothesis_counts, reference_counts, first_reference):
        """The entries of one item, its references numbered from ``first_reference``."""
        for gram in set().union(*reference_counts):
            self.document_frequency.add(self.column(gram), item, 1.0)
        for gram, count in hypothesis_counts.items():
            self.hypothesis_norms.add(item * ORDERS + len(gram) - 1, self.column(gram), count ** 2)
        for reference, counts in enumerate(reference_counts, start=first_reference):
            for gram, count in counts.items():
                row = reference * ORDERS + len(gram) - 1
                self.reference_norms.add(row, self.column(gram), count ** 2)
                if gram in hypothesis_counts:
                    self.overlaps.add(row, self.column(gram), min(hypothesis_counts[gram], count) * count)

    def score(self, indices):
        """CIDEr (x1, as pycocoevalcap) of the items ``indices``."""
        drawn = np.bincount(indices, minlength=len(self)).astype(np.float64)
        df = self.document_frequency.values(drawn)
        squared_idf = (np.log(float(len(indices))) - np.log(np.maximum(1.0, df))) ** 2
        hypothesis_norms = np.sqrt(self.hypothesis_norms.values(squared_idf)).reshape(-1, ORDERS)
        reference_norms = np.sqrt(self.reference_norms.values(squared_idf)).reshape(-1, ORDERS)
        overlaps = self.overlaps.values(squared_idf).reshape(-1, ORDERS)
        norms = hypothesis_norms[self.item_of_reference] * reference_norms
        cosines = np.divide(overlaps, norms, out=np.zeros_like(overlaps), where=norms != 0)
        per_reference = cosines.mean(axis=1) * self.penalties
        per_item = 10 * np.bincount(self.item_of_reference, weights=per_reference, minlength=len(self))
        return float(np.dot(drawn, per_item / self.references_per_item) / len(indices))

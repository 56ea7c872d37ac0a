"""COCO caption metrics (pycocoevalcap): BLEU-1..4, METEOR and CIDEr(-D) of
one caption per image against all references of that image, both sides
lower-cased and without the punctuation tokens that pycocoevalcap's
PTBTokenizer drops. Scores are x100; METEOR runs Java.

``paired_bootstraps`` compares two runs' captions of the same images with
95% paired bootstrap intervals (fairseq_ot/evaluation/bootstrap.py), each
resampled test set scored as pycocoevalcap scores it, from statistics
computed once per item: BLEU from its per-item counts (exactly), CIDEr with
fairseq_ot/evaluation/cider.py (to rounding), METEOR by METEOR's own EVAL of
its per-item statistics summed (exactly; milliseconds per resampled set).
"""

import shutil

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

from fairseq_ot.data.caption_dataset import group_by_image, images_file, references_file
from fairseq_ot.data_prep.text_files import read_lines
from fairseq_ot.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, paired_bootstrap
from fairseq_ot.evaluation.cider import ResampledCider
from fairseq_ot.evaluation.generate_output import read_hypotheses

PUNCTUATION = set(PUNCTUATIONS)
BLEU_ORDER = 4
METEOR_SKIPPED = ("METEOR skipped: no `java` on PATH (install a JRE, e.g. apt-get install "
                  "default-jre-headless)")


def normalize(text):
    return " ".join(word for word in text.lower().split() if word not in PUNCTUATION)


def java_available():
    """Whether METEOR can run: it needs `java` on PATH."""
    return shutil.which("java") is not None


def read_references(data, split):
    """[(image, [references])] in generation order."""
    names = read_lines(images_file(data, split))
    captions = read_lines(references_file(data, split))
    if len(names) != len(captions):
        raise ValueError(f"{references_file(data, split)}: {len(captions)} captions for "
                         f"{len(names)} image names in {images_file(data, split)} (misaligned files)")
    return group_by_image(names, captions)


def normalized_hypotheses(generate_output, n_images):
    """The normalized captions of fairseq-generate's output, one per image."""
    return [normalize(h) for h in read_hypotheses(generate_output, n_images, kind="D")]


def coco_inputs(hypotheses, references):
    """{i: [hypothesis i]} and {i: references i}, normalized, as
    pycocoevalcap's metrics take them."""
    res = {i: [normalize(h)] for i, h in enumerate(hypotheses)}
    gts = {i: [normalize(r) for r in refs] for i, refs in enumerate(references)}
    return res, gts


def caption_scores(hypotheses, references, meteor=True):
    """{metric: score x100} of hypotheses[i] against references[i] (a list)."""
    res, gts = coco_inputs(hypotheses, references)
    bleu, _ = Bleu(BLEU_ORDER).compute_score(gts, res, verbose=0)
    scores = {f"bleu{n}": 100 * b for n, b in enumerate(bleu, 1)}
    scores["cider"] = 100 * Cider().compute_score(gts, res)[0]
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        scores["meteor"] = 100 * Meteor().compute_score(gts, res)[0]
    return scores


def bleu_statistics(hypotheses, references):
    """Per item [hypothesis length, closest reference length, guessed
    1..4-grams, matched 1..4-grams] as pycocoevalcap's BleuScorer counts
    them ("closest", as Bleu.compute_score asks), an int array [n, 10]."""
    scorer = BleuScorer(n=BLEU_ORDER)
    for hypothesis, refs in zip(hypotheses, references):
        scorer += (hypothesis, refs)
    return np.array([
        [comps["testlen"], scorer._single_reflen(comps["reflen"], "closest", comps["testlen"]),
         *comps["guess"], *comps["correct"]]
        for comps in scorer.ctest
    ], dtype=np.int64)


def bleu_of_statistics(order):
    """The corpus score BLEU-``order`` x100 of the items drawn, from their
    ``bleu_statistics``: pycocoevalcap's BleuScorer on one entry holding
    their sums, which is what Bleu.compute_score computes on those items
    (it sums the same integers before its formula)."""
    def score(statistics, indices):
        testlen, reflen, *counts = (int(total) for total in statistics[indices].sum(axis=0))
        scorer = BleuScorer(n=BLEU_ORDER)
        scorer.ctest = [{"testlen": testlen, "reflen": [reflen],
                         "guess": counts[:BLEU_ORDER], "correct": counts[BLEU_ORDER:]}]
        bleus, _ = scorer.compute_score(option="closest")
        return 100 * bleus[order - 1]

    return score


def cider_of_items(cider, indices):
    """The corpus score CIDEr x100 of the items drawn, from a ResampledCider."""
    return 100 * cider.score(indices)


# fields of METEOR 1.5's statistics line (MeteorStats): test and reference
# lengths first, then per matcher stage the matched content and function
# words, then the chunks and the matched words of test and reference
METEOR_TEST_LENGTH, METEOR_REFERENCE_LENGTH = 0, 1
METEOR_CHUNKS, METEOR_TEST_MATCHES, METEOR_REFERENCE_MATCHES = 20, 21, 22


def meteor_statistics(meteor, hypotheses, references):
    """Per item the counts of METEOR's SCORE command, as Meteor.compute_score
    gets them, made additive [items, 23]: METEOR's EVAL sums the counts of
    its segments (MeteorStats.addStats) except the chunk of a segment whose
    words all match in one chunk, so that chunk is zeroed here."""
    with meteor.lock:
        lines = [meteor._stat(hypothesis, refs) for hypothesis, refs in zip(hypotheses, references)]
    counts = np.array([[float(field) for field in line.split()] for line in lines]).reshape(len(lines), -1)
    if counts.size:
        whole = ((counts[:, METEOR_TEST_MATCHES] == counts[:, METEOR_TEST_LENGTH])
                 & (counts[:, METEOR_REFERENCE_MATCHES] == counts[:, METEOR_REFERENCE_LENGTH])
                 & (counts[:, METEOR_CHUNKS] == 1))
        counts[whole, METEOR_CHUNKS] = 0
    return counts


def meteor_of_statistics(meteor):
    """The corpus score METEOR x100 of the items drawn, from their
    ``meteor_statistics``: the counts summed as METEOR's EVAL sums its
    segments, then one EVAL of the sum (the corpus score of every drawn item,
    in one Java round trip instead of one line per item). The counts are
    whole numbers, so the float64 sum is exact in any order."""
    def score(statistics, indices):
        summed = np.bincount(np.asarray(indices), minlength=len(statistics)) @ statistics
        eval_line = " ||| ".join(["EVAL", " ".join(repr(float(count)) for count in summed)])
        with meteor.lock:
            meteor.meteor_p.stdin.write(f"{eval_line}\n".encode())
            meteor.meteor_p.stdin.flush()
            meteor.meteor_p.stdout.readline()  # the one segment's score
            return 100 * float(meteor.meteor_p.stdout.readline().strip())

    return score


def paired_bootstraps(system_output, control_output, data, split, meteor=True,
                      n_resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED):
    """{metric: PairedBootstrap} of BLEU-1..4, CIDEr and, with ``meteor``,
    METEOR (x100, as ``caption_scores``) of the captions of ``split`` in two
    fairseq-generate outputs, the system's minus the control's."""
    references = [[normalize(r) for r in refs] for _, refs in read_references(data, split)]
    system = normalized_hypotheses(system_output, len(references))
    control = normalized_hypotheses(control_output, len(references))

    outputs = (system, control)

    def bootstrap(corpus_score, items):
        return paired_bootstrap(corpus_score, *items, n_resamples, seed)

    bleu = [bleu_statistics(hypotheses, references) for hypotheses in outputs]
    intervals = {f"bleu{order}": bootstrap(bleu_of_statistics(order), bleu) for order in range(1, BLEU_ORDER + 1)}
    intervals["cider"] = bootstrap(cider_of_items, [ResampledCider(hypotheses, references) for hypotheses in outputs])
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        process = Meteor()
        intervals["meteor"] = bootstrap(meteor_of_statistics(process),
                                        [meteor_statistics(process, hypotheses, references) for hypotheses in outputs])
    return intervals

import gzip
import math
from collections import Counter

import numpy as np
import pytest
import sacrebleu
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from conftest import load_script
from fairseq_ot.evaluation import caption_scoring
from fairseq_ot.evaluation.cider import ResampledCider
from text_corpora import real_data

score_captions = load_script("score_captions")

HYPOTHESES = ["a dog runs on the green grass .", "two kids play in the water",
              "a man rides a red bike on the road .", "a woman sits"]
REFERENCES = [
    ["a dog runs on grass .", "the brown dog is running in a field", "a dog plays on the grass ."],
    ["two children play in the water .", "kids splash in the water at the beach",
     "children swim in a pool"],
    ["a man rides a bike .", "a cyclist rides on a road", "the man is riding his red bicycle"],
    ["a woman sits on a bench .", "the woman is sitting outside on a wooden bench",
     "a lady rests"],
]


def test_normalization_drops_punctuation_tokens_only():
    assert caption_scoring.normalize("A dog , running ... on grass - ok .") == "a dog running on grass ok"


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_bleu_matches_sacrebleu_with_all_references(order):
    hypotheses = [caption_scoring.normalize(h) for h in HYPOTHESES]
    references = [[caption_scoring.normalize(r) for r in refs] for refs in REFERENCES]
    expected = sacrebleu.metrics.BLEU(tokenize="none", smooth_method="none", max_ngram_order=order)
    expected = expected.corpus_score(hypotheses, [list(column) for column in zip(*references)]).score
    scores = caption_scoring.caption_scores(HYPOTHESES, REFERENCES, meteor=False)
    assert scores[f"bleu{order}"] == pytest.approx(expected, abs=1e-4)


def cider_d_by_definition(hypotheses, references, sigma=6.0):
    """CIDEr-D (Vedantam et al. 2015): 10 x the mean over n = 1..4 of the
    mean over references of the clipped cosine between tf-idf n-gram vectors,
    times a Gaussian penalty on the length difference; idf from the
    references of all images."""
    def ngrams(words, n):
        return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))

    tokenized = [[r.split() for r in refs] for refs in references]
    document_frequency = Counter()
    for refs in tokenized:
        document_frequency.update({g for words in refs for n in range(1, 5) for g in ngrams(words, n)})
    log_images = math.log(len(references))

    def tfidf(words, n):
        return {g: c * (log_images - math.log(max(1, document_frequency[g])))
                for g, c in ngrams(words, n).items()}

    def norm(vector):
        return math.sqrt(sum(v * v for v in vector.values()))

    total = 0.0
    for hypothesis, refs in zip(hypotheses, tokenized):
        words = hypothesis.split()
        per_order = []
        for n in range(1, 5):
            h = tfidf(words, n)
            similarities = []
            for ref in refs:
                r = tfidf(ref, n)
                dot = sum(min(value, r.get(g, 0.0)) * r.get(g, 0.0) for g, value in h.items())
                cosine = dot / (norm(h) * norm(r)) if norm(h) and norm(r) else 0.0
                similarities.append(cosine * math.exp(-((len(words) - len(ref)) ** 2) / (2 * sigma ** 2)))
            per_order.append(sum(similarities) / len(refs))
        total += 10 * sum(per_order) / 4
    return total / len(hypotheses)


def test_cider_matches_its_definition():
    hypotheses = [caption_scoring.normalize(h) for h in HYPOTHESES]
    references = [[caption_scoring.normalize(r) for r in refs] for refs in REFERENCES]
    expected = 100 * cider_d_by_definition(hypotheses, references)
    assert expected > 10
    scores = caption_scoring.caption_scores(HYPOTHESES, REFERENCES, meteor=False)
    assert scores["cider"] == pytest.approx(expected, rel=1e-6)


def write_generate_output(path, hypotheses, ids):
    path.write_text("".join(f"H-{i}\t-0.5\t{hypotheses[i]}\nD-{i}\t-0.5\t{hypotheses[i]}\n" for i in ids))


def test_scores_file_records_every_metric_and_a_missing_image_is_an_error(tmp_path):
    from fairseq_ot.evaluation.scores import read_scores

    data = tmp_path / "data"
    data.mkdir()
    names = [f"img{i}.jpg" for i, refs in enumerate(REFERENCES) for _ in refs]
    (data / "test.images.txt").write_text("".join(n + "\n" for n in names))
    (data / "test.references.txt").write_text("".join(r + "\n" for refs in REFERENCES for r in refs))
    output = tmp_path / "generate-test.txt"
    write_generate_output(output, HYPOTHESES, range(4))
    score_captions.main([str(output), "--data", str(data), "--run-dir", str(tmp_path / "run"),
                         "--criterion", "ot_seq", "--no-meteor"])
    record = read_scores(tmp_path / "run" / "scores_test.json")
    expected = caption_scoring.caption_scores(HYPOTHESES, REFERENCES, meteor=False)
    assert record["metrics"] == pytest.approx(expected) and record["hypotheses"] == 4
    write_generate_output(output, HYPOTHESES, range(3))
    with pytest.raises(SystemExit, match="3 hypotheses for 4 references"):
        score_captions.main([str(output), "--data", str(data), "--no-meteor"])


def test_references_misaligned_with_image_names_are_an_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.images.txt").write_text("a.jpg\na.jpg\nb.jpg\n")
    (data / "test.references.txt").write_text("a dog\na brown dog\n")
    output = tmp_path / "generate-test.txt"
    write_generate_output(output, ["a dog", "a cat"], range(2))
    with pytest.raises(SystemExit, match=r"test.references.txt: 2 captions for 3 image names.*misaligned"):
        score_captions.main([str(output), "--data", str(data), "--no-meteor"])


# resampled test sets of the items below: the whole set, repeats, one item
# drawn four times, fewer items than the set holds
RESAMPLED = [np.arange(7), np.array([0, 0, 1, 3, 4, 5]), np.array([2, 2, 2, 2]), np.array([5, 1, 4]),
             np.array([6, 6, 0, 3])]


def resampling_items():
    """Normalized captions and references, with an empty caption, a
    one-word caption (no bigram) and a caption equal to one of its
    references (one chunk, which METEOR's corpus sum leaves out) added."""
    references = [[caption_scoring.normalize(r) for r in refs] for refs in REFERENCES + REFERENCES[:3]]
    hypotheses = [caption_scoring.normalize(h) for h in HYPOTHESES] + ["", "dog", references[-1][0]]
    return hypotheses, references


def drawn(hypotheses, references, indices):
    """pycocoevalcap's gts and res of the items ``indices``, each draw its own key."""
    gts = {key: references[i] for key, i in enumerate(indices)}
    res = {key: [hypotheses[i]] for key, i in enumerate(indices)}
    return gts, res


@pytest.mark.parametrize("indices", RESAMPLED, ids=lambda indices: " ".join(map(str, indices)))
def test_bleu_of_resampled_items_is_pycocoevalcaps_on_them_to_the_bit(indices):
    hypotheses, references = resampling_items()
    statistics = caption_scoring.bleu_statistics(hypotheses, references)
    expected, _ = Bleu(4).compute_score(*drawn(hypotheses, references, indices), verbose=0)
    resampled = [caption_scoring.bleu_of_statistics(order)(statistics, indices) for order in range(1, 5)]
    assert resampled == [100 * score for score in expected]


@pytest.mark.parametrize("indices", RESAMPLED, ids=lambda indices: " ".join(map(str, indices)))
def test_cider_of_resampled_items_is_pycocoevalcaps_on_them(indices):
    hypotheses, references = resampling_items()
    expected, _ = Cider().compute_score(*drawn(hypotheses, references, indices))
    # a repeated item counts as often as it was drawn, in the document frequencies too
    assert ResampledCider(hypotheses, references).score(indices) == pytest.approx(expected, rel=1e-12)


def test_cider_of_resampled_flickr8k_captions_is_pycocoevalcaps():
    tokens = real_data("flickr8k") / "Flickr8k.token.txt.gz"
    captions = {}
    with gzip.open(tokens, "rt", encoding="utf-8") as lines:
        for line in lines:
            name, caption = line.rstrip("\n").split("\t")
            captions.setdefault(name.split("#")[0], []).append(caption_scoring.normalize(caption))
    references = [refs[1:] for refs in list(captions.values())[:300]]
    rng = np.random.default_rng(0)
    # the first caption of each image with about one word in five dropped
    hypotheses = [" ".join(w for w in refs[0].split() if rng.random() > 0.2) for refs in captions.values()][:300]
    cider = ResampledCider(hypotheses, references)
    for indices in [np.arange(300), *rng.choice(300, size=(2, 300))]:
        expected, _ = Cider().compute_score(*drawn(hypotheses, references, indices))
        assert cider.score(indices) == pytest.approx(expected, rel=1e-12)


@pytest.mark.skipif(not caption_scoring.java_available(), reason="METEOR needs `java`")
def test_meteor_of_resampled_items_is_meteors_on_them_to_the_bit():
    from pycocoevalcap.meteor.meteor import Meteor

    hypotheses, references = resampling_items()
    meteor = Meteor()
    statistics = caption_scoring.meteor_statistics(meteor, hypotheses, references)
    score = caption_scoring.meteor_of_statistics(meteor)
    for indices in RESAMPLED:
        expected, _ = meteor.compute_score(*drawn(hypotheses, references, indices))
        assert score(statistics, indices) == 100 * expected

"""COCO caption metrics (pycocoevalcap): BLEU-1..4, METEOR and CIDEr(-D) of
one caption per image against all references of that image, both sides
lower-cased and without the punctuation tokens that pycocoevalcap's
PTBTokenizer drops. Scores are x100; METEOR runs Java."""

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

from fairseq_ot.data.caption_dataset import group_by_image, images_file, references_file
from fairseq_ot.data_prep.text_files import read_lines

PUNCTUATION = set(PUNCTUATIONS)


def normalize(text):
    return " ".join(word for word in text.lower().split() if word not in PUNCTUATION)


def read_references(data, split):
    """[(image, [references])] in generation order."""
    names = read_lines(images_file(data, split))
    captions = read_lines(references_file(data, split))
    if len(names) != len(captions):
        raise ValueError(f"{references_file(data, split)}: {len(captions)} captions for "
                         f"{len(names)} image names in {images_file(data, split)} (misaligned files)")
    return group_by_image(names, captions)


def caption_scores(hypotheses, references, meteor=True):
    """{metric: score x100} of hypotheses[i] against references[i] (a list)."""
    res = {i: [normalize(h)] for i, h in enumerate(hypotheses)}
    gts = {i: [normalize(r) for r in refs] for i, refs in enumerate(references)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"bleu{n}": 100 * b for n, b in enumerate(bleu, 1)}
    scores["cider"] = 100 * Cider().compute_score(gts, res)[0]
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        scores["meteor"] = 100 * Meteor().compute_score(gts, res)[0]
    return scores

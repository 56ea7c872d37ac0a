#!/usr/bin/env python
"""BLEU-1..4, METEOR and CIDEr(-D) of fairseq-generate captions against all
references of each image, with pycocoevalcap (the COCO caption metrics).

fairseq-generate must run on a `--task captioning` split with one item per
image (the task's default) and `--post-process subword_nmt`: hypothesis i is
the caption of the i-th image of DATA/SPLIT.images.txt. References are the
prepared, tokenized, lower-cased captions; both sides drop punctuation tokens
as pycocoevalcap's PTBTokenizer does. Scores are x100. METEOR runs Java
(skipped with a message when `java` is absent).

    python scripts/score_captions.py GENERATE_OUTPUT --data DATA --split test \
        [--run-dir RUN_DIR --recipe captioning --criterion NAME]
"""

import argparse
import shlex
import shutil
import sys

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

from fairseq_ot.data.caption_dataset import group_by_image, images_file, references_file
from fairseq_ot.data_prep.text_files import read_lines
from fairseq_ot.evaluation.generate_output import HypothesisCountError, read_hypotheses
from fairseq_ot.evaluation.scores import add_record_arguments, write_scores

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generate_output", help="fairseq-generate's output (H-/D- lines)")
    parser.add_argument("--data", required=True, help="the prepared captioning data folder")
    parser.add_argument("--split", default="test")
    add_record_arguments(parser, recipe="captioning")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    args = parser.parse_args(argv)
    meteor = not args.no_meteor
    if meteor and shutil.which("java") is None:
        print("METEOR skipped: no `java` on PATH (install a JRE, e.g. apt-get install "
              "default-jre-headless)", file=sys.stderr)
        meteor = False
    try:
        images = read_references(args.data, args.split)
        hypotheses = read_hypotheses(args.generate_output, len(images), kind="D")
    except (HypothesisCountError, ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}")
    scores = caption_scores(hypotheses, [refs for _, refs in images], meteor=meteor)
    for name, value in scores.items():
        print(f"{name}\t{value:.2f}")
    if args.run_dir:
        path = write_scores(args.run_dir, args.split, task="captioning", recipe=args.recipe,
                            criterion=args.criterion, metrics=scores, hypotheses=len(hypotheses),
                            command=shlex.join(sys.argv))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

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
import sys

from fairseq_ot.evaluation.caption_scoring import METEOR_SKIPPED, caption_scores, java_available, read_references
from fairseq_ot.evaluation.generate_output import HypothesisCountError, read_hypotheses
from fairseq_ot.evaluation.scores import add_record_arguments, write_scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generate_output", help="fairseq-generate's output (H-/D- lines)")
    parser.add_argument("--data", required=True, help="the prepared captioning data folder")
    parser.add_argument("--split", default="test")
    add_record_arguments(parser, recipe="captioning")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    args = parser.parse_args(argv)
    meteor = not args.no_meteor
    if meteor and not java_available():
        print(METEOR_SKIPPED, file=sys.stderr)
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

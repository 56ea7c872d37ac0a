"""BLEU-2..5, Self-BLEU-2..5 and distinct-1..4 of unconditionally generated
sentences (fairseq_ot/evaluation/generation_metrics.py), printed as one JSON
object on stdout.

HYPS and REFS hold one tokenized sentence per line, split on whitespace. An
empty line of HYPS is an empty generation (scored 0, as nltk does); REFS
may not hold empty lines. With --train-refs, REFS is also scored as if it
were generated, against the training sentences: keys real_bleuN,
real_self_bleuN, real_distinctN and n_train_ref, the real-data reference point.

    fairseq-ot-score-generations HYPS REFS [--train-refs FILE] \\
        [--temperature T] [--tokenizer NAME]
"""

import argparse
import json

from fairseq_ot.data_prep.text_files import TextFileError, read_lines
from fairseq_ot.errors import FlagError, print_one_line
from fairseq_ot.evaluation.generation_metrics import (
    SMOOTHING,
    UndefinedScoreError,
    generation_scores,
    real_data_scores,
)


def read_sentences(path, allow_empty_lines):
    """The whitespace-split lines of ``path``; TextFileError when it has no
    line or, unless ``allow_empty_lines``, on a blank line (with its number)."""
    lines = read_lines(path, allow_empty=allow_empty_lines)
    if not lines:
        raise TextFileError(f"{path}: empty file, no sentences")
    return [line.split() for line in lines]


def scores_of_file(path, score, sentences, references):
    """score(sentences, references), a score undefined for the file's
    sentences (Self-BLEU of a single line) reported as the file's fault."""
    try:
        return score(sentences, references)
    except UndefinedScoreError as error:
        raise TextFileError(f"{path}: {error}") from None


def score_files(args):
    """The JSON record of the parsed command line ``args``."""
    # `not > 0` also refuses nan
    if args.temperature is not None and not args.temperature > 0:
        raise FlagError(f"--temperature must be > 0, got {args.temperature}")
    hypotheses = read_sentences(args.hypotheses, allow_empty_lines=True)
    references = read_sentences(args.references, allow_empty_lines=False)
    # read before any scoring, so that a bad file fails at once
    train_references = read_sentences(args.train_refs, allow_empty_lines=False) if args.train_refs else None
    record = {"n_hyp": len(hypotheses), "n_ref": len(references)}
    record.update(scores_of_file(args.hypotheses, generation_scores, hypotheses, references))
    record.update(tokenizer=args.tokenizer, smoothing=SMOOTHING, temperature=args.temperature)
    if train_references is not None:
        record["n_train_ref"] = len(train_references)
        record.update(scores_of_file(args.references, real_data_scores, references, train_references))
    return record


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fairseq-ot-score-generations", description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("hypotheses", metavar="HYPS",
                        help="generated sentences, one per line; an empty line is an empty generation")
    parser.add_argument("references", metavar="REFS", help="reference sentences, one per line")
    parser.add_argument("--train-refs", metavar="FILE",
                        help="training sentences: also score REFS against them (keys real_*)")
    parser.add_argument("--temperature", type=float,
                        help="sampling temperature of the generations, recorded (> 0)")
    parser.add_argument("--tokenizer", default="whitespace",
                        help="name of the tokenization the files went through, recorded; "
                             "lines are split on whitespace regardless")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        record = score_files(args)
    except (TextFileError, FlagError) as error:
        # one line and status 2, as argparse reports a bad flag
        print_one_line(error)
        raise SystemExit(2) from None
    print(json.dumps(record))


if __name__ == "__main__":
    main()

"""BLEU-2..5, Self-BLEU-2..5 and distinct-1..4 of unconditionally generated
sentences (fairseq_ot/evaluation/generation_metrics.py), printed as one JSON
object on stdout.

HYPS and REFS hold one sentence per line (UTF-8, a byte-order mark
dropped), tokenized by --tokenizer, every file alike
(fairseq_ot/evaluation/tokenization.py): by default split on whitespace
only, with a one-line warning on stderr when two files look differently
tokenized (detokenized hypotheses against tokenized references score far
too low); the record names the tokenizer applied. An empty line of HYPS is
an empty generation, scored 0 as nltk scores it: the record counts them
(n_empty_hyp) and stderr says so; a HYPS of empty lines only is refused, as
an empty file is. REFS may not hold empty lines. With --train-refs, REFS is
also scored as if it were generated, against the training sentences: keys
real_bleuN, real_self_bleuN, real_distinctN and n_train_ref, the real-data
reference point.

    fairseq-ot-score-generations HYPS REFS [--train-refs FILE] \\
        [--temperature T] [--tokenizer whitespace|moses-LANG|moses-LANG-lowercase]
"""

import argparse
import json

from fairseq_ot.data_prep.text_files import TextFileError, read_lines
from fairseq_ot.errors import FlagError, print_one_line, print_or_quit
from fairseq_ot.evaluation.generation_metrics import (
    SMOOTHING,
    UndefinedScoreError,
    generation_scores,
    real_data_scores,
)
from fairseq_ot.evaluation.tokenization import WHITESPACE, tokenization_gap, tokenizer


def read_sentences(path, tokenize, allow_empty_lines):
    """The lines of ``path`` as token lists of ``tokenize``; TextFileError
    when no line has a token or, unless ``allow_empty_lines``, on a blank
    line (with its number)."""
    lines = read_lines(path, allow_empty=allow_empty_lines)
    if not lines:
        raise TextFileError(f"{path}: empty file, no sentences")
    sentences = [tokenize(line) for line in lines]
    if not any(sentences):
        raise TextFileError(f"{path}: only empty lines, no sentences")
    return sentences


def tokenization_warnings(files):
    """A warning for each pair of consecutive (path, sentences) ``files``
    that look differently tokenized."""
    warnings = []
    for (first, first_sentences), (second, second_sentences) in zip(files, files[1:]):
        gap = tokenization_gap(first_sentences, second_sentences)
        if gap is not None:
            warnings.append(
                f"{first} and {second} look differently tokenized ({gap[0]:.0%} and {gap[1]:.0%} of the "
                f"punctuation at their tokens' edges stands alone): give --tokenizer, e.g. moses-en, "
                f"to tokenize every file alike")
    return warnings


def scores_of_file(path, score, sentences, references):
    """score(sentences, references), a score undefined for the file's
    sentences (Self-BLEU of a single line) reported as the file's fault."""
    try:
        return score(sentences, references)
    except UndefinedScoreError as error:
        raise TextFileError(f"{path}: {error}") from None


def score_files(args):
    """The JSON record of the parsed command line ``args``, and the warnings
    about its files (printed only once every score is computed, so that a
    refusal stays the one line on stderr)."""
    # `not > 0` also refuses nan
    if args.temperature is not None and not args.temperature > 0:
        raise FlagError(f"--temperature must be > 0, got {args.temperature}")
    tokenize = tokenizer(args.tokenizer)
    hypotheses = read_sentences(args.hypotheses, tokenize, allow_empty_lines=True)
    references = read_sentences(args.references, tokenize, allow_empty_lines=False)
    # read before any scoring, so that a bad file fails at once
    train_references = read_sentences(args.train_refs, tokenize, allow_empty_lines=False) if args.train_refs else None
    empty = sum(not hypothesis for hypothesis in hypotheses)
    record = {"n_hyp": len(hypotheses), "n_empty_hyp": empty, "n_ref": len(references)}
    record.update(scores_of_file(args.hypotheses, generation_scores, hypotheses, references))
    record.update(tokenizer=args.tokenizer, smoothing=SMOOTHING, temperature=args.temperature)
    if train_references is not None:
        record["n_train_ref"] = len(train_references)
        record.update(scores_of_file(args.references, real_data_scores, references, train_references))
    warnings = [f"{args.hypotheses}: {empty} of {len(hypotheses)} lines are empty, "
                "scored as empty generations (0)"] if empty else []
    if args.tokenizer == WHITESPACE:
        files = [(args.hypotheses, hypotheses), (args.references, references)]
        files += [(args.train_refs, train_references)] if train_references is not None else []
        warnings += tokenization_warnings(files)
    return record, warnings


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
    parser.add_argument("--tokenizer", default=WHITESPACE,
                        help="applied to every file alike, and recorded: whitespace (split only; the "
                             "default), moses-LANG or moses-LANG-lowercase (Moses after Moses detokenization)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        record, warnings = score_files(args)
    except (TextFileError, FlagError) as error:
        # one line and status 2, as argparse reports a bad flag
        print_one_line(error)
        raise SystemExit(2) from None
    for warning in warnings:
        print_one_line(warning, kind="warning")
    print_or_quit(json.dumps(record))


if __name__ == "__main__":
    main()

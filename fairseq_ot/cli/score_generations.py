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

from fairseq_ot.data_prep.text_files import TextFileError
from fairseq_ot.errors import FlagError, print_one_line, print_or_quit
from fairseq_ot.evaluation.generation_scoring import score_files
from fairseq_ot.evaluation.tokenization import WHITESPACE


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
        record, warnings = score_files(args.hypotheses, args.references, args.train_refs,
                                       args.tokenizer, args.temperature)
    except (TextFileError, FlagError) as error:
        # one line and status 2, as argparse reports a bad flag
        print_one_line(error)
        raise SystemExit(2) from None
    for warning in warnings:
        print_one_line(warning, kind="warning")
    print_or_quit(json.dumps(record))


if __name__ == "__main__":
    main()

"""Sample sentences unconditionally from a fairseq language model
checkpoint (`language_modeling`, or the generator of a
`mediator_language_modeling` checkpoint) and write one per line: the
tokens of the model's dictionary, space-separated, without EOS (no BPE is
undone; the caption_lm recipe has none).

Ancestral sampling at temperature T (each token from softmax(z / T)), from
a generator seeded by --seed: the same seed and --batch-size give the same
file. Padding and BOS are never drawn (--ban-unk: nor <unk>); a sentence
that reaches --max-tokens ends there. A checkpoint of another task, or a
DATA_BIN without dict.txt, is refused in one line.

    python scripts/sample_lm.py CHECKPOINT DATA_BIN --num 1000 --temperature 1.0 \\
        --seed 1 --out samples.txt
"""

import argparse
import sys

from fairseq_ot.data_prep.text_files import write_lines
from fairseq_ot.errors import FlagError, print_one_line
from fairseq_ot.evaluation.lm_sampling import (
    BATCH_SIZE,
    LMInputError,
    load_generator,
    require_temperature,
    sample_sentences,
)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="fairseq checkpoint (.pt)")
    parser.add_argument("data_bin", metavar="DATA_BIN", help="the binarized data folder (its dict.txt)")
    parser.add_argument("--num", type=int, default=1000, help="sentences to sample (default 1000)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature T > 0 (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sampling generator (default 1)")
    parser.add_argument("--max-tokens", type=int,
                        help="longest sentence, EOS included (default: the checkpoint's --tokens-per-sample)")
    parser.add_argument("--ban-unk", action="store_true", help="never sample <unk>")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help=f"sentences sampled at once (default {BATCH_SIZE}, as the temperature sweep; "
                             "the draws depend on it)")
    parser.add_argument("--out", required=True, help="output file, one sentence a line")
    return parser


def check_args(args):
    """FlagError for values no sampling can use."""
    require_temperature(args.temperature)
    for flag in ("num", "batch_size"):
        if getattr(args, flag) < 1:
            raise FlagError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise FlagError(f"--max-tokens must be >= 1, got {args.max_tokens}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        lm = load_generator(args.checkpoint, args.data_bin)
    except (FlagError, LMInputError) as error:
        print_one_line(error)
        raise SystemExit(2) from None
    sentences, truncated = sample_sentences(lm, args.num, args.temperature, args.seed, args.max_tokens,
                                            args.ban_unk, args.batch_size, progress=True)
    write_lines(args.out, sentences)
    print(f"wrote {len(sentences)} sentences to {args.out} ({truncated} cut at the length limit; "
          f"temperature {args.temperature}, seed {args.seed}, {lm.num_updates} updates)", file=sys.stderr)


if __name__ == "__main__":
    main()

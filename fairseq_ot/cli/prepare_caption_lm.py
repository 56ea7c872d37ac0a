"""Flickr8k captions to fairseq language-modelling data: the unconditional
text benchmark of the caption_lm recipe (what the folder holds:
fairseq_ot/data_prep/caption_lm.py). Running again with the same settings
does nothing; other settings need another --dest.

RAW holds Flickr8k.token.txt[.gz] and Flickr_8k.{train,dev,test}Images.txt,
as for scripts/prepare_flickr8k.py (no image features needed).

    python scripts/prepare_caption_lm.py [RAW] --dest prepared/caption_lm \\
        [--min-count 5] [--max-tokens 32]
"""

import argparse
import json
from pathlib import Path

from fairseq_ot.data_prep.caption_lm import MAX_TOKENS, MIN_COUNT, STATS_FILE, prepare, settings
from fairseq_ot.data_prep.flickr8k import SETTINGS_FILE
from fairseq_ot.data_prep.text_files import TextFileError
from fairseq_ot.paths import SHARED_DATA

DEFAULT_RAW = SHARED_DATA / "flickr8k"
SPLITS = ("train", "valid", "test")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", nargs="?", type=Path, default=DEFAULT_RAW if DEFAULT_RAW.is_dir() else None,
                        help=f"folder of the raw Flickr8k files (default {DEFAULT_RAW} when present)")
    parser.add_argument("--dest", type=Path, required=True, help="output folder (fairseq DATA)")
    parser.add_argument("--min-count", type=int, default=MIN_COUNT,
                        help=f"training-set count a word needs to enter the vocabulary; rarer "
                             f"words become <unk> (default {MIN_COUNT})")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS,
                        help=f"longer captions (tokens, EOS not counted) are dropped (default {MAX_TOKENS})")
    return parser


def stats_table(stats):
    """The stats of a prepared folder as printable lines."""
    lines = [f"tokenizer {stats['tokenizer']}; vocabulary {stats['vocabulary']} words "
             f"(training count >= {stats['min_count']}) + fairseq's 4 special symbols; "
             f"captions of more than {stats['max_tokens']} tokens dropped",
             f"{'split':<6} {'captions':>8} {'dropped':>7} {'tokens':>7} {'unk %':>6} {'max len':>7}"]
    for split in SPLITS:
        row = stats[split]
        lines.append(f"{split:<6} {row['captions']:>8} {row['dropped_too_long']:>7} {row['tokens']:>7} "
                     f"{100 * row['unk_rate']:>6.2f} {row['max_length']:>7}")
    return lines


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.raw is None:
        parser.error(f"give the raw Flickr8k folder ({DEFAULT_RAW} is absent)")
    if args.min_count < 1:
        parser.error(f"--min-count must be >= 1, got {args.min_count}")
    if args.max_tokens < 1:
        parser.error(f"--max-tokens must be >= 1, got {args.max_tokens}")
    wanted = settings(args.raw, args.min_count, args.max_tokens)
    recorded = args.dest / SETTINGS_FILE
    if recorded.is_file() and json.loads(recorded.read_text()) == wanted:
        print(f"{args.dest} is already prepared with these settings")
        stats = json.loads((args.dest / STATS_FILE).read_text())
    elif args.dest.exists():
        raise SystemExit(f"error: {args.dest} exists and was not prepared with these settings: "
                         f"remove it or choose another --dest")
    else:
        try:
            stats = prepare(args.raw, args.dest, args.min_count, args.max_tokens)
        except (TextFileError, FileNotFoundError) as error:
            raise SystemExit(f"error: {error}")
        print(f"prepared {args.dest}")
    print("\n".join(stats_table(stats)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Summarization corpora -> tokenized, joint-BPE'd, binarized folder for
fairseq (see fairseq_ot/data_prep/pipeline.py), sources truncated.

--format aeslc (default): AESLC e-mail -> subject line. Raw files
``{train,dev,test}.email`` and ``.subject`` (plain or .gz), one example a line;
dev and test may have extra human references ``.ann0``, ``.ann1``, ``.ann2``,
kept for multi-reference ROUGE. dev becomes fairseq's ``valid``. With internet
access, get AESLC from https://github.com/ryanzhumich/AESLC and write one
e-mail body / subject per line.

--format gigaword: Rush et al. headline data, ``PREFIX.article.txt`` and
``PREFIX.title.txt`` (plain or .gz), already tokenized and lower-cased (Moses
is skipped). With internet access: https://github.com/harvardnlp/sent-summary.
``--held-out N`` takes valid and test from the last 2 N training pairs, for a
folder holding one file pair only (such as ../shared/data/gigaword_sample).

    python scripts/prepare_aeslc.py [--raw-dir DIR] [--out-dir prepared/aeslc] [--max-source-tokens 60]
    python scripts/prepare_aeslc.py --format gigaword --raw-dir DIR --train-prefix train1000 --held-out 100
"""

import argparse
import sys
from pathlib import Path

from fairseq_ot.paths import SHARED_DATA
from fairseq_ot.data_prep.pipeline import PrepOptions, SplitFiles, prepare
from fairseq_ot.data_prep.text_files import TextFileError, find_raw_file

DATA = SHARED_DATA
FORMATS = {
    # format: (source suffix, target suffix, file ending, default raw folder, default prefixes)
    "aeslc": ("email", "subject", "", DATA / "aeslc", {"train": "train", "valid": "dev", "test": "test"}),
    "gigaword": ("article", "title", ".txt", DATA / "gigaword_sample",
                 {"train": "train", "valid": "valid", "test": "test"}),
}
EXTRA_REFERENCES = ("ann0", "ann1", "ann2")


def split_files(args):
    source, target, ending, _, prefixes = FORMATS[args.format]
    prefixes = dict(prefixes, train=args.train_prefix or prefixes["train"])
    names = ["train"] if args.held_out else ["train", "valid", "test"]
    splits = []
    for name in names:
        def raw_file(suffix, required=True):
            return find_raw_file(args.raw_dir, f"{prefixes[name]}.{suffix}{ending}", required)

        extra = [raw_file(ann, required=False) for ann in EXTRA_REFERENCES] if name != "train" else []
        splits.append(SplitFiles(name, raw_file(source), raw_file(target),
                                 tuple(path for path in extra if path)))
    return splits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=sorted(FORMATS), default="aeslc", help="raw file layout")
    parser.add_argument("--raw-dir", type=Path,
                        help="folder of the raw files (default ../shared/data/aeslc or gigaword_sample when present)")
    parser.add_argument("--out-dir", type=Path, help="prepared folder to write (default prepared/FORMAT)")
    parser.add_argument("--train-prefix", help="name of the training files before the suffix (default train)")
    parser.add_argument("--held-out", type=int, default=0,
                        help="take valid and test (N pairs each) from the end of the training files")
    parser.add_argument("--max-source-tokens", type=int, default=60,
                        help="keep the first N Moses tokens of each source (0: all)")
    parser.add_argument("--bpe-merges", type=int, default=8000, help="joint BPE merge operations")
    args = parser.parse_args(argv)
    source, target, _, default_raw, _ = FORMATS[args.format]
    if args.raw_dir is None:
        if not default_raw.is_dir():
            parser.error(f"--raw-dir is required ({default_raw} is absent)")
        args.raw_dir = default_raw
    out_dir = args.out_dir or Path("prepared") / args.format
    if args.held_out < 0 or args.max_source_tokens < 0:
        parser.error("--held-out and --max-source-tokens must be >= 0")
    try:
        options = PrepOptions(source, target, "en", "en", args.bpe_merges,
                              max_source_tokens=args.max_source_tokens,
                              pretokenized=args.format == "gigaword", held_out=args.held_out)
        prepare(out_dir, split_files(args), options)
    except (TextFileError, FileExistsError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()

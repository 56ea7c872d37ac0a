#!/usr/bin/env python
"""Multi30k (task 1) English-German: raw files -> tokenized, joint-BPE'd,
binarized folder for fairseq (see fairseq_ot/data_prep/pipeline.py).

Raw files: train, val and test_2016_flickr, ``.en`` and ``.de`` (plain or
.gz), untokenized, one sentence a line. With internet access, get them from
https://github.com/multi30k/dataset (data/task1/raw/). val becomes fairseq's
``valid``, test_2016_flickr its ``test``.

    python scripts/prepare_multi30k.py [--raw-dir DIR] [--out-dir prepared/multi30k_en_de]
"""

import argparse
import sys
from pathlib import Path

from fairseq_ot.paths import SHARED_DATA
from fairseq_ot.data_prep.pipeline import PrepOptions, SplitFiles, prepare
from fairseq_ot.data_prep.text_files import TextFileError, find_raw_file

DEFAULT_RAW = SHARED_DATA / "multi30k"
SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", type=Path, default=DEFAULT_RAW if DEFAULT_RAW.is_dir() else None,
                        required=not DEFAULT_RAW.is_dir(), help=f"folder of the raw files (default {DEFAULT_RAW} when present)")
    parser.add_argument("--out-dir", type=Path, default=Path("prepared/multi30k_en_de"), help="prepared folder to write")
    parser.add_argument("--source-lang", default="en", choices=["en", "de"], help="translate from this language")
    parser.add_argument("--bpe-merges", type=int, default=10000, help="joint BPE merge operations")
    args = parser.parse_args(argv)
    target_lang = "de" if args.source_lang == "en" else "en"
    try:
        splits = [
            SplitFiles(name, find_raw_file(args.raw_dir, f"{stem}.{args.source_lang}"),
                       find_raw_file(args.raw_dir, f"{stem}.{target_lang}"))
            for name, stem in SPLITS.items()
        ]
        options = PrepOptions(args.source_lang, target_lang, args.source_lang, target_lang, args.bpe_merges)
        prepare(args.out_dir, splits, options)
    except (TextFileError, FileExistsError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()

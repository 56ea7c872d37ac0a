"""Image-caption pairs for fairseq: the image's features as source, a caption
as target.

A prepared folder (scripts/prepare_flickr8k.py) holds, beside fairseq's
``dict.txt`` and binarized captions ``SPLIT.{bin,idx}``:

- ``SPLIT.images.txt``: the image file name of each caption, line by line;
- ``SPLIT.references.txt``: each caption tokenized and lower-cased, before
  BPE, for scoring;
- ``features.txt``: the path of the image features (.npz or .npy folder).
"""

from pathlib import Path

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

from fairseq_ot.data.image_features import MissingFeaturesError
from fairseq_ot.data_prep.text_files import read_lines

FEATURES_FILE = "features.txt"


def images_file(data, split):
    return Path(data) / f"{split}.images.txt"


def references_file(data, split):
    return Path(data) / f"{split}.references.txt"


def group_by_image(image_names, captions):
    """[(image, [its captions])] in order of each image's first caption: the
    order of the per-image items, so generation id i is the i-th image."""
    groups = {}
    for name, caption in zip(image_names, captions):
        groups.setdefault(name, []).append(caption)
    return list(groups.items())


def read_image_names(data, split, n_captions, features):
    """The image of each of the ``n_captions`` binarized captions, each one
    checked to have features."""
    path = images_file(data, split)
    names = read_lines(path)
    if len(names) != n_captions:
        raise ValueError(f"{path}: {len(names)} image names for {n_captions} captions in "
                         f"{Path(data) / split}.bin (misaligned files: prepare the data again)")
    for number, name in enumerate(names, 1):
        if name not in features:
            raise MissingFeaturesError(f"{path}:{number}: image {name!r} has no features in "
                                       f"{features.path}")
    return names


class CaptionDataset(FairseqDataset):
    """One item per caption (training), or with ``per_image`` one item per
    image whose target is the image's first caption (generation: one
    hypothesis per image, scored against all its captions)."""

    def __init__(self, captions, image_names, features, dictionary, per_image=False):
        self.captions = captions
        self.features = features
        self.dictionary = dictionary
        if per_image:
            first = {}
            for index, name in enumerate(image_names):
                first.setdefault(name, index)
            self.caption_index = np.fromiter(first.values(), dtype=np.int64)
        else:
            self.caption_index = np.arange(len(image_names), dtype=np.int64)
        self.image_names = [image_names[i] for i in self.caption_index]
        self.sizes = np.asarray(captions.sizes)[self.caption_index]

    def __len__(self):
        return len(self.caption_index)

    def __getitem__(self, index):
        return {
            "id": index,
            "source": self.features[self.image_names[index]],
            "target": self.captions[int(self.caption_index[index])],
        }

    def num_tokens(self, index):
        return self.sizes[index]

    def size(self, index):
        return self.sizes[index]

    def ordered_indices(self):
        order = np.random.permutation(len(self))
        return order[np.argsort(self.sizes[order], kind="mergesort")]

    def collater(self, samples):
        if not samples:
            return {}
        pad, eos = self.dictionary.pad(), self.dictionary.eos()
        sources = [s["source"] for s in samples]
        regions = torch.tensor([len(s) for s in sources])
        features = sources[0].new_zeros(len(sources), int(regions.max()), sources[0].size(-1))
        for row, source in enumerate(sources):
            features[row, : len(source)] = source
        targets = [s["target"] for s in samples]
        return {
            "id": torch.tensor([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": sum(len(t) for t in targets),
            "net_input": {
                # fairseq's generator and the plugin's criterions address the
                # encoder's input as src_tokens/src_lengths: here float
                # features [B, R, D] and the number of regions of each image
                "src_tokens": features,
                "src_lengths": regions,
                "prev_output_tokens": data_utils.collate_tokens(
                    targets, pad, eos, move_eos_to_beginning=True),
            },
            "target": data_utils.collate_tokens(targets, pad, eos),
        }

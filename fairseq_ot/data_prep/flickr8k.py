"""Flickr8k captions to fairseq binarized data for `--task captioning`.

Captions are Moses-tokenized (sacremoses, no escaping) and lower-cased, split
by subword-nmt BPE learned on the training captions only, and binarized by
fairseq-preprocess into a target dictionary and SPLIT.{bin,idx}; beside them
go the image of each caption (SPLIT.images.txt), the tokenized captions as
references for scoring (SPLIT.references.txt) and the path of the image
features (features.txt). Every image of the splits must have captions and
features. The output folder is written under a temporary name and renamed
when complete."""

import json
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from fairseq_ot.data.caption_dataset import FEATURES_FILE, images_file, references_file
from fairseq_ot.data.image_features import load_image_features
from fairseq_ot.data_prep.bpe import BpeApplier, learn_joint_bpe_codes
from fairseq_ot.data_prep.text_files import (
    TextFileError,
    folder_built_in_place_of,
    read_lines,
    tokenized_lines,
    write_lines,
)
from fairseq_ot.data_prep.tokenize import tokenize

SPLIT_LISTS = {"train": "Flickr_8k.trainImages.txt", "valid": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
SETTINGS_FILE = "prepared.json"


def find_captions_file(raw):
    for name in ("Flickr8k.token.txt.gz", "Flickr8k.token.txt"):
        if (raw / name).is_file():
            return raw / name
    raise FileNotFoundError(f"{raw}: no Flickr8k.token.txt[.gz]")


def read_captions(path):
    """{image name: [captions, tokenized by tokenize_caption]} from lines
    IMAGE#N<TAB>caption; the whole file is tokenized here, where a caption
    left without a token can be reported with its line number."""
    names, captions = [], []
    for number, line in enumerate(read_lines(path), 1):
        key, tab, caption = line.partition("\t")
        name, hash_sign, _ = key.partition("#")
        if not tab or not hash_sign or not name:
            raise TextFileError(f"{path}:{number}: expected IMAGE#N<TAB>caption, got {line[:80]!r}")
        names.append(name)
        captions.append(caption)
    by_image = {}
    captions = tqdm(captions, desc="tokenize captions", unit=" captions")
    for name, tokens in zip(names, tokenized_lines(path, captions, tokenize_caption)):
        by_image.setdefault(name, []).append(tokens)
    return by_image


def tokenize_caption(caption):
    """A caption Moses-tokenized (English, no escaping) and lower-cased."""
    return tokenize(caption, "en").lower()


def read_split(path, captions, features=None, limit=0):
    """The split's images, each checked to have captions and (unless
    ``features`` is None) features."""
    names = read_lines(path)
    for number, name in enumerate(names, 1):
        if name not in captions:
            raise TextFileError(f"{path}:{number}: image {name!r} has no caption in the captions file")
        if features is not None and name not in features:
            raise TextFileError(f"{path}:{number}: image {name!r} has no features in {features.path}")
    return names[:limit] if limit else names


def read_splits(raw, captions, features=None, limit=0):
    """{split: its images} from the standard split lists of ``raw``."""
    return {split: read_split(raw / name, captions, features, limit) for split, name in SPLIT_LISTS.items()}


def prepare(raw, dest, features_path, bpe_merges, limit):
    captions = read_captions(find_captions_file(raw))
    features = load_image_features(features_path)
    splits = read_splits(raw, captions, features, limit)
    with folder_built_in_place_of(dest) as work:
        text = work / "text"
        text.mkdir()
        for split, images in splits.items():
            pairs = [(name, caption) for name in images for caption in captions[name]]
            write_lines(references_file(work, split), [caption for _, caption in pairs])
            write_lines(images_file(work, split), [name for name, _ in pairs])
        print(f"learning {bpe_merges} BPE merges on the training captions", flush=True)
        codes = learn_joint_bpe_codes(read_lines(references_file(work, "train")), bpe_merges)
        (work / "bpe.codes").write_text(codes, encoding="utf-8")
        bpe = BpeApplier(codes)
        for split in splits:
            lines = read_lines(references_file(work, split))
            write_lines(text / f"{split}.bpe", [bpe(line)
                                                for line in tqdm(lines, desc=f"bpe {split}", unit=" captions")])
        subprocess.run([
            sys.executable, "-m", "fairseq_cli.preprocess", "--only-source",
            "--trainpref", text / "train.bpe", "--validpref", text / "valid.bpe",
            "--testpref", text / "test.bpe", "--destdir", work, "--workers", "1",
        ], check=True)
        (work / FEATURES_FILE).write_text(f"{Path(features_path).resolve()}\n", encoding="utf-8")
        (work / SETTINGS_FILE).write_text(json.dumps(settings(raw, features_path, bpe_merges, limit),
                                                     indent=2) + "\n", encoding="utf-8")


def settings(raw, features_path, bpe_merges, limit):
    return {"raw": str(Path(raw).resolve()), "features": str(Path(features_path).resolve()),
            "bpe_merges": bpe_merges, "max_images_per_split": limit}

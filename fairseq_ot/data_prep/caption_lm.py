"""Flickr8k captions as an unconditional language-modelling benchmark (the
real-text setting of CoT, Lu et al. 2019, and of Caccia et al. 2020's
quality-diversity comparisons), binarized for `--task language_modeling
--sample-break-mode eos` and `--task mediator_language_modeling`.

- Split by image exactly as the captioning recipe splits them (the standard
  Flickr_8k.{train,dev,test}Images.txt lists, `flickr8k.read_splits`): the
  five captions of an image stay in one split.
- Tokenized as the captioning recipe tokenizes them (`flickr8k.tokenize_caption`:
  Moses, English, no escaping, then lower-cased); words, no BPE.
- Captions of more than `max_tokens` tokens (EOS not counted) are dropped
  from every split, not truncated: a cut caption would teach the model to
  stop mid-sentence.
- The vocabulary is the words of the kept training captions that occur at
  least `min_count` times there; every other word, in every split, is
  written as fairseq's `<unk>`.

DEST holds SPLIT.txt (one caption per line, as the model sees it, `<unk>`
included: the references for BLEU and Self-BLEU), dict.txt and
SPLIT.{bin,idx} (fairseq-preprocess --only-source --srcdict), stats.json
and prepared.json (the settings, which make a second run a no-op)."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from fairseq_ot.data_prep.flickr8k import SETTINGS_FILE, find_captions_file, read_captions, read_splits
from fairseq_ot.data_prep.text_files import folder_built_in_place_of, write_lines

MIN_COUNT = 5
MAX_TOKENS = 32
UNK = "<unk>"  # fairseq's Dictionary unk_word, kept as a word in the text files
TOKENIZER = "moses-en-lowercase"
STATS_FILE = "stats.json"


def text_file(folder, split):
    """The plain-text captions of ``split``, one tokenized caption a line."""
    return Path(folder) / f"{split}.txt"


def tokenized_splits(raw):
    """{split: [token lists]} of every caption of the split's images, in the
    order of the split list and the captions file."""
    captions = read_captions(find_captions_file(raw))
    return {split: [caption.split() for name in images for caption in captions[name]]
            for split, images in read_splits(raw, captions).items()}


def drop_long(splits, max_tokens):
    """({split: captions of at most ``max_tokens`` tokens}, {split: number dropped})."""
    kept = {split: [tokens for tokens in captions if len(tokens) <= max_tokens]
            for split, captions in splits.items()}
    return kept, {split: len(splits[split]) - len(kept[split]) for split in splits}


def build_vocabulary(train, min_count):
    """[(word, count)] of the training captions' words seen at least
    ``min_count`` times, most frequent first (ties alphabetical)."""
    counts = Counter(word for tokens in train for word in tokens)
    return sorted(((word, count) for word, count in counts.items() if count >= min_count),
                  key=lambda item: (-item[1], item[0]))


def with_unknowns(captions, vocabulary):
    """The captions with every word outside ``vocabulary`` replaced by <unk>."""
    return [[word if word in vocabulary else UNK for word in tokens] for tokens in captions]


def split_stats(captions, dropped):
    """Counts of one split: captions kept and dropped, words (EOS not
    counted), the fraction of them that are <unk>, the longest caption."""
    words = sum(len(tokens) for tokens in captions)
    unknown = sum(tokens.count(UNK) for tokens in captions)
    return {"captions": len(captions), "dropped_too_long": dropped, "tokens": words,
            "unk_rate": unknown / words if words else 0.0,
            "max_length": max((len(tokens) for tokens in captions), default=0)}


def binarize(work):
    """fairseq-preprocess --only-source of the SPLIT.txt files of ``work``
    with its dict.txt, into SPLIT.{bin,idx} beside them."""
    subprocess.run([
        sys.executable, "-m", "fairseq_cli.preprocess", "--only-source",
        "--srcdict", work / "dict.txt", "--trainpref", text_file(work, "train"),
        "--validpref", text_file(work, "valid"), "--testpref", text_file(work, "test"),
        "--destdir", work, "--workers", "1",
    ], check=True, stdout=subprocess.DEVNULL)


def settings(raw, min_count, max_tokens):
    """What a prepared folder was made from, recorded in prepared.json."""
    return {"raw": str(Path(raw).resolve()), "tokenizer": TOKENIZER,
            "min_count": min_count, "max_tokens": max_tokens}


def prepare(raw, dest, min_count=MIN_COUNT, max_tokens=MAX_TOKENS):
    """Build DEST (see the module's docstring); returns its stats."""
    splits, dropped = drop_long(tokenized_splits(raw), max_tokens)
    vocabulary = build_vocabulary(splits["train"], min_count)
    known = {word for word, _ in vocabulary}
    with folder_built_in_place_of(dest) as work:
        stats = {"vocabulary": len(vocabulary), "min_count": min_count, "max_tokens": max_tokens,
                 "tokenizer": TOKENIZER}
        for split, captions in splits.items():
            captions = with_unknowns(captions, known)
            write_lines(text_file(work, split), [" ".join(tokens) for tokens in captions])
            stats[split] = split_stats(captions, dropped[split])
        write_lines(work / "dict.txt", [f"{word} {count}" for word, count in vocabulary])
        binarize(work)
        (work / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        (work / SETTINGS_FILE).write_text(json.dumps(settings(raw, min_count, max_tokens), indent=2) + "\n",
                                          encoding="utf-8")
    return stats

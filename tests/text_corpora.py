"""Generated and real raw text corpora for the text-recipe tests."""

import gzip
import random
import importlib
from pathlib import Path

import pytest

from conftest import SHARED_DATA

EN_DE = {
    "the": "der", "a": "ein", "man": "Mann", "dog": "Hund", "child": "Kind", "woman": "Frau",
    "red": "rote", "small": "kleine", "happy": "frohe", "old": "alte",
    "runs": "läuft", "sits": "sitzt", "waits": "wartet", "plays": "spielt",
    "on": "auf", "near": "bei", "under": "unter", "street": "Straße", "beach": "Strand",
    "grass": "Wiese", "bridge": "Brücke",
}


def script_main(name):
    """``main`` of scripts/NAME.py, called in-process (one fairseq import)."""
    return importlib.import_module(f"fairseq_ot.cli.{name}").main


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)


def generated_pairs(n, seed):
    """English sentences with punctuation Moses splits off, and a word-by-word
    German gloss; every line survives detokenize(tokenize(line)) unchanged."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(["the", "a"]), rng.choice(["red", "small", "happy", "old"]),
                 rng.choice(["man", "dog", "child", "woman"]), rng.choice(["runs", "sits", "waits", "plays"]),
                 rng.choice(["on", "near", "under"]), "the", rng.choice(["street", "beach", "grass", "bridge"])]
        end = rng.choice([".", "!", ", (again)."])
        english = " ".join(words) + end
        german = " ".join(EN_DE[w] for w in words) + end
        pairs.append((english[0].upper() + english[1:], german[0].upper() + german[1:]))
    return pairs


def write_generated_multi30k(folder, sizes=(300, 40, 37)):
    """Raw Multi30k-layout files (train, val, test_2016_flickr; .gz)."""
    for stem, n, seed in zip(("train", "val", "test_2016_flickr"), sizes, (1, 2, 3)):
        pairs = generated_pairs(n, seed)
        write_lines(folder / f"{stem}.en.gz", [en for en, _ in pairs])
        write_lines(folder / f"{stem}.de.gz", [de for _, de in pairs])
    return folder


def write_generated_aeslc(folder, sizes=(300, 30, 29)):
    """Raw AESLC-layout files: an e-mail of three sentences, its subject the
    first sentence's last words, and three extra references for dev/test."""
    for stem, n, seed in zip(("train", "dev", "test"), sizes, (4, 5, 6)):
        pairs = generated_pairs(3 * n, seed)
        emails = [" ".join(en for en, _ in pairs[3 * i: 3 * i + 3]) for i in range(n)]
        subjects = [" ".join(email.split()[1:4]) for email in emails]
        write_lines(folder / f"{stem}.email.gz", emails)
        write_lines(folder / f"{stem}.subject.gz", subjects)
        if stem != "train":
            for k in range(3):
                write_lines(folder / f"{stem}.ann{k}.gz",
                            [" ".join(email.split()[k: k + 3]) for email in emails])
    return folder


def real_data(name):
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (real corpora live in ../shared/data)")
    return folder


def head_of_real_corpus(source_folder, names, out_folder, n):
    """The first ``n`` lines of each named .gz file of a real corpus, as a new raw folder."""
    for name in names:
        with gzip.open(source_folder / name, "rt", encoding="utf-8") as lines:
            head = [line.rstrip("\n") for _, line in zip(range(n), lines)]
        write_lines(out_folder / name, head)
    return out_folder


def files_state(folder):
    """{relative path: (mtime_ns, bytes)} of every file under ``folder``."""
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(Path(folder).rglob("*")) if path.is_file()
    }


def prepare_generated_multi30k(root):
    """The generated Multi30k-layout corpus under ``root``, prepared by
    scripts/prepare_multi30k.py with 200 BPE merges; returns the prepared folder."""
    raw = write_generated_multi30k(root / "raw")
    script_main("prepare_multi30k")(["--raw-dir", str(raw), "--out-dir", str(root / "prepared"),
                                     "--bpe-merges", "200"])
    return root / "prepared"

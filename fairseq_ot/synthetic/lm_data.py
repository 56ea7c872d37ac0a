"""Oracle samples as a fairseq language-modelling corpus, and back.

Each sequence is one line of words `w<id>` (oracle token ids 0..V-1; the start
token 0 is an ordinary word here, it is only the oracle's first input).
Binarizing against a dictionary that lists every word in id order gives every
run the same indices, and `oracle_id_table` maps a fairseq model's indices
back to oracle ids so that its samples can be scored by the oracle."""

import re
import subprocess
import sys
from pathlib import Path

import torch

from fairseq_ot.synthetic.oracle import SEQUENCE_LENGTH

WORD_PATTERN = re.compile(r"w(\d+)")
SPLITS = ("train", "valid", "test")
# each split has its own seed so that it does not change with the others' sizes
SPLIT_SEED_OFFSETS = {"train": 0, "valid": 1, "test": 2}
NOT_AN_ORACLE_WORD = -1


def oracle_word(token_id):
    return f"w{token_id}"


def oracle_id_of_word(word):
    """The oracle id a word stands for, or None for any other symbol."""
    match = WORD_PATTERN.fullmatch(word)
    return int(match.group(1)) if match else None


def write_oracle_dictionary(path, vocab_size):
    """A fairseq dictionary file (`word count` per line) listing every oracle
    word in id order, so that --srcdict fixes index = nspecial + oracle id
    whatever the sampled data. The counts are irrelevant and all 1."""
    Path(path).write_text("".join(f"{oracle_word(i)} 1\n" for i in range(vocab_size)))


def write_sequences(path, sequences):
    """One line of words per sequence of oracle ids."""
    lines = (" ".join(oracle_word(t) for t in row) + "\n" for row in sequences.tolist())
    Path(path).write_text("".join(lines))


def read_sequences(path):
    """The oracle ids of a text file of equally long lines of words,
    LongTensor [lines, length]; a word that is no oracle word is an error."""
    rows = []
    for line in Path(path).read_text().splitlines():
        ids = [oracle_id_of_word(word) for word in line.split()]
        if None in ids:
            raise ValueError(f"{path}: not an oracle word in line {line!r}")
        rows.append(ids)
    return torch.tensor(rows, dtype=torch.long)


def sample_splits(oracle, n_train=10000, n_valid=2000, n_test=10000, seed=1,
                  length=SEQUENCE_LENGTH):
    """Independent oracle samples for each split, {split: LongTensor [n, length]}.
    The benchmark's train and test sets are 10,000 each; valid is extra."""
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    return {
        split: oracle.sample(sizes[split], length, seed=seed + SPLIT_SEED_OFFSETS[split])
        for split in SPLITS
    }


def binarize(text_dir, dictionary_path, data_bin, workers=1):
    """fairseq-preprocess --only-source of text_dir/{train,valid,test}.txt
    against the given dictionary into data_bin."""
    command = [
        # fairseq-preprocess's own module, run by this interpreter so that the
        # console script need not be on PATH
        sys.executable, "-m", "fairseq_cli.preprocess", "--only-source",
        "--srcdict", str(dictionary_path), "--destdir", str(data_bin),
        "--workers", str(workers),
    ]
    for split in SPLITS:
        command += [f"--{split}pref", str(Path(text_dir) / f"{split}.txt")]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"fairseq-preprocess failed ({result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )


def build_oracle_lm_data(oracle, out_dir, n_train=10000, n_valid=2000, n_test=10000,
                         seed=1, length=SEQUENCE_LENGTH, workers=1):
    """Sample the splits, write them under out_dir/text as {split}.txt with
    the dictionary dict.txt, and binarize them into out_dir/data-bin, the
    folder to give fairseq's language_modeling task. Returns data-bin's path."""
    out_dir = Path(out_dir)
    text_dir, data_bin = out_dir / "text", out_dir / "data-bin"
    text_dir.mkdir(parents=True, exist_ok=True)
    dictionary_path = text_dir / "dict.txt"
    write_oracle_dictionary(dictionary_path, oracle.vocab_size)
    samples = sample_splits(oracle, n_train, n_valid, n_test, seed, length)
    for split, sequences in samples.items():
        write_sequences(text_dir / f"{split}.txt", sequences)
    binarize(text_dir, dictionary_path, data_bin, workers)
    return data_bin


def oracle_id_table(dictionary):
    """LongTensor [len(dictionary)]: the oracle id of each fairseq index,
    NOT_AN_ORACLE_WORD for fairseq's special symbols (bos, pad, eos, unk)."""
    ids = [oracle_id_of_word(symbol) for symbol in dictionary.symbols]
    return torch.tensor([NOT_AN_ORACLE_WORD if i is None else i for i in ids])


def fairseq_to_oracle_ids(tokens, id_table):
    """Oracle ids of fairseq indices (any shape; strip eos and padding first).
    A special symbol is an error, never silently a word."""
    oracle_ids = id_table[torch.as_tensor(tokens, dtype=torch.long)]
    if (oracle_ids == NOT_AN_ORACLE_WORD).any():
        raise ValueError("fairseq tokens include special symbols (bos, pad, eos or unk)")
    return oracle_ids

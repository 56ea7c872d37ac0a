"""Raw parallel text files -> a prepared folder fairseq trains on.

The prepared folder ``OUT`` holds

- ``tok/SPLIT.LANG``: Moses-tokenized lines (sources truncated if asked);
- ``bpe.codes`` (joint BPE, learned on train only) and ``bpe/SPLIT.LANG``;
- ``data-bin/``: fairseq-preprocess output with one joined dictionary (so that
  source and target embeddings can be shared, which ot_seq's copy term needs);
- ``references/SPLIT.TARGET_LANG[.K]``: the raw target lines of valid and test (and extra
  references K = 1, 2, ...), what the scoring scripts compare against;
- ``prepared.json``: the inputs and options it was made from.

It is built under a temporary name next to ``OUT`` and renamed to ``OUT`` only
when complete; a second run with the same inputs and options does nothing.
"""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fairseq_ot.data_prep.bpe import BpeApplier, learn_joint_bpe_codes
from fairseq_ot.data_prep.text_files import (
    TextFileError,
    folder_built_in_place_of,
    read_aligned,
    tokenized_lines,
    write_lines,
)
from fairseq_ot.data_prep.tokenize import tokenize

STAMP = "prepared.json"


@dataclass(frozen=True)
class SplitFiles:
    """The raw files of one split; ``name`` is fairseq's (train, valid, test)."""

    name: str
    source: Path
    target: Path
    extra_references: tuple = ()


@dataclass(frozen=True)
class PrepOptions:
    """How the text is processed (recorded in prepared.json).

    ``source_lang``/``target_lang`` are the file suffixes fairseq sees,
    ``moses_lang`` maps each to the sacremoses language; ``pretokenized``
    skips Moses (input already tokenized, e.g. Gigaword)."""

    source_lang: str
    target_lang: str
    moses_source: str
    moses_target: str
    bpe_merges: int
    max_source_tokens: int = 0  # 0: no truncation
    pretokenized: bool = False
    held_out: int = 0  # >0: valid and test are the last 2 x held_out train pairs


def _progress(lines, description):
    return tqdm(lines, desc=description, unit=" lines", mininterval=1.0, file=sys.stderr, leave=False)


def _say(message):
    print(message, file=sys.stderr, flush=True)


def _fingerprint(splits, options):
    def describe(path):
        stat = Path(path).stat()
        return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]

    return {
        "format": 1,
        "options": options.__dict__,
        "inputs": {
            split.name: [describe(p) for p in (split.source, split.target, *split.extra_references)]
            for split in splits
        },
    }


def is_up_to_date(out_dir, splits, options):
    stamp = Path(out_dir) / STAMP
    if not stamp.is_file():
        return False
    return json.loads(stamp.read_text()).get("fingerprint") == _fingerprint(splits, options)


def _read_splits(splits, options):
    """{split name: (tokenized sources, tokenized targets, raw targets, [raw
    extra references])}, every file read, tokenized and checked before
    anything is written, each file whole (so that errors give its line
    numbers); with ``held_out`` the train split also yields valid and test."""
    source_tokens = _tokenizer(options.moses_source, options, options.max_source_tokens)
    target_tokens = _tokenizer(options.moses_target, options)
    texts = {}
    for split in splits:
        source, target, *extra = read_aligned([split.source, split.target, *split.extra_references])
        tokenized_source = _tokenized(split.source, source, source_tokens)
        tokenized_target = _tokenized(split.target, target, target_tokens)
        for path, reference in zip(split.extra_references, extra):
            # checked only: extra references are kept raw, and scored as
            # text like the targets
            _tokenized(path, reference, target_tokens)
        texts[split.name] = (tokenized_source, tokenized_target, target, extra)
    if options.held_out:
        tokenized_source, tokenized_target, target, _ = texts.pop("train")
        n = options.held_out
        if len(target) <= 2 * n:
            raise TextFileError(f"--held-out {n} leaves no training pair out of {len(target)}")
        for name, part in (("train", slice(None, -2 * n)), ("valid", slice(-2 * n, -n)),
                           ("test", slice(-n, None))):
            texts[name] = (tokenized_source[part], tokenized_target[part], target[part], [])
    return texts


def _tokenizer(lang, options, max_tokens=0):
    """The function from a raw line of language ``lang`` to its tokens, joined
    by spaces, the first ``max_tokens`` of them (0: all)."""
    def tokenize_line(line):
        if max_tokens:
            # Moses never merges whitespace-separated words, so the first
            # max_tokens tokens come from the first max_tokens words: cutting
            # the raw line first only saves time on very long e-mails
            line = " ".join(line.split()[:max_tokens])
        tokens = line.split() if options.pretokenized else tokenize(line, lang).split()
        return " ".join(tokens[:max_tokens] if max_tokens else tokens)

    return tokenize_line


def _tokenized(path, lines, tokenize_line):
    return tokenized_lines(path, _progress(lines, f"tokenize {Path(path).name}"), tokenize_line)


def _binarize(work, options, split_names):
    command = [
        sys.executable, "-m", "fairseq_cli.preprocess",
        "--source-lang", options.source_lang, "--target-lang", options.target_lang,
        "--destdir", str(work / "data-bin"), "--joined-dictionary", "--workers", "1",
    ]
    for name in split_names:
        command += [f"--{'train' if name == 'train' else name}pref", str(work / "bpe" / name)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"fairseq-preprocess failed:\n{(result.stdout + result.stderr)[-3000:]}")


def _build(work, splits, options):
    src, tgt = options.source_lang, options.target_lang
    _say("reading, tokenizing and checking raw files")
    texts = _read_splits(splits, options)
    tokenized = {}
    for name, (tokenized_sources, tokenized_targets, targets, extra) in texts.items():
        tokenized[name] = (tokenized_sources, tokenized_targets)
        for lang, lines in zip((src, tgt), tokenized[name]):
            write_lines(work / "tok" / f"{name}.{lang}", lines)
        if name != "train":
            write_lines(work / "references" / f"{name}.{tgt}", targets)
            for k, reference in enumerate(extra, start=1):
                write_lines(work / "references" / f"{name}.{tgt}.{k}", reference)

    _say(f"learning {options.bpe_merges} joint BPE merges on train")
    codes = learn_joint_bpe_codes(tokenized["train"][0] + tokenized["train"][1], options.bpe_merges)
    (work / "bpe.codes").write_text(codes, encoding="utf-8")
    segment = BpeApplier(codes)
    for name, sides in tokenized.items():
        for lang, lines in zip((src, tgt), sides):
            bpe_lines = [segment(line) for line in _progress(lines, f"bpe {name}.{lang}")]
            write_lines(work / "bpe" / f"{name}.{lang}", bpe_lines)

    _say("binarizing with fairseq-preprocess")
    _binarize(work, options, [n for n in ("train", "valid", "test") if n in texts])
    return {
        name: {"pairs": len(targets), "extra_references": len(extra)}
        for name, (_, _, targets, extra) in texts.items()
    }


def prepare(out_dir, splits, options):
    """Build the prepared folder ``out_dir`` from ``splits`` (SplitFiles);
    returns False when it was already up to date, True when (re)built."""
    out_dir = Path(out_dir)
    if is_up_to_date(out_dir, splits, options):
        _say(f"{out_dir} is up to date, nothing to do")
        return False
    if out_dir.exists() and not (out_dir / STAMP).is_file() and any(out_dir.iterdir()):
        # replacing it would delete files this pipeline did not make
        raise FileExistsError(f"{out_dir} exists and is not a prepared folder (no {STAMP}); choose another --out-dir")
    with folder_built_in_place_of(out_dir) as work:
        counts = _build(work, splits, options)
        stamp = {"fingerprint": _fingerprint(splits, options), "splits": counts}
        (work / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    _say(f"prepared {out_dir}: " + ", ".join(f"{n} {c['pairs']} pairs" for n, c in counts.items()))
    return True


def read_prepared(out_dir):
    """The options and split sizes recorded in a prepared folder."""
    stamp = json.loads((Path(out_dir) / STAMP).read_text())
    return stamp["fingerprint"]["options"], stamp["splits"]

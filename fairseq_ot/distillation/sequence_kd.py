"""Sequence-level knowledge distillation data (Kim & Rush 2016, "Sequence-Level
Knowledge Distillation"): a prepared folder (fairseq_ot.data_prep.pipeline)
whose training targets are a teacher's beam-search outputs for the training
sources. Plain MLE on it is sequence-level KD; `--criterion distill` on it
combines the two.

The new folder keeps everything else of the original: its dictionaries, BPE
codes, sources, and valid and test splits with their references, so that
scores stay comparable. Beam search runs in chunks of sentences, each
written to its own file as soon as it is done (by default in `.NAME.chunks/`
beside the output): a killed run resumes at the first missing chunk, and
processes started with `shard=(k, n)` share the chunks (chunk i is shard
i mod n's), the last to finish assembling the folder. The chunk folder records
the teacher's fingerprint and the search settings, so chunks of another
teacher or beam are never mixed in."""

import fcntl
import json
import math
from argparse import Namespace
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from fairseq import checkpoint_utils, utils

from fairseq_ot.data_prep.pipeline import STAMP, read_prepared
from fairseq_ot.data_prep.text_files import folder_built_in_place_of, read_lines, write_lines
from fairseq_ot.errors import FlagError
from fairseq_ot.evaluation.files import write_atomically
from fairseq_ot.models.teacher import file_sha256

# what is copied from the original prepared folder (train targets replaced)
COPIED = ("tok", "references", "bpe.codes")


def chunk_folder(out_dir):
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.chunks"


def build_sequence_kd(prepared, teacher, out_dir, beam=5, lenpen=1.0, max_len_a=1.2, max_len_b=10,
                      batch_size=64, chunk_size=1000, cuda=False, chunks_dir=None, shard=(0, 1), say=print):
    """Write `out_dir`, `prepared` with the teacher's beam outputs as train
    targets.

    Parameters: `chunks_dir` holds the translated chunks (default
    `.OUT.chunks/` beside `out_dir`, removed once the folder is written; a
    folder given here is kept, as the record of the translation); `shard`
    (k, n) translates only the chunks i with i mod n == k.

    Returns the number of training pairs, or None when chunks of other shards
    are still missing (the folder is then not written yet). One-line
    FlagError on a bad input (a missing or unprepared folder, an output that
    exists, a teacher that cannot translate this data, chunks made with
    another teacher or other settings)."""
    prepared, out_dir = Path(prepared), Path(out_dir)
    if not (prepared / STAMP).is_file():
        raise FlagError(f"{prepared}: not a prepared folder (no {STAMP})")
    if out_dir.exists():
        raise FlagError(f"{out_dir} exists: choose another output folder")
    if not Path(teacher).is_file():
        raise FlagError(f"{teacher}: no such teacher checkpoint")
    shard_index, shards = shard
    if not 0 <= shard_index < shards:
        raise FlagError(f"shard {shard_index}/{shards}: needs 0 <= k < n")
    options, _ = read_prepared(prepared)
    src, tgt = options["source_lang"], options["target_lang"]
    data_bin = prepared / "data-bin"
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(teacher)], arg_overrides={"data": str(data_bin)})
    model = models[0].eval()
    if cuda:
        model.cuda()
    task.load_dataset("train")
    dataset = task.dataset("train")
    generator = task.build_generator(models, _generation_args(beam, lenpen, max_len_a, max_len_b))

    settings = {"teacher_sha256": file_sha256(teacher), "beam": beam, "lenpen": lenpen,
                "max_len_a": max_len_a, "max_len_b": max_len_b, "chunk_size": chunk_size,
                "sentences": len(dataset)}
    keep_chunks = chunks_dir is not None
    chunks = Path(chunks_dir) if keep_chunks else chunk_folder(out_dir)
    _claim_chunk_folder(chunks, settings)
    total = len(dataset)
    count = math.ceil(total / chunk_size)

    def chunk_ids(index):
        return range(index * chunk_size, min(total, (index + 1) * chunk_size))

    def done(index):
        path = chunks / f"{index:05d}.txt"
        return path.is_file() and len(read_lines(path, allow_empty=True)) == len(chunk_ids(index))

    mine = [index for index in range(count) if index % shards == shard_index and not done(index)]
    started, translated = time.monotonic(), 0
    for position, index in enumerate(mine):
        ids = chunk_ids(index)
        lines = _translate(task, model, generator, dataset, ids, batch_size, cuda)
        write_atomically(chunks / f"{index:05d}.txt", "".join(line + "\n" for line in lines))
        translated += len(ids)
        rate = translated / (time.monotonic() - started)
        left = sum(len(chunk_ids(later)) for later in mine[position + 1:])
        say(f"chunk {index + 1}/{count}: {translated} sentences of this process, {rate:.1f} sentences/s, "
            f"about {left / rate / 60:.0f} min left")
    missing = [index for index in range(count) if not done(index)]
    if missing:
        say(f"shard {shard_index}/{shards} done; {len(missing)} chunks of other shards missing "
            f"(first {missing[0]}): {out_dir} is written by the process that completes the last one "
            f"(or by this command run again)")
        return None

    with open(chunks / "assembling.lock", "w") as lock:
        try:
            # shards finishing together: one assembles, and the lock dies with its process
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"shard {shard_index}/{shards} done; another process is writing {out_dir}")
            return None
        if out_dir.exists():
            say(f"shard {shard_index}/{shards} done; another process has written {out_dir}")
            return None
        pairs = _assemble(prepared, teacher, out_dir, chunks, count, settings, src, tgt)
    if not keep_chunks:
        shutil.rmtree(chunks)
    say(f"wrote {out_dir}: {pairs} training pairs with the teacher's beam-{beam} outputs as targets")
    return pairs


def _assemble(prepared, teacher, out_dir, chunks, count, settings, src, tgt):
    """Write `out_dir` from the complete chunks (a chunk per `count`); returns
    the number of training pairs."""
    data_bin = prepared / "data-bin"
    hypotheses = [line for index in range(count)
                  for line in read_lines(chunks / f"{index:05d}.txt", allow_empty=True)]
    empty = sum(1 for line in hypotheses if not line.strip())
    with folder_built_in_place_of(out_dir) as work:
        for name in COPIED:
            source = prepared / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, work / name)
        (work / "bpe").mkdir()
        for path in (prepared / "bpe").iterdir():
            if path.name != f"train.{tgt}":
                shutil.copy2(path, work / "bpe" / path.name)
        write_lines(work / "bpe" / f"train.{tgt}", hypotheses)
        _binarize_train(work, data_bin, src, tgt)
        stamp = json.loads((prepared / STAMP).read_text())
        stamp["sequence_kd"] = {
            "original": str(prepared.resolve()), "teacher": str(Path(teacher).resolve()),
            **{key: settings[key] for key in ("teacher_sha256", "beam", "lenpen", "max_len_a", "max_len_b")},
            "empty_targets": empty,
        }
        (work / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    return len(hypotheses)


def _claim_chunk_folder(chunks, settings):
    """Create `chunks` recording `settings`, or check that an existing one
    was made with the same teacher and search settings."""
    record = chunks / "settings.json"
    if record.is_file():
        made = json.loads(record.read_text())
        if made != settings:
            changed = ", ".join(f"{key} {made.get(key)} -> {value}" for key, value in settings.items()
                                if made.get(key) != value)
            raise FlagError(f"{chunks} holds chunks made with other settings ({changed}): "
                            f"remove it or choose another chunk folder")
        return
    write_atomically(record, json.dumps(settings, indent=2) + "\n")


def _generation_args(beam, lenpen, max_len_a, max_len_b):
    return Namespace(beam=beam, lenpen=lenpen, max_len_a=max_len_a, max_len_b=max_len_b,
                     min_len=1, unnormalized=False, unkpen=0, temperature=1.0,
                     match_source_len=False, no_repeat_ngram_size=0, sampling=False)


@torch.no_grad()
def _translate(task, model, generator, dataset, ids, batch_size, cuda):
    """The best beam hypothesis (BPE pieces, as the train targets are) of
    each sentence of `ids`, in that order. Batches of similar source length."""
    ordered = sorted(ids, key=lambda i: dataset.src_sizes[i])
    found = {}
    for start in range(0, len(ordered), batch_size):
        sample = dataset.collater([dataset[i] for i in ordered[start:start + batch_size]])
        if cuda:
            sample = utils.move_to_cuda(sample)
        hypotheses = task.inference_step(generator, [model], sample)
        for sentence, best in zip(sample["id"].tolist(), hypotheses):
            found[sentence] = task.target_dictionary.string(best[0]["tokens"].int().cpu())
    return [found[i] for i in ids]


def _binarize_train(work, data_bin, src, tgt):
    """fairseq-preprocess of the new train split with the original
    dictionaries; the valid and test binaries copied as they are."""
    binarized = work / "data-bin"
    command = [sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", src, "--target-lang", tgt,
               "--trainpref", str(work / "bpe" / "train"), "--destdir", str(binarized),
               "--srcdict", str(data_bin / f"dict.{src}.txt"), "--tgtdict", str(data_bin / f"dict.{tgt}.txt"),
               "--workers", "1"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"fairseq-preprocess failed:\n{(result.stdout + result.stderr)[-3000:]}")
    for path in data_bin.iterdir():
        if not path.name.startswith("train.") and not (binarized / path.name).exists():
            shutil.copy2(path, binarized / path.name)

"""One JSON file of scores per evaluated run, collected into tables by
scripts/collect_results.py.

A run folder holds the fairseq-train JSON log ``train.log``, ``checkpoints/``
and one ``scores_SPLIT.json`` per scored split with the fields written here."""

import json
from numbers import Real
from pathlib import Path

from fairseq_ot.evaluation.files import UnreadableFileError, write_atomically

# what write_scores records, and collect_results reads
FIELDS = ("task", "recipe", "criterion", "split", "metrics", "hypotheses", "command")


def write_scores(run_dir, split, *, task, recipe, criterion, metrics, hypotheses, command):
    """Record ``metrics`` (name -> float) of ``run_dir`` on ``split``."""
    record = {
        "task": task,
        "recipe": recipe,
        "criterion": criterion,
        "split": split,
        "metrics": {name: float(value) for name, value in metrics.items()},
        "hypotheses": int(hypotheses),
        "command": command,
    }
    path = Path(run_dir) / f"scores_{split}.json"
    write_atomically(path, json.dumps(record, indent=2) + "\n")
    return path


def add_record_arguments(parser, recipe=""):
    """The flags of a scoring command line that record its scores in a run folder."""
    parser.add_argument("--run-dir", help="write RUN_DIR/scores_SPLIT.json")
    parser.add_argument("--recipe", default=recipe, help="recorded in scores_SPLIT.json")
    parser.add_argument("--criterion", default="", help="recorded in scores_SPLIT.json")


def read_scores(path):
    """The record of a scores_SPLIT.json; UnreadableFileError naming the
    file when it cannot be read, is not JSON (a copy cut short) or lacks a
    field of FIELDS."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableFileError(f"{path}: not a readable scores file: {error}") from None
    if not isinstance(record, dict):
        raise UnreadableFileError(f"{path}: not a scores file: a JSON {type(record).__name__}, not an object")
    missing = [name for name in FIELDS if name not in record]
    if missing:
        raise UnreadableFileError(f"{path}: not a scores file: no {', '.join(missing)}")
    metrics = record["metrics"]
    if not isinstance(metrics, dict) or not all(isinstance(value, Real) for value in metrics.values()):
        raise UnreadableFileError(f"{path}: not a scores file: its metrics are not names with numbers")
    return record

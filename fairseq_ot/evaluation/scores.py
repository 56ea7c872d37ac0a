"""One JSON file of scores per evaluated run, collected into tables by
scripts/collect_results.py.

A run folder holds the fairseq-train JSON log ``train.log``, ``checkpoints/``
and one ``scores_SPLIT.json`` per scored split with the fields written here."""

import json
from pathlib import Path

from fairseq_ot.evaluation.files import write_atomically


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
    return json.loads(Path(path).read_text())

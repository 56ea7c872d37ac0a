#!/usr/bin/env python
"""Collect the scores of every run folder into markdown tables, one per task
and scored split: a row per run (criterion, and recipe when the task has
several), a column per metric, the difference to the MLE run
(label_smoothed_cross_entropy) of the same recipe, the hypothesis count, the
updates reached and the seconds spent in training steps. Run folders without
a scores_*.json are listed as unfinished.

    python scripts/collect_results.py RUN_DIR_OR_PARENT... [--out results.md]

A run folder is one holding train.log (fairseq-train --log-format json
--log-file) or scores_SPLIT.json (fairseq_ot.evaluation.scores); a parent is
searched for run folders at any depth.
"""

import argparse
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev


from fairseq_ot.evaluation.files import write_atomically
from fairseq_ot.evaluation.scores import read_scores
from fairseq_ot.evaluation.train_log import read_train_log

MLE = "label_smoothed_cross_entropy"
TRAIN_LOG = "train.log"
SCORES = "scores_*.json"
MISSING = "—"
LEGEND = (
    "train s: seconds in training steps, fairseq's end-of-epoch `train_wall` of "
    "train.log summed over epochs (validation, checkpoint saving and start-up "
    "excluded; fairseq rounds it to whole seconds per epoch)."
)
SPREAD_NOTE = "mean ± sample standard deviation (min–max) over their runs."


@dataclass
class Run:
    name: str
    scores: list  # one record per scored split
    num_updates: object  # int, or None without training statistics
    train_seconds: object  # float, or None without an end-of-epoch line


def is_run_dir(path):
    return (path / TRAIN_LOG).is_file() or any(path.glob(SCORES))


def run_dirs(root):
    """(name, folder) of the run folders given by one command-line argument."""
    if not root.is_dir():
        raise SystemExit(f"error: {root} is not a folder")
    if is_run_dir(root):
        return [(root.name, root)]
    found = sorted(path for path in root.rglob("*") if path.is_dir() and is_run_dir(path))
    return [(str(path.relative_to(root)), path) for path in found]


def read_run(name, path):
    log = read_train_log(path / TRAIN_LOG) if (path / TRAIN_LOG).is_file() else None
    return Run(
        name=name,
        scores=[read_scores(scores) for scores in sorted(path.glob(SCORES))],
        num_updates=log.num_updates if log else None,
        train_seconds=log.train_seconds if log else None,
    )


def find_runs(roots):
    runs, seen = [], set()
    for root in roots:
        for name, path in run_dirs(Path(root)):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                runs.append(read_run(name, path))
    if not runs:
        raise SystemExit(f"error: no run folder ({TRAIN_LOG} or {SCORES}) in {' '.join(map(str, roots))}")
    return runs


def markdown_table(columns, rows):
    """``columns``: (title, right-aligned) pairs."""
    lines = ["| " + " | ".join(title for title, _ in columns) + " |"]
    lines.append("|" + "|".join("---:" if right else "---" for _, right in columns) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def decimals(values):
    """Two decimals for scores on a 0-100 scale, four for those below 1."""
    return 2 if max(abs(v) for v in values) >= 1 else 4


def metric_places(entries):
    """The metrics of a table's records in order of appearance, and the
    decimals each is printed with."""
    metrics = list(dict.fromkeys(name for _, record in entries for name in record["metrics"]))
    places = {name: decimals([r["metrics"][name] for _, r in entries if name in r["metrics"]]) for name in metrics}
    return metrics, places


def or_missing(value, fmt):
    return MISSING if value is None else format(value, fmt)


def metrics_by_criterion(entries):
    """(recipe, criterion) -> the metrics records of its runs, sorted by key."""
    groups = {}
    for _, record in entries:
        groups.setdefault((record["recipe"], record["criterion"]), []).append(record["metrics"])
    return dict(sorted(groups.items()))


def mle_metrics(entries):
    """recipe -> the metrics records of that recipe's MLE runs."""
    return {recipe: runs for (recipe, criterion), runs in metrics_by_criterion(entries).items() if criterion == MLE}


def baseline_note(mle):
    averaged = [f"{recipe} ({len(runs)} runs)" for recipe, runs in sorted(mle.items()) if len(runs) > 1]
    note = f"Δ vs MLE: difference to the `{MLE}` run of the same recipe"
    return note + (f", to the mean of its runs for {', '.join(averaged)}." if averaged else ".")


def task_table(entries, mle):
    """Markdown table of the (run, scores record) pairs of one task and split."""
    entries = sorted(entries, key=lambda e: (e[1]["recipe"], e[1]["criterion"] != MLE, e[1]["criterion"], e[0].name))
    metrics, places = metric_places(entries)
    baselines = {
        recipe: {name: mean(m[name] for m in runs if name in m) for name in metrics if any(name in m for m in runs)}
        for recipe, runs in mle.items()
    }
    several_recipes = len({record["recipe"] for _, record in entries}) > 1

    columns = [("criterion", False)] + ([("recipe", False)] if several_recipes else [])
    for name in metrics:
        columns += [(name, True)] + ([(f"Δ {name} vs MLE", True)] if mle else [])
    columns += [("hypotheses", True), ("updates", True), ("train s", True), ("run", False)]
    rows = []
    for run, record in entries:
        row = [record["criterion"]] + ([record["recipe"]] if several_recipes else [])
        baseline = {} if record["criterion"] == MLE else baselines.get(record["recipe"], {})
        for name in metrics:
            value = record["metrics"].get(name)
            row.append(or_missing(value, f".{places[name]}f"))
            if mle:
                delta = value - baseline[name] if value is not None and name in baseline else None
                row.append(or_missing(delta, f"+.{places[name]}f"))
        row += [
            str(record["hypotheses"]), or_missing(run.num_updates, "d"),
            or_missing(run.train_seconds, ".0f"), run.name,
        ]
        rows.append(row)
    return markdown_table(columns, rows)


def spread_table(entries):
    """Markdown table of the criteria run more than once (seeds, machines) in
    one recipe, or None: per metric the mean, the sample standard deviation
    and the range over those runs."""
    repeated = {key: runs for key, runs in metrics_by_criterion(entries).items() if len(runs) > 1}
    if not repeated:
        return None
    metrics, places = metric_places(entries)
    columns = [("criterion", False), ("recipe", False), ("runs", True)] + [(name, True) for name in metrics]
    rows = []
    for (recipe, criterion), runs in repeated.items():
        row = [criterion, recipe, str(len(runs))]
        for name in metrics:
            values = [m[name] for m in runs if name in m]
            if len(values) < 2:
                row.append(MISSING)
                continue
            fmt = f".{places[name]}f"
            row.append(f"{mean(values):{fmt}} ± {stdev(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})")
        rows.append(row)
    return markdown_table(columns, rows)


def results_markdown(runs):
    by_table = {}
    for run in runs:
        for record in run.scores:
            by_table.setdefault((record["task"], record["split"]), []).append((run, record))
    sections = []
    for (task, split), entries in sorted(by_table.items()):
        mle = mle_metrics(entries)
        notes = LEGEND + (" " + baseline_note(mle) if mle else "")
        sections.append(f"### {task}, {split} split\n\n{notes}\n\n{task_table(entries, mle)}")
        spread = spread_table(entries)
        if spread:
            sections.append(f"Criteria run more than once: {SPREAD_NOTE}\n\n{spread}")
    unfinished = [run for run in runs if not run.scores]
    if unfinished:
        rows = [[run.name, or_missing(run.num_updates, "d"), or_missing(run.train_seconds, ".0f")] for run in unfinished]
        table = markdown_table([("run", False), ("updates", True), ("train s", True)], rows)
        sections.append(f"### Unfinished runs (no {SCORES})\n\n{table}")
    return "\n\n".join(sections) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, metavar="RUN_DIR_OR_PARENT")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    markdown = results_markdown(find_runs(args.roots))
    print(markdown, end="")
    if args.out:
        write_atomically(args.out, markdown)


if __name__ == "__main__":
    main()

"""The results tables of `fairseq-ot-collect-results`
(fairseq_ot/cli/collect_results.py): run folders found and read
(`find_runs`), then one markdown table per task and scored split
(`results_markdown`): a row per run, a column per metric, the difference to
the MLE run of the same recipe and seed with its 95% paired bootstrap
interval (paired_runs.py), the configurations run more than once with their
spread, and the unfinished runs."""

import sys
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

from fairseq_ot.errors import FlagError
from fairseq_ot.evaluation.bootstrap import format_interval
from fairseq_ot.evaluation.paired_runs import (
    BootstrapSettings,
    NoIntervalError,
    configuration_name,
    different_test_sets,
    paired_comparison,
    run_seed,
)
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
SPREAD_NOTE = ("mean ± sample standard deviation (min–max) over their runs; a configuration is "
               "the runs' name without its seed.")
INTERVAL_NOTE = (
    "Δ vs MLE [95% CI]: the run's score minus that of the `{mle}` run of the same "
    "recipe and seed, and the 95% paired bootstrap interval of that difference over "
    "the test items ({resamples} resampled test sets, seed {seed}, both runs scored on "
    "each; BLEU's as `sacrebleu --paired-bs`)."
)


@dataclass
class Run:
    name: str
    path: Path
    scores: list  # one record per scored split
    num_updates: object  # int, or None without training statistics
    train_seconds: object  # float, or None without an end-of-epoch line
    seed: object  # int, or None where neither train.log, the scores' command nor the name tells


class Notes:
    """The numbered notes under a table, each text once."""

    def __init__(self):
        self.texts = []

    def number(self, text):
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1

    def markdown(self):
        return "\n".join(f"{number}. {text}" for number, text in enumerate(self.texts, start=1))


def is_run_dir(path):
    return (path / TRAIN_LOG).is_file() or any(path.glob(SCORES))


def run_dirs(root):
    """(name, folder) of the run folders given by one command-line argument."""
    if not root.is_dir():
        raise FlagError(f"{root} is not a folder")
    if is_run_dir(root):
        return [(root.name, root)]
    found = sorted(path for path in root.rglob("*") if path.is_dir() and is_run_dir(path))
    return [(str(path.relative_to(root)), path) for path in found]


def read_run(name, path):
    log = read_train_log(path / TRAIN_LOG) if (path / TRAIN_LOG).is_file() else None
    scores = [read_scores(scores) for scores in sorted(path.glob(SCORES))]
    return Run(
        name=name,
        path=path,
        scores=scores,
        num_updates=log.num_updates if log else None,
        train_seconds=log.train_seconds if log else None,
        seed=run_seed(name, log.seed if log else None, [record["command"] for record in scores]),
    )


def find_runs(roots):
    runs, seen = [], set()
    for root in roots:
        for name, path in run_dirs(Path(root)):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                runs.append(read_run(name, path))
    if not runs:
        raise FlagError(f"no run folder ({TRAIN_LOG} or {SCORES}) in {' '.join(map(str, roots))}")
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


def metrics_by_configuration(entries):
    """(recipe, criterion, configuration) -> the metrics records of its runs,
    sorted by key; the configuration is the run's name without its seed, so
    two set-ups of one criterion (cot with a copied or a random mediator)
    stay apart."""
    groups = {}
    for run, record in entries:
        key = (record["recipe"], record["criterion"], configuration_name(run.name))
        groups.setdefault(key, []).append(record["metrics"])
    return dict(sorted(groups.items()))


def mle_runs(entries):
    """recipe -> the (run, record) pairs of that recipe's MLE runs."""
    controls = {}
    for run, record in entries:
        if record["criterion"] == MLE:
            controls.setdefault(record["recipe"], []).append((run, record))
    return controls


def seed_name(seed):
    return "unknown" if seed is None else str(seed)


def baseline(run, record, controls):
    """The MLE (run, record) pairs a run is compared with, and why there is
    no interval (None for the one MLE run of its seed)."""
    same_seed = [(control, r) for control, r in controls if control.seed == run.seed]
    where = f"recipe {record['recipe']} with seed {seed_name(run.seed)}"
    if len(same_seed) == 1:
        return same_seed, None
    if same_seed:
        return same_seed, f"{len(same_seed)} `{MLE}` runs of {where}: difference to their mean, no interval."
    seeds = ", ".join(sorted({seed_name(control.seed) for control, _ in controls}))
    return controls, (f"no `{MLE}` run of {where}: difference to the mean of the recipe's "
                      f"{len(controls)} (seeds {seeds}), no interval.")


def paired_intervals(run, record, control, control_record, settings):
    """{metric: PairedBootstrap} of a run against its control, and
    {metric: why it has none} for the other metrics of the run."""
    print(f"paired bootstrap: {run.name} against {control.name} ({record['task']}, {record['split']})",
          file=sys.stderr)
    try:
        comparison = paired_comparison((run.path, record), (control.path, control_record), settings)
    except NoIntervalError as error:
        return {}, dict.fromkeys(record["metrics"], f"no interval against {control.name}: {error}.")
    reasons = {name: f"no interval for {name} against {control.name}: {why}."
               for name, why in comparison.missing.items()}
    return comparison.intervals, reasons


def other_test_set(record, compared_with):
    """Why ``record`` is not comparable with the (run, record) pairs
    ``compared_with``, or None when all were scored on its test set."""
    for control, control_record in compared_with:
        difference = different_test_sets(record, control_record)
        if difference:
            return f"no difference to {control.name}: {difference}."
    return None


def delta_cells(run, record, controls, places, settings, notes, found):
    """The "Δ vs MLE [95% CI]" cell of each metric of one row; the run's
    intervals, where it has any, appended to ``found`` as (run name,
    criterion, {metric: PairedBootstrap})."""
    if record["criterion"] == MLE or not controls:
        return [MISSING] * len(places)
    compared_with, reason = baseline(run, record, controls)
    incomparable = other_test_set(record, compared_with)
    if incomparable:
        note = f"{MISSING} (note {notes.number(incomparable)})"
        return [note if name in record["metrics"] else MISSING for name in places]
    if reason is None:
        intervals, reasons = paired_intervals(run, record, *compared_with[0], settings)
        if intervals:
            found.append((run.name, record["criterion"], intervals))
    else:
        intervals, reasons = {}, dict.fromkeys(record["metrics"], reason)
    cells = []
    for name, digits in places.items():
        value = record["metrics"].get(name)
        base = [r["metrics"][name] for _, r in compared_with if name in r["metrics"]]
        if name in intervals:
            cells.append(format_interval(intervals[name].difference, digits))
        elif value is None or not base:
            cells.append(MISSING)
        else:
            cells.append(f"{value - mean(base):+.{digits}f} (no CI, note {notes.number(reasons[name])})")
    return cells


def task_table(entries, settings):
    """Markdown table of the (run, scores record) pairs of one task and
    split, its notes and the intervals of its rows (see delta_cells)."""
    entries = sorted(entries, key=lambda e: (
        e[1]["recipe"], e[1]["criterion"] != MLE, e[1]["criterion"], e[0].seed is None, e[0].seed or 0, e[0].name))
    metrics, places = metric_places(entries)
    controls = mle_runs(entries)
    several_recipes = len({record["recipe"] for _, record in entries}) > 1

    columns = [("criterion", False)] + ([("recipe", False)] if several_recipes else []) + [("seed", True)]
    for name in metrics:
        columns += [(name, True)] + ([(f"Δ {name} vs MLE [95% CI]", True)] if controls else [])
    columns += [("hypotheses", True), ("updates", True), ("train s", True), ("run", False)]
    notes, rows, found = Notes(), [], []
    for run, record in entries:
        row = [record["criterion"]] + ([record["recipe"]] if several_recipes else []) + [or_missing(run.seed, "d")]
        deltas = delta_cells(run, record, controls.get(record["recipe"], []), places, settings, notes, found)
        for name, delta in zip(metrics, deltas):
            row.append(or_missing(record["metrics"].get(name), f".{places[name]}f"))
            row += [delta] if controls else []
        row += [
            str(record["hypotheses"]), or_missing(run.num_updates, "d"),
            or_missing(run.train_seconds, ".0f"), run.name,
        ]
        rows.append(row)
    return markdown_table(columns, rows), notes, found


def spread_table(entries):
    """Markdown table of the configurations run more than once (seeds,
    machines) in one recipe, or None: per metric the mean, the sample
    standard deviation and the range over those runs."""
    repeated = {key: runs for key, runs in metrics_by_configuration(entries).items() if len(runs) > 1}
    if not repeated:
        return None
    metrics, places = metric_places(entries)
    columns = ([("criterion", False), ("configuration", False), ("recipe", False), ("runs", True)]
               + [(name, True) for name in metrics])
    rows = []
    for (recipe, criterion, configuration), runs in repeated.items():
        row = [criterion, configuration, recipe, str(len(runs))]
        for name in metrics:
            values = [m[name] for m in runs if name in m]
            if len(values) < 2:
                row.append(MISSING)
                continue
            fmt = f".{places[name]}f"
            row.append(f"{mean(values):{fmt}} ± {stdev(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})")
        rows.append(row)
    return markdown_table(columns, rows)


def interval_note(settings):
    return INTERVAL_NOTE.format(mle=MLE, resamples=settings.n_resamples, seed=settings.seed)


def results_markdown(runs, settings=BootstrapSettings()):
    return collected_results(runs, settings)[0]


def collected_results(runs, settings=BootstrapSettings()):
    """The markdown of the runs' tables, and {(task, split): the intervals
    of the rows, in table order (see delta_cells)}."""
    by_table, intervals = {}, {}
    for run in runs:
        for record in run.scores:
            by_table.setdefault((record["task"], record["split"]), []).append((run, record))
    sections = []
    for (task, split), entries in sorted(by_table.items()):
        table, notes, intervals[task, split] = task_table(entries, settings)
        legend = LEGEND + (" " + interval_note(settings) if mle_runs(entries) else "")
        sections.append(f"### {task}, {split} split\n\n{legend}\n\n{table}")
        if notes.texts:
            sections.append(f"Notes:\n\n{notes.markdown()}")
        spread = spread_table(entries)
        if spread:
            sections.append(f"Configurations run more than once: {SPREAD_NOTE}\n\n{spread}")
    unfinished = [run for run in runs if not run.scores]
    if unfinished:
        rows = [[run.name, or_missing(run.num_updates, "d"), or_missing(run.train_seconds, ".0f")] for run in unfinished]
        table = markdown_table([("run", False), ("updates", True), ("train s", True)], rows)
        sections.append(f"### Unfinished runs (no {SCORES})\n\n{table}")
    return "\n\n".join(sections) + "\n", intervals

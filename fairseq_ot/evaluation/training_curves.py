"""Training curves of several fairseq runs side by side
(`fairseq-ot-plot-training-curves`, fairseq_ot/cli/plot_training_curves.py):
one subplot per metric, one line per run, against the update number, from
each run's train.log (train_log.py). A metric of the training statistics is
drawn from them; any other from the validation of the "valid" subset.
matplotlib (the dev extra) is imported only to draw."""

from pathlib import Path

from fairseq_ot.evaluation.figures import pyplot
from fairseq_ot.evaluation.train_log import curve, read_train_log

TRAIN_LOG = "train.log"
VALID = "valid"
# in every statistics line, not worth a curve
BOOKKEEPING = {"epoch", "update", "num_updates"}


def read_logs(run_dirs):
    """(label, TrainLog) per run; the label is the folder's name unless two
    runs share it."""
    paths = [Path(run) for run in run_dirs]
    missing = [str(path / TRAIN_LOG) for path in paths if not (path / TRAIN_LOG).is_file()]
    if missing:
        raise SystemExit(f"error: no {', '.join(missing)}")
    names = [path.name for path in paths]
    return [
        (path.name if names.count(path.name) == 1 else str(path), read_train_log(path / TRAIN_LOG))
        for path in paths
    ]


def series_of(log, source):
    return log.train_inner if source == "train" else log.validation.get(VALID, {})


def has(log, source, stat):
    return any(stat in stats for stats in series_of(log, source).values())


def resolve(metric, logs):
    """("train" or VALID, statistic name) that ``metric`` names."""
    if any(has(log, "train", metric) for _, log in logs):
        return "train", metric
    stat = metric[len(VALID) + 1:] if metric.startswith(VALID + "_") else metric
    if any(has(log, VALID, stat) for _, log in logs):
        return VALID, stat
    return None


def known_metrics(logs):
    training = {stat for _, log in logs for stats in log.train_inner.values() for stat in stats}
    validation = {f"{VALID}_{stat}" for _, log in logs for stats in series_of(log, VALID).values() for stat in stats}
    return sorted(training - BOOKKEEPING) + sorted(validation - {f"{VALID}_{stat}" for stat in BOOKKEEPING})


def plot_training_curves(run_dirs, metrics):
    """The figure, and the notes on runs skipped in a subplot."""
    logs = read_logs(run_dirs)
    sources = {metric: resolve(metric, logs) for metric in metrics}
    unknown = [metric for metric, source in sources.items() if source is None]
    if unknown:
        raise SystemExit(
            f"error: no run logs {', '.join(unknown)}; metrics in these logs: {', '.join(known_metrics(logs))}"
        )
    plt = pyplot()

    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    notes = []
    # a run keeps its colour in every subplot, also where another run is skipped
    colours = {label: f"C{i % 10}" for i, (label, _) in enumerate(logs)}
    for ax, metric in zip(axes[0], metrics):
        source, stat = sources[metric]
        for label, log in logs:
            updates, values = curve(series_of(log, source), stat)
            if not updates:
                notes.append(f"note: {label} logs no {stat} in its {source} statistics; not in the {metric} plot")
                continue
            ax.plot(updates, values, marker="o" if source == VALID else None, markersize=3, label=label,
                    color=colours[label])
        ax.set_title(f"{stat} (training)" if source == "train" else f"{VALID}_{stat} (validation)")
        ax.set_xlabel("update")
        ax.set_ylabel(stat)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.tight_layout()
    return figure, notes

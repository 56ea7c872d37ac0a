"""The plot of a results table: each run's difference to the MLE run of its
seed, with its 95% paired bootstrap interval, one panel per task, split and
metric (``collect_results.py --plot``)."""

from pathlib import Path

from fairseq_ot.evaluation.figures import pyplot


def difference_points(intervals):
    """{(task, split, metric): [(run name, criterion, observed, lower,
    upper)]} of ``collected_results``' intervals, rows in table order."""
    points = {}
    for (task, split), rows in intervals.items():
        for run_name, criterion, by_metric in rows:
            for metric, bootstrap in by_metric.items():
                d = bootstrap.difference
                points.setdefault((task, split, metric), []).append(
                    (run_name, criterion, d.observed, d.lower, d.upper))
    return points


def plot_differences(points, path):
    """Write the panels of ``difference_points`` to ``path``, one run a row:
    its difference as a dot, its interval as a bar, zero (MLE) as a line."""
    plt = pyplot()

    panels = sorted(points.items())
    height = max(2.5, 0.3 * max(len(rows) for _, rows in panels) + 1.2)
    figure, grid = plt.subplots(1, len(panels), figsize=(9 * len(panels), height), squeeze=False)
    colours = {}
    for axes, ((task, split, metric), rows) in zip(grid[0], panels):
        for y, (run_name, criterion, observed, lower, upper) in enumerate(reversed(rows)):
            colour = colours.setdefault(criterion, f"C{len(colours) % 10}")
            axes.errorbar(observed, y, xerr=[[observed - lower], [upper - observed]], fmt="o", color=colour,
                          capsize=3, label=criterion)
        axes.axvline(0.0, color="gray", linewidth=1)
        axes.set_yticks(range(len(rows)), [row[0] for row in reversed(rows)], fontsize=8)
        axes.set_xlabel(f"Δ {metric} vs MLE of the same seed, 95% paired bootstrap interval")
        axes.set_title(f"{task}, {split}")
        # one legend entry per criterion
        handles, labels = axes.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        axes.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        axes.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)

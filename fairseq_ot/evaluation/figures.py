"""Writing the plots of the experiment scripts: one look for their curves."""

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend, which writes files and needs no
    display (the plots are made on clusters and CI machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_curves(figure, axes, path):
    """Give ``axes`` its legend and grid, lay ``figure`` out and write it to
    ``path`` (its folder made), at 120 dpi; the figure is closed."""
    plt = pyplot()
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)

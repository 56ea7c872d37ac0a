#!/usr/bin/env python
"""Huszar's (2015) two-token demonstration that scheduled sampling is an
improper objective: fit the tabular model Q(x1) Q(x2 | x1) to a joint P with
dependence by the scheduled-sampling objective (exact in expectation, see
fairseq_ot/analysis/scheduled_sampling_toy.py) for eps, the probability of
feeding the gold x1, on a grid in [0, 1]. Prints a table and plots
KL[P || Q_eps] and KL[P1 P2 || Q_eps] against eps, fitted and closed form,
with heat maps of P, Q_0.5 and Q_0. A few seconds on one CPU core.

    python scripts/plot_scheduled_sampling_impropriety.py
        [--out results/scheduled_sampling_impropriety/scheduled_sampling_impropriety.png]
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from fairseq_ot.analysis.scheduled_sampling_toy import (
    closed_form_optimum,
    fit_scheduled_sampling,
    kl_curves,
    kl_divergence,
    make_dependent_joint,
    product_of_marginals,
)
from fairseq_ot.evaluation.figures import pyplot

# importing fairseq_ot imports fairseq, whose wav2vec2_classification module
# sets the root logger to DEBUG; matplotlib would then log every font lookup
logging.getLogger().setLevel(logging.WARNING)

# the closed-form curves are cheap: draw them finer than the fitted points
CLOSED_FORM_POINTS = 201


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path,
        default=Path("results/scheduled_sampling_impropriety/scheduled_sampling_impropriety.png"),
        help="PNG path (its folder is created)")
    parser.add_argument("--num-eps", type=int, default=11, help="fitted eps values in [0, 1]")
    parser.add_argument("--alphabet-size", type=int, default=4)
    parser.add_argument("--coupling", type=float, default=2.0, help="dependence of x2 on x1 in P")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random joint P")
    return parser.parse_args(argv)


def print_table(joint, eps_values, fitted, closed_to_joint, args):
    fitted_to_joint, fitted_to_product = fitted
    mutual_information = kl_divergence(joint, product_of_marginals(joint))
    print(
        f"P: K={args.alphabet_size}, seed={args.seed}, coupling={args.coupling}, "
        f"I(x1;x2) = KL[P||P1P2] = {mutual_information:.5f} nats"
    )
    print(f"{'eps':>5} {'KL[P||Q] fit':>14} {'KL[P||Q] closed':>16} {'KL[P1P2||Q] fit':>16}")
    for eps, to_joint, closed, to_product in zip(
        eps_values, fitted_to_joint, closed_to_joint, fitted_to_product
    ):
        print(f"{eps:5.2f} {to_joint:14.5f} {closed:16.5f} {to_product:16.5f}")


def plot_kl_curves(ax, joint, eps_values, fitted):
    fine_eps = np.linspace(0.0, 1.0, CLOSED_FORM_POINTS)
    closed = kl_curves(joint, fine_eps, lambda eps: closed_form_optimum(joint, eps))
    mutual_information = kl_divergence(joint, product_of_marginals(joint))
    for label, color, fitted_values, closed_values in (
        ("KL[P || Q_eps]  (distance to the data)", "tab:red", fitted[0], closed[0]),
        ("KL[P1 P2 || Q_eps]  (distance to the product of marginals)", "tab:blue", fitted[1], closed[1]),
    ):
        ax.plot(fine_eps, closed_values, color=color, label=f"{label}, closed form")
        ax.plot(eps_values, fitted_values, "o", color=color, mfc="none", label="  fitted by SS with stop-gradient")
    ax.axhline(mutual_information, color="gray", ls=":", lw=1)
    ax.annotate("I(x1; x2) = KL[P || P1 P2]", (0.0, mutual_information), xytext=(6, 3),
                textcoords="offset points", color="gray", fontsize=9)
    ax.set_xlabel("eps  (probability of feeding the gold x1; 1 = teacher forcing = maximum likelihood)")
    ax.set_ylabel("KL (nats)")
    ax.set_xlim(-0.02, 1.02)
    # headroom above the curves for the legend
    ax.set_ylim(-0.01, 1.4 * max(closed[0].max(), closed[1].max()))
    ax.set_title("Scheduled sampling's optimum leaves P for P1(x1) P2(x2) as eps -> 0")
    ax.legend(fontsize=8.5, loc="upper center", ncol=2)


def plot_heat_map(ax, table, title, vmax):
    image = ax.imshow(table, cmap="viridis", vmin=0.0, vmax=vmax)
    for (row, column), value in np.ndenumerate(table):
        # light text on the dark low end of viridis, dark text on the bright end
        color = "white" if value < 0.6 * vmax else "black"
        ax.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=8, color=color)
    ticks = range(table.shape[0])
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("x2")
    ax.set_ylabel("x1")
    ax.set_title(title, fontsize=10)
    return image


def main(argv=None):
    args = parse_args(argv)
    joint = make_dependent_joint(args.alphabet_size, args.coupling, args.seed)
    eps_values = np.linspace(0.0, 1.0, args.num_eps)
    fitted = kl_curves(joint, eps_values, lambda eps: fit_scheduled_sampling(joint, eps))
    closed_to_joint, _ = kl_curves(joint, eps_values, lambda eps: closed_form_optimum(joint, eps))
    print_table(joint, eps_values, fitted, closed_to_joint, args)

    figure = pyplot().figure(figsize=(11, 8.5), layout="constrained")
    grid = figure.add_gridspec(2, 3, height_ratios=[1.1, 1])
    plot_kl_curves(figure.add_subplot(grid[0, :]), joint, eps_values, fitted)
    heat_maps = [
        (joint, "data P(x1, x2)"),
        (fit_scheduled_sampling(joint, 0.5), "SS optimum Q at eps = 0.5"),
        (fit_scheduled_sampling(joint, 0.0), "SS optimum Q at eps = 0 (= P1 P2)"),
    ]
    # one colour scale for the three tables, so that the cells compare
    vmax = max(float(table.max()) for table, _ in heat_maps)
    axes = [figure.add_subplot(grid[1, column]) for column in range(3)]
    for ax, (table, title) in zip(axes, heat_maps):
        image = plot_heat_map(ax, table.numpy(), title, vmax)
    figure.colorbar(image, ax=axes, shrink=0.8, label="probability")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

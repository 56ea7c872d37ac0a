#!/usr/bin/env python
"""CoT's Figure 3 (Lu et al., ICML 2019) on the synthetic oracle: during a
CoT run from scratch (the synthetic Turing test's generator and mediator,
one Adam at lr 1e-3), every --interval updates K = --batches mini-batches of
generator samples give K estimates of grad J^0 (CoT's pathwise estimator,
--cot-gamma 0) and of grad J^1 (the exact gradient of KL[G||M],
--cot-gamma 1); plots (a) the cosine similarity of their means and (b) the
quantiles over the generator's parameters of the log-variance ratio
log Var[grad J^1] - log Var[grad J^0] (definitions:
fairseq_ot/analysis/gamma_estimator.py). About 6 minutes of one CPU core.

    OMP_NUM_THREADS=1 python scripts/plot_cot_gamma_estimator.py
        [--png results/cot_gamma_estimator/cot_gamma_estimator.png]
        [--json results/cot_gamma_estimator/cot_gamma_estimator.json]
        [--updates 200] [--interval 25] [--batches 16] [--work-dir DIR]

The oracle data (10,000 training sequences) is sampled into --work-dir
(default: a temporary folder) and reused from there.
"""

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from fairseq_ot.analysis.gamma_estimator import QUANTILES, train_and_measure
from fairseq_ot.evaluation.figures import pyplot

# importing fairseq sets the root logger to DEBUG; matplotlib would then log
# every font lookup
logging.getLogger().setLevel(logging.WARNING)

# where the figure and its data are kept, with their MANIFEST.md (relative to the current folder)
RESULTS = Path("results/cot_gamma_estimator")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--png", type=Path, default=RESULTS / "cot_gamma_estimator.png")
    parser.add_argument("--json", type=Path, default=RESULTS / "cot_gamma_estimator.json")
    parser.add_argument("--updates", type=int, default=200, help="CoT training updates")
    parser.add_argument("--interval", type=int, default=25, help="updates between measurements")
    parser.add_argument("--batches", type=int, default=16,
                        help="K: mini-batches (estimates of each estimator) per measurement")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per mini-batch")
    parser.add_argument("--oracle-samples", type=int, default=1000,
                        help="generator samples scored by the oracle per measurement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, help="where the oracle data is built and reused")
    args = parser.parse_args(argv)
    if args.updates < 0 or args.interval < 1 or args.batches < 2 or args.batch_size < 1:
        parser.error("need --updates >= 0, --interval >= 1, --batches >= 2 (a variance), "
                     "--batch-size >= 1")
    return args


def plot(records, path):
    plt = pyplot()
    updates = [r["update"] for r in records]
    figure, (cosine_ax, ratio_ax, training_ax) = plt.subplots(1, 3, figsize=(14, 4.2),
                                                               layout="constrained")
    cosine_ax.plot(updates, [r["cosine"] for r in records], marker="o",
                   label="cos(mean grad J^0, mean grad J^1)")
    # the noise of a mean of K/2 estimates, against itself
    for gamma, style in ((0, ":"), (1, "--")):
        cosine_ax.plot(updates, [r[f"cosine_halves_gamma_{gamma}"] for r in records], ls=style,
                       label=f"grad J^{gamma}: cos of the means of two halves of K")
    cosine_ax.set_ylim(top=1.02)
    cosine_ax.set_title("(a) cosine of the averaged estimators")
    cosine_ax.legend(fontsize=8)

    quantile = lambda q: [r["log_var_ratio_quantiles"][str(q)] for r in records]  # noqa: E731
    ratio_ax.fill_between(updates, quantile(QUANTILES[0]), quantile(QUANTILES[-1]), alpha=0.2,
                          label=f"{QUANTILES[0]:g}-{QUANTILES[-1]:g} quantiles")
    ratio_ax.fill_between(updates, quantile(QUANTILES[1]), quantile(QUANTILES[-2]), alpha=0.35,
                          label=f"{QUANTILES[1]:g}-{QUANTILES[-2]:g} quantiles")
    ratio_ax.plot(updates, quantile(0.5), marker="o", label="median")
    ratio_ax.plot(updates, [r["log_var_ratio_mean"] for r in records], ls="--", label="mean")
    ratio_ax.axhline(0, color="gray", lw=1)
    ratio_ax.set_title("(b) log Var[grad J^1] - log Var[grad J^0] per parameter")
    ratio_ax.legend(fontsize=8)

    training_ax.plot(updates, [r["nll_oracle"] for r in records], marker="o", color="tab:green")
    training_ax.set_ylabel("NLL_oracle (nats per token)", color="tab:green")
    kl_ax = training_ax.twinx()
    kl_ax.plot(updates, [r["generator_kl"] for r in records], marker="s", color="tab:red")
    kl_ax.set_ylabel("KL[G||M] per sample (nats)", color="tab:red")
    training_ax.set_title("(c) the CoT run")
    for ax in (cosine_ax, ratio_ax, training_ax):
        ax.set_xlabel("CoT updates")
        ax.grid(alpha=0.3)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    with tempfile.TemporaryDirectory() as temporary:
        records = train_and_measure(
            args.work_dir or temporary, args.updates, args.interval, args.batches, args.batch_size,
            args.oracle_samples, args.seed, log=lambda line: print(line, flush=True))
    # building fairseq's config through hydra set the root logger to DEBUG again
    logging.getLogger().setLevel(logging.WARNING)
    settings = {key: value for key, value in vars(args).items() if key not in ("png", "json", "work_dir")}
    summary = {"settings": settings, "checkpoints": records,
               "total_seconds": round(time.time() - started)}
    for path in (args.json, args.png):
        path.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1) + "\n")
    plot(records, args.png)
    print(f"wrote {args.png} and {args.json} in {summary['total_seconds']} s")


if __name__ == "__main__":
    main()

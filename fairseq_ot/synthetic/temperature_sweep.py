"""NLL_oracle against NLL_test over the softmax temperature on the synthetic
oracle, behind `fairseq-ot-sweep-oracle-temperature`
(fairseq_ot/cli/sweep_oracle_temperature.py, whose docstring says what it
writes; Caccia et al., ICLR 2020): per run and temperature, the oracle's NLL
of the tempered model's samples and the tempered model's NLL of the held-out
oracle samples; the table and the plot (matplotlib, the dev extra, imported
only to draw)."""

import torch
from fairseq.data import Dictionary

from fairseq_ot.errors import require
from fairseq_ot.evaluation.figures import pyplot, save_curves
from fairseq_ot.evaluation.lm_sampling import load_generator, require_sweep
from fairseq_ot.synthetic.evaluation import load_split_words, nll_oracle, nll_test, oracle_reference
from fairseq_ot.synthetic.lm_data import fairseq_to_oracle_ids, oracle_id_table
from fairseq_ot.synthetic.oracle import OracleLSTM

DEFAULT_TEMPERATURES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4)


def check_args(args):
    """FlagError (or CheckpointFileError) for values no sweep can use, before anything is loaded."""
    require(args.samples >= 1, "--samples", ">= 1", args.samples)
    require_sweep(args.runs, args.temperatures, args.checkpoint)


def load_runs(args):
    """[(run, its LoadedLM)]: every model loaded first, so that a bad
    checkpoint is refused before the oracle's reference point is sampled."""
    return [(run, load_generator(run / "checkpoints" / args.checkpoint, args.data)) for run in args.runs]


def sweep_run(run, lm, args, oracle, test_words):
    """One point per temperature of one run."""
    points = []
    for temperature in args.temperatures:
        torch.manual_seed(args.seed)  # every point drawn from the same stream
        point = {"method": run.name, "updates": lm.num_updates, "temperature": temperature,
                 "samples": args.samples, "seed": args.seed, "n_test": len(test_words),
                 "nll_oracle": nll_oracle(lm.generator, lm.dictionary, oracle, args.samples,
                                          temperature=temperature),
                 "nll_test": nll_test(lm.generator, lm.dictionary, test_words, temperature=temperature)}
        print(f"{run.name:>20} T {temperature:<4g} NLL_oracle {point['nll_oracle']:.3f} "
              f"NLL_test {point['nll_test']:.3f}", flush=True)
        points.append(point)
    return points


def markdown_table(points, reference, temperatures):
    """Rows: methods; columns: NLL_oracle / NLL_test at each temperature."""
    header = ["method", "updates"] + [f"T {t:g}" for t in temperatures]
    rows = ["NLL_oracle / NLL_test, nats per word; lower is better for both.", "",
            "| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for method in dict.fromkeys(point["method"] for point in points):
        mine = {p["temperature"]: p for p in points if p["method"] == method}
        cells = [method, str(next(iter(mine.values()))["updates"])]
        cells += [f"{mine[t]['nll_oracle']:.3f} / {mine[t]['nll_test']:.3f}" for t in temperatures]
        rows.append("| " + " | ".join(cells) + " |")
    rows.append(f"| oracle | | {reference['nll_oracle']:.3f} / {reference['nll_test']:.3f} at T 1 |"
                + " |" * (len(temperatures) - 1))
    return "\n".join(rows) + "\n"


def plot_sweep(points, reference, path):
    plt = pyplot()

    figure, axes = plt.subplots(figsize=(7, 5))
    for method in dict.fromkeys(point["method"] for point in points):
        curve = sorted((p for p in points if p["method"] == method), key=lambda p: p["temperature"])
        xs, ys = [p["nll_test"] for p in curve], [p["nll_oracle"] for p in curve]
        axes.plot(xs, ys, marker="o", markersize=4, label=method,
                  linestyle="--" if method.startswith("gjs_") else "-")
        for x, y, point in zip(xs, ys, curve):
            axes.annotate(f"{point['temperature']:g}", (x, y), fontsize=6, xytext=(3, 3),
                          textcoords="offset points")
    # the oracle's own point sits far to the lower left and would flatten the curves
    axes.text(0.99, 0.99, f"oracle: NLL_test {reference['nll_test']:.2f}, "
              f"entropy rate {reference['nll_oracle']:.2f} (off scale)",
              transform=axes.transAxes, fontsize=8, color="gray", ha="right", va="top")
    axes.set_xlabel("NLL_test: the tempered model's NLL of held-out oracle samples (coverage)")
    axes.set_ylabel("NLL_oracle: the oracle's NLL of samples (quality)")
    axes.set_title("Synthetic oracle: quality against coverage over the temperature")
    save_curves(figure, axes, path)


def sweep(args):
    """Every point of the sweep and the oracle's reference point (its NLL of
    its own --samples samples and of the test sequences)."""
    models = load_runs(args)
    oracle = OracleLSTM.load_default()
    dictionary = Dictionary.load(str(args.data / "dict.txt"))
    test_words = load_split_words(args.data, "test", dictionary)
    reference = oracle_reference(oracle, fairseq_to_oracle_ids(test_words, oracle_id_table(dictionary)),
                                 args.samples)
    points = [point for run, lm in models for point in sweep_run(run, lm, args, oracle, test_words)]
    return points, reference

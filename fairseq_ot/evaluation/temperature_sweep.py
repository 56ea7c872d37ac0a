"""The temperature sweep of unconditional language models behind
`fairseq-ot-sweep-temperature` (fairseq_ot/cli/sweep_temperature.py, whose
docstring says what it writes; Caccia et al., ICLR 2020): per run and
temperature, BLEU-5 of --num samples against the test sentences and their
Self-BLEU-5, the run's NLL_test, and the real-data point; the table at T = 1
and the plot (matplotlib, the dev extra, imported only to draw)."""

import random

from fairseq_ot.data_prep.caption_lm import TOKENIZER, text_file
from fairseq_ot.data_prep.text_files import read_lines, write_lines
from fairseq_ot.errors import FlagError
from fairseq_ot.evaluation.figures import pyplot
from fairseq_ot.evaluation.generation_metrics import SMOOTHING, generation_scores
from fairseq_ot.evaluation.lm_sampling import load_generator, require_sweep, sample_sentences, split_nll
from fairseq_ot.evaluation.train_log import read_train_log

DEFAULT_TEMPERATURES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4)
REAL = "real (valid captions)"


def check_args(args):
    """FlagError (or CheckpointFileError) for values no sweep can use."""
    if args.num < 2:
        raise FlagError(f"--num must be >= 2 (Self-BLEU needs two sentences), got {args.num}")
    require_sweep(args.runs, args.temperatures, args.checkpoint)


def read_sentences(path):
    """Whitespace-split lines of a prepared text file."""
    return [line.split() for line in read_lines(path)]


def common_fields(args, n_ref, temperature):
    """What every point of the table records besides its scores."""
    return {"n_hyp": args.num, "n_ref": n_ref, "tokenizer": TOKENIZER, "smoothing": SMOOTHING,
            "temperature": temperature, "seed": args.seed}


def real_data_point(args, references):
    """--num validation sentences (drawn with --seed) scored as samples are."""
    valid = read_sentences(text_file(args.data, "valid"))
    if args.num > len(valid):
        raise FlagError(f"--num {args.num} exceeds the {len(valid)} validation sentences of the real-data point")
    chosen = random.Random(args.seed).sample(valid, args.num)
    return {"method": REAL, **common_fields(args, len(references), None),
            **generation_scores(chosen, references)}


def load_runs(args):
    """[(run, its LoadedLM)]: every model loaded before anything is sampled,
    so that a bad checkpoint stops the sweep before any samples are written."""
    return [(run, load_generator(run / "checkpoints" / args.checkpoint, args.data)) for run in args.runs]


def sweep_run(run, lm, args, references, samples_dir):
    """The points of one run: one per temperature."""
    nll, tokens = split_nll(lm, args.data, "test")
    print(f"{run.name}: {lm.num_updates} updates, NLL_test {nll:.4f} nats/token over {tokens} tokens", flush=True)
    points = []
    for temperature in args.temperatures:
        sentences, truncated = sample_sentences(lm, args.num, temperature, args.seed, progress=True)
        write_lines(samples_dir / f"{run.name}_t{temperature:g}.txt", sentences)
        scores = generation_scores([sentence.split() for sentence in sentences], references)
        points.append({"method": run.name, "checkpoint": str(run / "checkpoints" / args.checkpoint),
                       "updates": lm.num_updates, **common_fields(args, len(references), temperature),
                       "max_tokens": lm.tokens_per_sample, "n_cut_at_max_tokens": truncated,
                       "train_seconds": train_seconds(run),
                       "nll_test": nll, "nll_test_tokens": tokens, **scores})
        print(f"  T {temperature:g}: BLEU-5 {scores['bleu5']:.4f} Self-BLEU-5 {scores['self_bleu5']:.4f}",
              flush=True)
    return points


def train_seconds(run):
    """Seconds in training steps of RUN_DIR/train.log, None without one."""
    log = run / "train.log"
    return read_train_log(log).train_seconds if log.exists() else None


def table_at(points, temperature):
    """Markdown, one row per method at `temperature` and the real-data row:
    the paper's Tables 2-3 in form (eWMD left out: see the README)."""
    orders = range(2, 6)
    header = (["method", "updates", "train s", "NLL_test"] + [f"BLEU-{n}" for n in orders]
              + [f"Self-BLEU-{n}" for n in orders])
    rows = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for point in points:
        if point["temperature"] not in (temperature, None):
            continue
        cells = [point["method"], str(point.get("updates", "")),
                 f"{point['train_seconds']:.0f}" if point.get("train_seconds") else "",
                 f"{point['nll_test']:.3f}" if "nll_test" in point else ""]
        cells += [f"{point[f'bleu{n}']:.3f}" for n in orders]
        cells += [f"{point[f'self_bleu{n}']:.3f}" for n in orders]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def plot_sweep(points, path):
    """Left: BLEU-5 against Self-BLEU-5, a curve per method through its
    temperatures (labelled), the real-data point as a star; right: NLL_test."""
    plt = pyplot()

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [2, 1]})
    methods = list(dict.fromkeys(point["method"] for point in points if point["method"] != REAL))
    for method in methods:
        curve = sorted((p for p in points if p["method"] == method), key=lambda p: p["temperature"])
        xs, ys = [p["self_bleu5"] for p in curve], [p["bleu5"] for p in curve]
        left.plot(xs, ys, marker="o", label=method)
        for x, y, point in zip(xs, ys, curve):
            left.annotate(f"{point['temperature']:g}", (x, y), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
    for point in points:
        if point["method"] == REAL:
            left.plot(point["self_bleu5"], point["bleu5"], marker="*", markersize=14, color="black",
                      linestyle="none", label=REAL)
    left.set_xlabel("Self-BLEU-5 (lower: more diverse)")
    left.set_ylabel("BLEU-5 against the test captions (higher: better quality)")
    left.set_title("quality against diversity over the temperature T")
    left.legend(fontsize=8)
    nlls = [next(p["nll_test"] for p in points if p["method"] == method) for method in methods]
    right.bar_label(right.bar(range(len(methods)), nlls), fmt="%.3f", fontsize=8)
    right.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
    right.set_ylabel("NLL_test (nats per token, EOS counted)")
    right.set_ylim(min(nlls) * 0.95 if nlls else 0, max(nlls) * 1.02 if nlls else 1)
    right.set_title("held-out NLL")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def sweep(args):
    """Every point of the sweep, the samples written on the way."""
    models = load_runs(args)
    references = read_sentences(text_file(args.data, "test"))
    samples_dir = args.out.parent / f"{args.out.stem}_samples"
    points = [real_data_point(args, references)]
    for run, lm in models:
        points += sweep_run(run, lm, args, references, samples_dir)
    return points

#!/usr/bin/env python
"""The synthetic Turing test of SeqGAN / CoT (Lu et al., ICML 2019, Table 1)
as a benchmark: every method trains the same small LSTM language model on
10,000 samples of the oracle LSTM for the same wall-clock budget, and each
saved checkpoint is scored by NLL_oracle (the oracle's per-token NLL of the
model's samples) and NLL_test (the model's per-token NLL of 10,000 held-out
oracle samples).

    python scripts/synthetic_turing_test.py [--minutes 10] [--parallel 2]
        [--methods mle,scheduled_sampling,cot,gjs_0.25,gjs_0.5,gjs_0.75]
        [--out synthetic_output] [--eval-samples 10000] [--curve-samples 2000]
        [--device cpu|cuda]

Writes OUT/results.json, OUT/results.md and OUT/nll_oracle_vs_time.png;
training logs and checkpoints under OUT/runs/METHOD. Data and runs already in
OUT are reused: the budget is fairseq's cumulative training time, kept in the
checkpoints, so an interrupted run resumes from its last checkpoint and a
larger --minutes extends finished runs with the flags of their first launch
(the scheduled sampling slope included).

Differences from the reference setup: one Adam optimizer (lr 1e-3, betas
0.9, 0.95) trains generator and mediator together, where the reference gives
the mediator lr 3e-3; training is bounded by time, not epochs.
"""

import argparse
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


import torch
from fairseq.data import Dictionary

from fairseq_ot.paths import USER_DIR
from fairseq_ot.evaluation.files import write_atomically
from fairseq_ot.evaluation.lm_sampling import load_generator
from fairseq_ot.synthetic.evaluation import load_split_words, nll_oracle, nll_test, oracle_reference
from fairseq_ot.synthetic.lm_data import (
    build_oracle_lm_data, fairseq_to_oracle_ids, oracle_id_table,
)
from fairseq_ot.synthetic.flags import GENERATOR_ARGS, MEDIATOR_ARGS, TRAINING_ARGS
from fairseq_ot.synthetic.oracle import OracleLSTM

METHODS = ("mle", "scheduled_sampling", "cot", "gjs_0.25", "gjs_0.5", "gjs_0.75")
# Updates per minute measured with two runs sharing the 2 (busy) cores of the
# development machine (commit a3c7d59, with fairseq's lstm_lm, before the
# cheaper updates of fused_lstm_lm). They set the checkpoint interval and the
# scheduled sampling slope: elsewhere, or after the model or the samplers
# change, the curves get more or fewer points and eps reaches its floor
# earlier or later than half-way.
UPDATES_PER_MINUTE = {"mle": 490, "scheduled_sampling": 275, "mediator": 110}
CURVE_POINTS = 10
SS_MIN = 0.7
EVAL_SEED = 1234
PUBLISHED_NLL_ORACLE = {  # CoT paper (Lu et al. 2019), Table 1
    "MLE": 9.08, "scheduled sampling": 8.89, "CoT": 8.19,
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="wall-clock training budget of every method")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--parallel", type=int, default=2, help="runs trained at once")
    parser.add_argument("--out", type=Path, default=Path("synthetic_output"))
    parser.add_argument("--eval-samples", type=int, default=10000,
                        help="model samples scored by the oracle for each final checkpoint")
    parser.add_argument("--curve-samples", type=int, default=2000,
                        help="model samples for each intermediate checkpoint")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where fairseq-train runs (scoring stays on the CPU)")
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    return args


def prepare_data(out):
    """The benchmark's corpus under out/data, sampled and binarized once."""
    data_bin = out / "data" / "data-bin"
    if all((data_bin / f"{split}.bin").exists() for split in ("train", "valid", "test")):
        print(f"data already in {data_bin}", flush=True)
        return data_bin
    print("sampling the oracle and binarizing into", data_bin, flush=True)
    return build_oracle_lm_data(OracleLSTM.load_default(), out / "data",
                                n_train=10000, n_valid=2000, n_test=10000)


def throughput_key(method):
    return "mediator" if method == "cot" or method.startswith("gjs_") else method


def expected_updates(method, minutes):
    return UPDATES_PER_MINUTE[throughput_key(method)] * minutes


def scheduled_sampling_slope(minutes):
    """c of eps_i = max(SS_MIN, 1 - c i) that reaches the floor at half the
    expected updates: the second half trains at the final mixture."""
    return (1 - SS_MIN) / (expected_updates("scheduled_sampling", minutes) / 2)


def method_args(method, minutes):
    if method == "mle":
        return ["--task", "language_modeling", "--criterion", "cross_entropy"]
    if method == "scheduled_sampling":
        return ["--task", "language_modeling", "--criterion", "scheduled_sampling",
                "--ss-mode", "stepwise", "--ss-schedule", "linear", "--ss-k", "1",
                "--ss-c", f"{scheduled_sampling_slope(minutes):.3g}", "--ss-min", str(SS_MIN)]
    if method == "cot":
        return MEDIATOR_ARGS + ["--criterion", "cot"]
    pi = method.split("_")[1]
    return MEDIATOR_ARGS + ["--criterion", "gjs", "--gjs-mode", "mediator", "--gjs-pi", pi]


def train_command(data_bin, method, run_dir, minutes, device, schedule_minutes):
    """fairseq-train for a budget of `minutes`, with the scheduled sampling
    slope of a `schedule_minutes` budget (the first launch's)."""
    save_interval = max(1, round(expected_updates(method, minutes) / CURVE_POINTS))
    return [
        # the fairseq-train of this interpreter's environment, wherever PATH points
        str(Path(sys.executable).parent / "fairseq-train"), str(data_bin),
        "--user-dir", str(USER_DIR), *(["--cpu"] if device == "cpu" else []),
        *GENERATOR_ARGS, *TRAINING_ARGS, *method_args(method, schedule_minutes),
        "--stop-time-hours", f"{minutes / 60:.6f}",
        "--save-interval-updates", str(save_interval), "--save-dir", str(run_dir / "checkpoints"),
    ]


def code_version():
    """The last commit of the plugin (fairseq_ot/), marked dirty when its
    working tree differs: fairseq-train imports the plugin afresh at each
    launch, so runs launched around a commit train different code."""
    def git(*args):
        return subprocess.run(["git", "-C", str(USER_DIR), *args, "--", "."],
                              capture_output=True, text=True).stdout.strip()

    commit = git("log", "-1", "--format=%h")
    if not commit:
        return "unknown (not a git checkout)"
    return commit + ("-dirty" if git("status", "--porcelain") else "")


def train(data_bin, method, run_dir, minutes, device):
    """Trains `method` until fairseq's cumulative training time reaches
    `minutes`, resuming from run_dir/checkpoints/checkpoint_last.pt when there
    is one. Each fairseq-train launch (command, code, budget, exit status) is
    appended to run_dir/launches.json and its log to run_dir/train.log; the
    list of launches is returned."""
    launches_path = run_dir / "launches.json"
    launches = json.loads(launches_path.read_text()) if launches_path.exists() else []
    if launches and launches[-1]["returncode"] == 0 and launches[-1]["minutes"] >= minutes:
        print(f"{method}: already trained for {launches[-1]['minutes']} min in {run_dir}", flush=True)
        return launches
    run_dir.mkdir(parents=True, exist_ok=True)
    schedule_minutes = launches[0]["minutes"] if launches else minutes
    command = train_command(data_bin, method, run_dir, minutes, device, schedule_minutes)
    print(f"{method}: training up to {minutes} min, log {run_dir / 'train.log'}", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = code_version()
    launched = time.time()
    with open(run_dir / "train.log", "a") as log:
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    launches.append({"command": command, "code": code, "minutes": minutes, "launched": launched,
                     "finished": time.time(), "returncode": returncode})
    write_atomically(launches_path, json.dumps(launches, indent=1))
    if returncode != 0:
        print(f"{method}: fairseq-train failed ({returncode}), see {run_dir / 'train.log'}", flush=True)
    return launches


def train_all(data_bin, methods, out, minutes, parallel, device):
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {m: pool.submit(train, data_bin, m, out / "runs" / m, minutes, device)
                   for m in methods}
        return {m: future.result() for m, future in futures.items()}


def saved_checkpoints(run_dir):
    """The interval checkpoints (checkpoint_EPOCH_UPDATES.pt) in order of
    updates, then checkpoint_last.pt."""
    paths = (run_dir / "checkpoints").glob("checkpoint_*_*.pt")
    ordered = sorted(paths, key=lambda path: int(path.stem.rsplit("_", 1)[1]))
    return ordered + [run_dir / "checkpoints" / "checkpoint_last.pt"]


def curve_selection(checkpoints):
    """The final checkpoint and at most CURVE_POINTS earlier ones, evenly
    spread: a faster machine saves more often than planned, and scoring every
    save would take longer than the training."""
    *earlier, final = checkpoints
    step = math.ceil(len(earlier) / CURVE_POINTS) or 1
    return earlier[step - 1::step] + [final]


def last_logged_stats(log_path):
    """The last train_inner record of a json-format fairseq log."""
    records = re.findall(r"\| train_inner \| (\{.*\})\s*$", log_path.read_text(), flags=re.M)
    return json.loads(records[-1]) if records else None


def evaluate_checkpoint(path, data_bin, oracle, test_words, samples):
    lm = load_generator(path, data_bin)
    torch.manual_seed(EVAL_SEED)  # every checkpoint scored with the same draws
    return {
        "checkpoint": path.name, "updates": lm.num_updates, "minutes": round(lm.training_seconds / 60, 3),
        "nll_oracle": nll_oracle(lm.generator, lm.dictionary, oracle, samples),
        "nll_test": nll_test(lm.generator, lm.dictionary, test_words),
        "samples": samples,
    }


def evaluate_run(method, launches, data_bin, oracle, test_words, args):
    run_dir = args.out / "runs" / method
    checkpoints = curve_selection(saved_checkpoints(run_dir))
    curve = []
    for index, path in enumerate(checkpoints):
        is_final = index == len(checkpoints) - 1
        samples = args.eval_samples if is_final else args.curve_samples
        curve.append(evaluate_checkpoint(path, data_bin, oracle, test_words, samples))
        point = curve[-1]
        print(f"{method:>18} {point['updates']:>6} updates {point['minutes']:6.2f} min "
              f"NLL_oracle {point['nll_oracle']:.3f} NLL_test {point['nll_test']:.3f}", flush=True)
    return {"commands": [shlex.join(launch["command"]) for launch in launches],
            "code": sorted({launch["code"] for launch in launches}),
            "schedule_minutes": launches[0]["minutes"], "curve": curve,
            "final": curve[-1], "last_logged": last_logged_stats(run_dir / "train.log")}


def markdown_table(results, oracle_row, minutes):
    lines = [
        f"# Synthetic Turing test, {minutes:g} minutes of training per method",
        "",
        "Per-token NLL in nats over the 20 words of a sequence (fairseq's EOS left out).",
        "NLL_oracle: the oracle's NLL of model samples (lower: better samples);",
        "NLL_test: the model's NLL of 10,000 held-out oracle samples (lower: better coverage).",
        "minutes: fairseq's cumulative training time (wall clock) at the final checkpoint.",
        "",
        "| method | updates | minutes | NLL_oracle | NLL_test |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for method, result in results.items():
        final = result["final"]
        lines.append(f"| {method} | {final['updates']} | {final['minutes']:.1f} "
                     f"| {final['nll_oracle']:.3f} | {final['nll_test']:.3f} |")
    lines.append(f"| oracle (entropy rate) | | | {oracle_row['nll_oracle']:.3f} "
                 f"| {oracle_row['nll_test']:.3f} |")
    for method, value in PUBLISHED_NLL_ORACLE.items():
        lines.append(f"| {method}, published (CoT paper, Table 1) | | | {value:.2f} | |")
    lines += [
        "",
        "Setup: generator `fused_lstm_lm` (embedding 32, hidden 32, 1 layer), batch 64,",
        "one Adam optimizer (betas 0.9, 0.95, lr 1e-3) for generator and mediator together;",
        "the reference CoT code gives the mediator (embedding 64, hidden 64) its own lr 3e-3.",
        *scheduled_sampling_lines(results),
        "Training is bounded by wall-clock time, not epochs, so the published figures",
        "(trained to convergence) are a reference, not a like-for-like comparison.",
        code_line(results),
        "Commands: results.json.",
    ]
    return "\n".join(lines) + "\n"


def scheduled_sampling_lines(results):
    if "scheduled_sampling" not in results:
        return []
    schedule_minutes = results["scheduled_sampling"]["schedule_minutes"]
    return [f"Scheduled sampling: eps_i = max({SS_MIN}, 1 - c i), "
            f"c = {scheduled_sampling_slope(schedule_minutes):.3g}, so that eps reaches its floor",
            f"at about half the updates expected in its first launch's {schedule_minutes:g} minutes."]


def code_line(results):
    versions = sorted({code for result in results.values() for code in result["code"]})
    if len(versions) == 1:
        return f"Code: {versions[0]}."
    return f"WARNING: the runs trained different code: {', '.join(versions)}."


def plot_curves(results, oracle_row, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for method, result in results.items():
        curve = result["curve"]
        # dashed: gjs_0.5 is cot exactly and would hide it
        axes.plot([p["minutes"] for p in curve], [p["nll_oracle"] for p in curve],
                  marker="o", markersize=3, label=method,
                  linestyle="--" if method.startswith("gjs_") else "-")
    # a line at the oracle's entropy rate, far below, would flatten the curves
    axes.text(0.01, 0.01, f"oracle entropy rate {oracle_row['nll_oracle']:.2f} (off scale)",
              transform=axes.transAxes, fontsize=8, color="gray")
    axes.set_xlabel("minutes of training (fairseq's cumulative wall clock)")
    axes.set_ylabel("NLL_oracle (nats per token)")
    axes.set_title("Synthetic Turing test: sample quality against time")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main():
    args = parse_args()
    args.out = args.out.resolve()
    # importing fairseq set the root logger to DEBUG (its text_to_speech task)
    logging.getLogger().setLevel(logging.WARNING)
    started = time.time()
    evaluation_code = code_version()  # this process's imports score every checkpoint
    torch.set_num_threads(1)
    data_bin = prepare_data(args.out)
    records = train_all(data_bin, args.methods, args.out, args.minutes, args.parallel, args.device)
    trained = {m: launches for m, launches in records.items() if launches[-1]["returncode"] == 0}
    if not trained:
        sys.exit("every run failed: see OUT/runs/*/train.log")

    oracle = OracleLSTM.load_default()
    dictionary = Dictionary.load(str(data_bin / "dict.txt"))
    test_words = load_split_words(data_bin, "test", dictionary)
    results = {m: evaluate_run(m, launches, data_bin, oracle, test_words, args)
               for m, launches in trained.items()}
    oracle_row = oracle_reference(
        oracle, fairseq_to_oracle_ids(test_words, oracle_id_table(dictionary)), args.eval_samples)

    summary = {"minutes": args.minutes, "parallel": args.parallel, "device": args.device,
               "methods": results,
               "failed": sorted(set(records) - set(trained)), "oracle": oracle_row,
               "published_nll_oracle": PUBLISHED_NLL_ORACLE, "evaluation_code": evaluation_code,
               "total_seconds": round(time.time() - started)}
    (args.out / "results.json").write_text(json.dumps(summary, indent=1))
    (args.out / "results.md").write_text(markdown_table(results, oracle_row, args.minutes))
    plot_curves(results, oracle_row, args.out / "nll_oracle_vs_time.png")
    print((args.out / "results.md").read_text())
    if summary["failed"]:
        print(f"FAILED runs: {summary['failed']} (see their train.log)")
    print(f"wrote {args.out}/results.json, results.md, nll_oracle_vs_time.png "
          f"in {summary['total_seconds']} s")


if __name__ == "__main__":
    main()

"""The synthetic Turing test of SeqGAN / CoT (Lu et al., ICML 2019, Table 1)
behind `fairseq-ot-synthetic-turing-test`
(fairseq_ot/cli/synthetic_turing_test.py, whose docstring and --help say what
it runs): the oracle's data, one fairseq-train process per method for its
planned updates or for the same budget of training time, resumed and extended
from its checkpoints, and
every saved checkpoint scored by NLL_oracle and NLL_test; `run(args)` takes
the parsed command line."""

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

from fairseq_ot.evaluation.files import write_atomically
from fairseq_ot.evaluation.figures import pyplot, save_curves
from fairseq_ot.evaluation.lm_sampling import load_generator
from fairseq_ot.paths import USER_DIR
from fairseq_ot.synthetic.evaluation import load_split_words, nll_oracle, nll_test, oracle_reference
from fairseq_ot.synthetic.flags import GENERATOR_ARGS, MEDIATOR_ARGS, TRAINING_ARGS
from fairseq_ot.synthetic.lm_data import build_oracle_lm_data, fairseq_to_oracle_ids, oracle_id_table
from fairseq_ot.synthetic.oracle import OracleLSTM

METHODS = ("mle", "scheduled_sampling", "cot", "gjs_0.25", "gjs_0.5", "gjs_0.75")
# The updates planned for each method (cot and gjs train a mediator: one
# count for them), whatever the machine: a run saves CURVE_POINTS checkpoints
# over them, and scheduled sampling's eps reaches its floor at half of them.
# The defaults are what the old default budget of 10 minutes gave at the
# updates per minute measured on the development machine (490, 275 and 110;
# two runs sharing its 2 busy cores, commit a3c7d59, fairseq's lstm_lm), so
# that the default experiment is the one it was.
PLANNED_UPDATES = {"mle": 4900, "scheduled_sampling": 2750, "mediator": 1100}
CURVE_POINTS = 10
SS_MIN = 0.7
EVAL_SEED = 1234
PUBLISHED_NLL_ORACLE = {  # CoT paper (Lu et al. 2019), Table 1
    "MLE": 9.08, "scheduled sampling": 8.89, "CoT": 8.19,
}


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


def planned_updates_of(method, planned_updates=None):
    """The updates planned for `method`: from `planned_updates` (keyed
    mle, scheduled_sampling, mediator) or PLANNED_UPDATES."""
    return (planned_updates or PLANNED_UPDATES)[throughput_key(method)]


def scheduled_sampling_slope(updates):
    """c of eps_i = max(SS_MIN, 1 - c i) that reaches the floor at half the
    planned `updates`: the second half trains at the final mixture."""
    return (1 - SS_MIN) / (updates / 2)


def method_args(method, ss_slope):
    if method == "mle":
        return ["--task", "language_modeling", "--criterion", "cross_entropy"]
    if method == "scheduled_sampling":
        return ["--task", "language_modeling", "--criterion", "scheduled_sampling",
                "--ss-mode", "stepwise", "--ss-schedule", "linear", "--ss-k", "1",
                "--ss-c", f"{ss_slope:.3g}", "--ss-min", str(SS_MIN)]
    if method == "cot":
        return MEDIATOR_ARGS + ["--criterion", "cot"]
    pi = method.split("_")[1]
    return MEDIATOR_ARGS + ["--criterion", "gjs", "--gjs-mode", "mediator", "--gjs-pi", pi]


def train_command(data_bin, method, run_dir, minutes, device, planned_updates, ss_slope=None):
    """fairseq-train for the `planned_updates`, or, when `minutes` is not
    None, for a budget of `minutes` of training time; a checkpoint every
    tenth of the `planned_updates`; scheduled sampling with slope `ss_slope`
    (default: the one of `planned_updates`)."""
    save_interval = max(1, round(planned_updates / CURVE_POINTS))
    if ss_slope is None:
        ss_slope = scheduled_sampling_slope(planned_updates)
    return [
        # the fairseq-train of this interpreter's environment, wherever PATH points
        str(Path(sys.executable).parent / "fairseq-train"), str(data_bin),
        "--user-dir", str(USER_DIR), *(["--cpu"] if device == "cpu" else []),
        *GENERATOR_ARGS, *TRAINING_ARGS, *method_args(method, ss_slope),
        *(["--max-update", str(planned_updates)] if minutes is None
          else ["--stop-time-hours", f"{minutes / 60:.6f}"]),
        "--save-interval-updates", str(save_interval), "--save-dir", str(run_dir / "checkpoints"),
    ]


def first_slope(launches):
    """The scheduled sampling slope of the first launch (its --ss-c), None
    without launches or for another method."""
    command = launches[0]["command"] if launches else []
    return float(command[command.index("--ss-c") + 1]) if "--ss-c" in command else None


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


def budget_words(minutes, planned=None):
    """The budget in words: `minutes` of training time, or (None) the planned
    updates, `planned` of them when given."""
    if minutes is not None:
        return f"{minutes:g} min"
    return f"{planned} updates" if planned is not None else "its planned updates"


def already_trained(launch, minutes, planned):
    """Whether the finished `launch` covered the budget: `minutes` of training
    time, or (None) `planned` updates."""
    if launch["returncode"] != 0 or (launch["minutes"] is None) != (minutes is None):
        return False
    return launch["planned_updates"] >= planned if minutes is None else launch["minutes"] >= minutes


def train(data_bin, method, run_dir, minutes, device, planned_updates=None):
    """Trains `method` for its planned updates (`planned_updates`, keyed as
    PLANNED_UPDATES, default PLANNED_UPDATES), or, when `minutes` is not None,
    until fairseq's cumulative training time reaches `minutes`; resumes from
    run_dir/checkpoints/checkpoint_last.pt when there is one, saves a
    checkpoint every tenth of the planned updates, and keeps the scheduled
    sampling slope of its first launch. Each fairseq-train launch (command,
    code, budget, planned updates, exit status) is appended to
    run_dir/launches.json and its log to run_dir/train.log; the list of
    launches is returned."""
    launches_path = run_dir / "launches.json"
    launches = json.loads(launches_path.read_text()) if launches_path.exists() else []
    planned = planned_updates_of(method, planned_updates)
    if launches and already_trained(launches[-1], minutes, planned):
        print(f"{method}: already trained for {budget_words(minutes, planned)} in {run_dir}", flush=True)
        return launches
    run_dir.mkdir(parents=True, exist_ok=True)
    command = train_command(data_bin, method, run_dir, minutes, device, planned, first_slope(launches))
    print(f"{method}: training for {budget_words(minutes, planned)}, log {run_dir / 'train.log'}", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = code_version()
    launched = time.time()
    with open(run_dir / "train.log", "a") as log:
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    launches.append({"command": command, "code": code, "minutes": minutes, "planned_updates": planned,
                     "launched": launched, "finished": time.time(), "returncode": returncode})
    write_atomically(launches_path, json.dumps(launches, indent=1))
    if returncode != 0:
        print(f"{method}: fairseq-train failed ({returncode}), see {run_dir / 'train.log'}", flush=True)
    return launches


def train_all(data_bin, methods, out, minutes, parallel, device, planned_updates=None):
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {m: pool.submit(train, data_bin, m, out / "runs" / m, minutes, device, planned_updates)
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
            # None for a run first launched before the planned updates were recorded
            "planned_updates": launches[0].get("planned_updates"), "ss_c": first_slope(launches),
            "curve": curve,
            "final": curve[-1], "last_logged": last_logged_stats(run_dir / "train.log")}


def markdown_table(results, oracle_row, minutes):
    lines = [
        "# Synthetic Turing test, " + (f"{minutes:g} minutes of training per method" if minutes is not None
                                        else "each method trained for its planned updates"),
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
        f"Training is bounded by {'wall-clock time' if minutes is not None else 'update counts'}, "
        "not by convergence, so the published figures",
        "(trained to convergence) are a reference, not a like-for-like comparison.",
        code_line(results),
        "Commands: results.json.",
    ]
    return "\n".join(lines) + "\n"


def scheduled_sampling_lines(results):
    if "scheduled_sampling" not in results:
        return []
    result = results["scheduled_sampling"]
    planned = result.get("planned_updates")
    over = f"the {planned} updates planned" if planned else "the updates planned"
    return [f"Scheduled sampling: eps_i = max({SS_MIN}, 1 - c i), c = {result['ss_c']:.3g}, so that eps",
            f"reaches its floor at half of {over} in its first launch."]


def code_line(results):
    versions = sorted({code for result in results.values() for code in result["code"]})
    if len(versions) == 1:
        return f"Code: {versions[0]}."
    return f"WARNING: the runs trained different code: {', '.join(versions)}."


def plot_curves(results, oracle_row, path):
    plt = pyplot()

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
    save_curves(figure, axes, path)


def run(args):
    """The whole test for the parsed command line `args` (see
    fairseq_ot/cli/synthetic_turing_test.py; args.planned_updates keyed as
    PLANNED_UPDATES): trains, scores and writes OUT/results.json, results.md
    and nll_oracle_vs_time.png."""
    args.out = args.out.resolve()
    # importing fairseq set the root logger to DEBUG (its text_to_speech task)
    logging.getLogger().setLevel(logging.WARNING)
    started = time.time()
    evaluation_code = code_version()  # this process's imports score every checkpoint
    torch.set_num_threads(1)
    data_bin = prepare_data(args.out)
    records = train_all(data_bin, args.methods, args.out, args.minutes, args.parallel, args.device,
                        args.planned_updates)
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

    summary = {"minutes": args.minutes, "planned_updates": args.planned_updates, "parallel": args.parallel,
               "device": args.device, "methods": results,
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

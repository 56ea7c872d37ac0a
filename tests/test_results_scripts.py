"""scripts/collect_results.py, scripts/plot_training_curves.py and the
fairseq JSON train-log parser they share, on crafted run folders whose
numbers are known and on the log of a real, restarted fairseq-train run;
the paired bootstrap intervals of collect_results on run folders with real
generate outputs, BLEU's against sacrebleu's own --paired-bs."""

import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from fairseq_ot.evaluation import caption_scoring, results_tables, text_scoring, training_curves
from fairseq_ot.evaluation.paired_runs import BootstrapSettings, paired_comparison, run_seed
from fairseq_ot.evaluation.scores import read_scores, write_scores
from fairseq_ot.evaluation.train_log import curve, parse_train_log, read_train_log

from captioning_data import KINDS
from conftest import TINY_TRANSFORMER, USER_DIR, load_script, one_line_error, run_cli
from text_corpora import EN_DE, prepare_generated_multi30k, script_main, write_lines

MLE = "label_smoothed_cross_entropy"

# the commands, for the tests that run them end to end
collect_results = load_script("collect_results")
plot_training_curves = load_script("plot_training_curves")


def stats_line(epoch, prefix="", **stats):
    """A statistics line as fairseq writes it into --log-file: numbers as
    strings, every key but epoch prefixed for end-of-epoch and validation lines."""
    return json.dumps({"epoch": epoch, **{(f"{prefix}_" if prefix else "") + k: str(v) for k, v in stats.items()}})


# what fairseq writes into the log file besides statistics
PREAMBLE = [
    "{'_name': None, 'common': {'log_format': 'json', 'eval_bleu_args': '{\"beam\": 1}'}}",
    "TransformerModel(",
    "  (encoder): TransformerEncoderBase(",
    "Start iterating over samples",
]


def crafted_log(epochs):
    """A two-validation-per-epoch train log; ``epochs`` holds per epoch
    (losses at its two logged updates, its train_wall), 100 updates an epoch.
    From epoch 2 on fairseq writes every line twice."""
    lines = list(PREAMBLE)
    for epoch, (losses, train_wall) in enumerate(epochs, start=1):
        copies = 1 if epoch == 1 else 2
        for half, loss in enumerate(losses, start=1):
            update = (epoch - 1) * 100 + half * 50
            lines += [stats_line(epoch, loss=loss, ot_loss=loss / 10, num_updates=update, wall=update)] * copies
            lines += ['begin validation on "valid" subset']
            lines += [stats_line(epoch, "valid", loss=loss + 1, bleu=epoch * 10 + half, num_updates=update)] * copies
        lines += ["end of epoch (average epoch stats below)"]
        lines += [stats_line(epoch, "train", loss=losses[-1], num_updates=epoch * 100, train_wall=train_wall, wall=99)] * copies
    return "\n".join(lines) + "\n"


def crafted_run(folder, epochs, scores=None):
    folder.mkdir(parents=True)
    (folder / "train.log").write_text(crafted_log(epochs))
    for split, record in (scores or {}).items():
        write_scores(folder, split, hypotheses=1000, command="generate and score", **record)
    return folder


def translation(recipe, criterion, **metrics):
    return {"task": "translation", "recipe": recipe, "criterion": criterion, "metrics": metrics}


@pytest.fixture
def runs(tmp_path):
    """Four scored runs on two tasks and an unfinished one, under runs/."""
    root = tmp_path / "runs"
    crafted_run(root / "multi30k" / "mle", [((5.0, 4.0), 40), ((3.5, 3.0), 41)],
                {"test": translation("multi30k", MLE, sacrebleu=35.0, meteor=0.55),
                 "valid": translation("multi30k", MLE, sacrebleu=37.5, meteor=0.6)})
    crafted_run(root / "multi30k" / "ot", [((5.0, 4.5), 50), ((3.75, 3.25), 52)],
                {"test": translation("multi30k", "ot_seq", sacrebleu=36.25, meteor=0.5)})
    crafted_run(root / "iwslt" / "ot", [((6.0, 5.0), 300)],
                {"test": translation("iwslt14", "ot_seq", sacrebleu=28.4, meteor=0.4)})
    crafted_run(root / "coco" / "gjs", [((4.0, 3.0), 7)],
                {"test": {"task": "captioning", "recipe": "coco", "criterion": "gjs",
                          "metrics": {"cider": 0.95, "bleu4": 0.3}}})
    crafted_run(root / "multi30k" / "cot", [((7.0, 6.0), 11)])
    return root


EXPECTED_TABLES = """\
### captioning, test split

{legend}

| criterion | seed | cider | bleu4 | hypotheses | updates | train s | run |
|---|---:|---:|---:|---:|---:|---:|---|
| gjs | — | 0.9500 | 0.3000 | 1000 | 100 | 7 | coco/gjs |

### translation, test split

{legend} {interval_note}

| criterion | recipe | seed | sacrebleu | Δ sacrebleu vs MLE [95% CI] | meteor | Δ meteor vs MLE [95% CI] | hypotheses | updates | train s | run |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
| ot_seq | iwslt14 | — | 28.40 | — | 0.4000 | — | 1000 | 100 | 300 | iwslt/ot |
| label_smoothed_cross_entropy | multi30k | — | 35.00 | — | 0.5500 | — | 1000 | 200 | 81 | multi30k/mle |
| ot_seq | multi30k | — | 36.25 | +1.25 (no CI, note 1) | 0.5000 | -0.0500 (no CI, note 1) | 1000 | 200 | 102 | multi30k/ot |

Notes:

1. no interval against multi30k/mle: {runs}/multi30k/ot/generate-test.txt is missing.

### translation, valid split

{legend} {interval_note}

| criterion | seed | sacrebleu | Δ sacrebleu vs MLE [95% CI] | meteor | Δ meteor vs MLE [95% CI] | hypotheses | updates | train s | run |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
| label_smoothed_cross_entropy | — | 37.50 | — | 0.6000 | — | 1000 | 200 | 81 | multi30k/mle |

### Unfinished runs (no scores_*.json)

| run | updates | train s |
|---|---:|---:|
| multi30k/cot | 100 | 11 |
"""


def test_tables_hold_the_numbers_put_in(runs, tmp_path, capsys):
    out = tmp_path / "results.md"
    collect_results.main([str(runs), "--out", str(out)])
    expected = EXPECTED_TABLES.format(legend=results_tables.LEGEND, runs=runs,
                                      interval_note=results_tables.interval_note(BootstrapSettings()))
    assert out.read_text() == expected
    assert capsys.readouterr().out == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md", "runs"]  # no temporary left


def test_run_folders_given_one_by_one_keep_their_names(runs):
    found = results_tables.find_runs([runs / "multi30k" / "ot", runs / "multi30k", runs / "multi30k" / "cot"])
    # a folder reached twice is counted once, under the name it was first given
    assert [run.name for run in found] == ["ot", "cot", "mle"]
    assert [run.scores for run in found if run.name == "cot"] == [[]]


def test_without_the_mle_run_of_its_seed_a_run_is_compared_with_a_mean_without_interval(tmp_path):
    for seed, bleu in enumerate((30.0, 31.0, 35.5), start=1):
        crafted_run(tmp_path / f"mle_seed{seed}", [((5.0, 4.0), 1)], {"test": translation("m", MLE, bleu=bleu)})
    crafted_run(tmp_path / "ot_seed4", [((5.0, 4.0), 1)], {"test": translation("m", "ot_seq", bleu=33.0)})
    crafted_run(tmp_path / "unseeded_mle_a", [((5.0, 4.0), 1)], {"test": translation("u", MLE, bleu=20.0)})
    crafted_run(tmp_path / "unseeded_mle_b", [((5.0, 4.0), 1)], {"test": translation("u", MLE, bleu=21.0)})
    crafted_run(tmp_path / "unseeded_ot", [((5.0, 4.0), 1)], {"test": translation("u", "ot_seq", bleu=22.0)})
    markdown = results_tables.results_markdown(results_tables.find_runs([tmp_path]))
    assert "| ot_seq | m | 4 | 33.00 | +0.83 (no CI, note 1) | 1000 |" in markdown  # 33 - 32.1667
    assert "| ot_seq | u | — | 22.00 | +1.50 (no CI, note 2) | 1000 |" in markdown
    assert (f"1. no `{MLE}` run of recipe m with seed 4: difference to the mean of the recipe's 3 "
            f"(seeds 1, 2, 3), no interval.\n2. 2 `{MLE}` runs of recipe u with seed unknown: "
            f"difference to their mean, no interval.") in markdown


def test_configurations_run_several_times_get_mean_deviation_and_range(tmp_path):
    for seed, (bleu, chrf) in enumerate(((30.0, 0.5), (31.0, 0.75), (35.0, 1.0))):
        crafted_run(tmp_path / f"mle_seed{seed}", [((5.0, 4.0), 1)],
                    {"test": translation("m", MLE, bleu=bleu, chrf=chrf)})
    crafted_run(tmp_path / "ot" / "seed1", [((5.0, 4.0), 1)], {"test": translation("m", "ot_seq", bleu=33.0)})
    crafted_run(tmp_path / "ot" / "seed2", [((5.0, 4.0), 1)],
                {"test": translation("m", "ot_seq", bleu=36.0, chrf=0.25)})
    # one criterion, two configurations: averaged apart, the unrepeated one left out
    crafted_run(tmp_path / "gjs_copied-seed1", [((5.0, 4.0), 1)], {"test": translation("m", "gjs", bleu=20.0)})
    crafted_run(tmp_path / "gjs_copied-seed2", [((5.0, 4.0), 1)], {"test": translation("m", "gjs", bleu=22.0)})
    crafted_run(tmp_path / "gjs_random_seed1", [((5.0, 4.0), 1)], {"test": translation("m", "gjs", bleu=2.0)})
    markdown = results_tables.results_markdown(results_tables.find_runs([tmp_path]))
    spread = markdown.split(results_tables.SPREAD_NOTE)[1].strip().splitlines()
    # sample standard deviations: sqrt(((-2)^2 + (-1)^2 + 3^2) / 2) = sqrt(7); sqrt(2 * 1.5^2) = 2.1213
    assert spread[2:] == [
        "| gjs | gjs_copied | m | 2 | 21.00 ± 1.41 (20.00–22.00) | — |",
        "| label_smoothed_cross_entropy | mle | m | 3 | 32.00 ± 2.65 (30.00–35.00) | 0.75 ± 0.25 (0.50–1.00) |",
        "| ot_seq | ot | m | 2 | 34.50 ± 2.12 (33.00–36.00) | — |",  # chrf from one run only
    ]


def test_no_run_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert one_line_error(capsys, collect_results.main, [str(tmp_path / "empty")]).endswith(
        f"error: no run folder (train.log or scores_*.json) in {tmp_path / 'empty'}")


def test_an_unreadable_scores_file_is_named_in_one_line_and_nothing_is_written(runs, tmp_path, capsys):
    scores = runs / "multi30k" / "ot" / "scores_test.json"
    text = scores.read_text()
    out = tmp_path / "results.md"
    scores.write_text(text[:len(text) // 2])  # a copy cut short
    assert f"error: {scores}: not a readable scores file: " in one_line_error(
        capsys, collect_results.main, [str(runs), "--out", str(out)])
    scores.write_text(json.dumps({key: value for key, value in json.loads(text).items() if key != "hypotheses"}))
    assert one_line_error(capsys, collect_results.main, [str(runs), "--out", str(out)]).endswith(
        f"error: {scores}: not a scores file: no hypotheses")
    assert not out.exists()
    # a byte that is not UTF-8 in a training log's plain text is no reason to stop
    scores.write_text(text)
    with open(runs / "multi30k" / "mle" / "train.log", "ab") as log:
        log.write(b"killed while writing \xe2\x82\n")
    collect_results.main([str(runs), "--out", str(out)])
    assert out.read_text() == EXPECTED_TABLES.format(legend=results_tables.LEGEND, runs=runs,
                                                     interval_note=results_tables.interval_note(BootstrapSettings()))


def test_repeated_lines_and_plain_text_are_read_once():
    log = parse_train_log(crafted_log([((5.0, 4.0), 40), ((3.5, 3.0), 41)]).splitlines())
    assert curve(log.train_inner, "loss") == ([50, 100, 150, 200], [5.0, 4.0, 3.5, 3.0])
    assert curve(log.validation["valid"], "bleu") == ([50, 100, 150, 200], [11.0, 12.0, 21.0, 22.0])
    assert list(log.epochs) == [1, 2]
    assert (log.num_updates, log.train_seconds) == (200, 81)


def test_a_restart_replaces_what_the_earlier_attempt_logged_after_its_checkpoint():
    # attempt 1 reaches update 40 in epoch 2; attempt 2 resumes from the
    # checkpoint at update 20 (end of epoch 1) and is killed at update 30
    first = [
        stats_line(1, loss=9, num_updates=10), stats_line(1, "valid", loss=9.5, num_updates=10),
        stats_line(1, loss=8, num_updates=20), stats_line(1, "valid", loss=8.5, num_updates=20),
        stats_line(1, "train", loss=8, num_updates=20, train_wall=5),
        stats_line(2, loss=7, num_updates=30), stats_line(2, "valid", loss=7.5, num_updates=30),
        stats_line(2, loss=6, num_updates=40), stats_line(2, "valid", loss=6.5, num_updates=40),
        stats_line(2, "train", loss=6, num_updates=40, train_wall=6),
    ]
    second = PREAMBLE + [stats_line(2, loss=7.25, num_updates=30)]
    log = parse_train_log(first + second)
    assert curve(log.train_inner, "loss") == ([10, 20, 30], [9, 8, 7.25])
    assert curve(log.validation["valid"], "loss") == ([10, 20], [9.5, 8.5])
    assert list(log.epochs) == [1]
    assert (log.num_updates, log.train_seconds) == (30, 5)


# the checkpoint the second attempt of the real run resumes from
RESUMED_UPDATE = 5


@pytest.fixture(scope="module")
def restarted_run(toy_data_bin, tmp_path_factory):
    """A tiny fairseq-train run to 12 updates, then a second attempt resumed
    from its checkpoint at update 5 with another learning rate, to update 14,
    logging into the same file. Returns the run folder and the log's length
    after the first attempt."""
    run = tmp_path_factory.mktemp("restarted") / "ot_seq"
    log = run / "train.log"
    run.mkdir()

    def train(lr, max_update):
        run_cli(
            "fairseq-ot-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu", *TINY_TRANSFORMER,
            "--criterion", "ot_seq", "--ot-weight", "0.1", "--optimizer", "adam", "--lr", lr,
            "--max-tokens", "2000", "--max-update", max_update, "--seed", "1",
            "--log-interval", "2", "--validate-interval-updates", "5",
            "--save-interval-updates", str(RESUMED_UPDATE), "--no-epoch-checkpoints",
            "--eval-bleu", "--eval-bleu-args", '{"beam": 1, "max_len_b": 10}',
            "--save-dir", run / "checkpoints", "--log-format", "json", "--log-file", log,
        )

    train("0.002", 12)
    first_attempt_length = len(log.read_text())
    checkpoints = run / "checkpoints"
    shutil.copy(checkpoints / f"checkpoint_1_{RESUMED_UPDATE}.pt", checkpoints / "checkpoint_last.pt")
    train("0.0005", 14)
    return run, first_attempt_length


def logged(text, stat, prefix=""):
    """{update: value} of ``stat`` in the lines of ``text``, the last line
    winning, read with a regular expression rather than a JSON parser."""
    key = f"{prefix}_" if prefix else ""
    found = re.findall(rf'"{key}{stat}": "([^"]+)".*"{key}num_updates": "(\d+)"', text)
    return {int(update): float(value) for value, update in found}


def test_parser_on_a_real_restarted_fairseq_log(restarted_run):
    run, first_length = restarted_run
    text = (run / "train.log").read_text()
    first, second = text[:first_length], text[first_length:]
    assert second.count('"num_updates": "6"') >= 1  # the second attempt logged update 6 again

    log = read_train_log(run / "train.log")
    for stat in ("loss", "ot_loss"):
        kept = {u: v for u, v in logged(first, stat).items() if u <= RESUMED_UPDATE} | logged(second, stat)
        assert curve(log.train_inner, stat) == (list(kept), list(kept.values()))
    assert list(log.train_inner) == [2, 4, 6, 8, 10, 12, 14]
    for stat in ("loss", "bleu"):
        kept = {u: v for u, v in logged(first, stat, "valid").items() if u <= RESUMED_UPDATE}
        kept |= logged(second, stat, "valid")
        assert curve(log.validation["valid"], stat) == (sorted(kept), [kept[u] for u in sorted(kept)])
    epoch_walls = dict(re.findall(r'"epoch": (\d+), "train_loss".*"train_train_wall": "(\d+)"', second))
    assert log.num_updates == 14
    assert log.train_seconds == sum(float(wall) for wall in epoch_walls.values())


def test_plot_has_a_line_per_run_that_logs_the_metric(runs, restarted_run, tmp_path, capsys):
    run_dirs = [runs / "multi30k" / "mle", runs / "iwslt" / "ot", restarted_run[0]]
    figure, notes = training_curves.plot_training_curves(run_dirs, ["loss", "nll_loss", "bleu", "valid_loss"])
    lines = {ax.get_title(): [line.get_label() for line in ax.get_lines()] for ax in figure.axes}
    assert lines == {
        "loss (training)": ["mle", "ot", "ot_seq"],
        "nll_loss (training)": ["ot_seq"],  # the crafted logs have no nll_loss
        "valid_bleu (validation)": ["mle", "ot", "ot_seq"],
        "valid_loss (validation)": ["mle", "ot", "ot_seq"],
    }
    assert len(notes) == 2 and all("nll_loss" in note for note in notes)
    assert figure.axes[2].get_lines()[0].get_xydata().tolist() == [[50, 11], [100, 12], [150, 21], [200, 22]]

    png = tmp_path / "curves.png"
    plot_training_curves.main([*map(str, run_dirs), "--out", str(png), "--metrics", "loss,ot_loss"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().err == ""  # every run logs loss and ot_loss


def test_plot_names_a_metric_no_run_logs(runs, tmp_path):
    with pytest.raises(SystemExit, match=r"no run logs valid_accuracy, gnorm; metrics in these logs: loss, ot_loss, wall, valid_bleu, valid_loss"):
        training_curves.plot_training_curves([runs / "coco" / "gjs"], ["loss", "valid_accuracy", "gnorm"])
    with pytest.raises(SystemExit, match="no .*nowhere/train.log"):
        training_curves.plot_training_curves([tmp_path / "nowhere"], ["loss"])


# ---- paired bootstrap intervals against the MLE run of the same seed ----

# runs `python -m sacrebleu` (its main) and records the resampled BLEU scores
# that its paired bootstrap hands to estimate_ci: the control's, then the system's
SACREBLEU_RECORDING = """
import json, sys
import sacrebleu.significance as significance
from sacrebleu.sacrebleu import main

recorded, estimate_ci = [], significance.estimate_ci

def recording_estimate_ci(scores):
    recorded.append([float(score) for score in scores])
    return estimate_ci(scores)

significance.estimate_ci = recording_estimate_ci
out = sys.argv.pop(1)
try:
    main()
finally:
    with open(out, "w") as stream:
        json.dump(recorded, stream)
"""


def configuration_line(seed):
    """The configuration line fairseq-train writes first into its --log-file."""
    return (f"{{'_name': None, 'common': {{'_name': None, 'log_format': 'json', 'seed': {seed}, "
            f"'cpu': True}}, 'model': Namespace(arch='transformer', seed={seed})}}")


def perturbed(line, rate, rng):
    """``line`` with each word replaced at ``rate`` by a German word of the corpus."""
    return " ".join(rng.choice(sorted(EN_DE.values())) if rng.random() < rate else word for word in line.split())


def scored_run(folder, prepared, criterion, hypotheses, *, flags=(), logged_seed=None):
    """A translation run folder: fairseq-generate output of ``hypotheses``
    (tokenized), its scores as run_text_recipe.py records them (fairseq flags
    ``flags`` after "--"), and with ``logged_seed`` a train.log."""
    folder.mkdir(parents=True)
    output = folder / "generate-test.txt"
    output.write_text("".join(f"S-{i}\tsource\nD-{i}\t-0.5\t{h}\n" for i, h in enumerate(hypotheses)))
    if logged_seed is not None:
        (folder / "train.log").write_text(configuration_line(logged_seed) + "\n" + crafted_log([((5.0, 4.0), 3)]))
    metrics, count = text_scoring.score("bleu", output, prepared, "test")
    command = ["scripts/run_text_recipe.py", "translation", str(prepared), str(folder), criterion]
    write_scores(folder, "test", task="translation", recipe="translation", criterion=criterion, metrics=metrics,
                 hypotheses=count, command=shlex.join(command + (["--", *flags] if flags else [])))
    return folder


@pytest.fixture(scope="module")
def prepared_multi30k(tmp_path_factory):
    return prepare_generated_multi30k(tmp_path_factory.mktemp("paired_multi30k"))


@pytest.fixture(scope="module")
def seeded_runs(prepared_multi30k, tmp_path_factory):
    """MLE and ot_seq runs of seeds 1 and 2 on the 37 test sentences, the
    seed told by train.log (seed 1), the recorded --seed (MLE, seed 2) and
    the folder's name (ot_seq, seed 2)."""
    root = tmp_path_factory.mktemp("seeded") / "runs"
    tokenized = (prepared_multi30k / "tok" / "test.de").read_text().splitlines()

    def hypotheses(rate, seed):
        rng = random.Random(seed)
        return [perturbed(line, rate, rng) for line in tokenized]

    scored_run(root / "mle", prepared_multi30k, MLE, hypotheses(0.35, 1), logged_seed=1)
    scored_run(root / "ot_seq", prepared_multi30k, "ot_seq", hypotheses(0.25, 2), logged_seed=1)
    scored_run(root / "mle_2", prepared_multi30k, MLE, hypotheses(0.15, 3), flags=["--lr", "1", "--seed", "2"])
    scored_run(root / "ot_seq_seed2", prepared_multi30k, "ot_seq", hypotheses(0.3, 4))
    return root


def table_rows(markdown):
    """{run name: its row's cells} of the tables of ``markdown``."""
    rows = [line.strip("|").split(" | ") for line in markdown.splitlines() if line.startswith("| ")]
    return {row[-1].strip(): [cell.strip() for cell in row] for row in rows}


def sacrebleu_paired_bs(prepared, control, system, tmp_path):
    """The cell "Δ [95% CI]" that `sacrebleu REF -i CONTROL SYSTEM -m bleu
    --paired-bs` gives for two run folders, from its scores and its
    resampled scores on their detokenized hypotheses, and its interval."""
    files = []
    for run in (control, system):
        hypotheses, _ = text_scoring.prepared_hypotheses(run / "generate-test.txt", prepared, "test")
        files.append(tmp_path / f"{run.name}.detok")
        files[-1].write_text("".join(line + "\n" for line in hypotheses))
    recorded = tmp_path / "resampled.json"
    env = {k: v for k, v in os.environ.items() if k != "SACREBLEU_SEED"}
    env.update(SACREBLEU_FORMAT="json", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", SACREBLEU_RECORDING, str(recorded), str(prepared / "references" / "test.de"),
         "-i", *map(str, files), "-m", "bleu", "--paired-bs", "--quiet"],
        env=env, capture_output=True, text=True, check=True)
    control_result, system_result = json.loads(result.stdout)
    control_scores, system_scores = json.loads(recorded.read_text())
    differences = np.sort(np.array(system_scores) - np.array(control_scores))
    assert len(differences) == 1000  # sacrebleu's default --paired-bs-n
    observed = system_result["BLEU"]["score"] - control_result["BLEU"]["score"]
    lower, upper = differences[25], differences[-26]  # 1000 // 40 dropped on each side
    return f"{observed:+.2f} [{lower:+.2f}, {upper:+.2f}]", (lower, upper)


def test_runs_pair_with_the_mle_run_of_their_seed_and_bleu_intervals_are_sacrebleus(
        seeded_runs, prepared_multi30k, tmp_path, capsys):
    collect_results.main([str(seeded_runs)])
    rows = table_rows(capsys.readouterr().out)
    assert rows["ot_seq"][:2] == ["ot_seq", "1"] and rows["ot_seq_seed2"][:2] == ["ot_seq", "2"]
    assert rows["mle"][:2] == [MLE, "1"] and rows["mle_2"][:2] == [MLE, "2"]
    for system, control in [("ot_seq", "mle"), ("ot_seq_seed2", "mle_2")]:
        expected, (lower, upper) = sacrebleu_paired_bs(
            prepared_multi30k, seeded_runs / control, seeded_runs / system, tmp_path)
        assert rows[system][3] == expected
        comparison = paired_comparison((seeded_runs / system, read_scores(seeded_runs / system / "scores_test.json")),
                                       (seeded_runs / control, read_scores(seeded_runs / control / "scores_test.json")))
        difference = comparison.intervals["sacrebleu"].difference
        assert (difference.lower, difference.upper) == (lower, upper)  # to the bit
    # the other seed's MLE run would give another interval
    assert sacrebleu_paired_bs(prepared_multi30k, seeded_runs / "mle_2", seeded_runs / "ot_seq", tmp_path)[0] \
        != rows["ot_seq"][3]


def test_missing_or_changed_files_give_the_difference_without_interval_and_why(seeded_runs, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(seeded_runs, runs)
    (runs / "mle_2" / "generate-test.txt").unlink()
    # a generate output that no longer gives the recorded score
    changed = read_scores(runs / "ot_seq" / "scores_test.json")
    actual = changed["metrics"]["sacrebleu"]
    (runs / "ot_seq" / "scores_test.json").write_text(json.dumps(dict(changed, metrics={"sacrebleu": 99.0})))
    collect_results.main([str(runs)])
    markdown = capsys.readouterr().out
    rows = table_rows(markdown)
    recorded = {name: read_scores(runs / name / "scores_test.json")["metrics"]["sacrebleu"]
                for name in ("mle", "mle_2", "ot_seq_seed2")}
    assert rows["ot_seq"][3] == f"{99.0 - recorded['mle']:+.2f} (no CI, note 1)"
    assert rows["ot_seq_seed2"][3] == f"{recorded['ot_seq_seed2'] - recorded['mle_2']:+.2f} (no CI, note 2)"
    assert (f"1. no interval for sacrebleu against mle: {runs}/ot_seq/generate-test.txt scores sacrebleu "
            f"{actual:.4f}, its scores_test.json records 99.0000.\n"
            f"2. no interval against mle_2: {runs}/mle_2/generate-test.txt is missing.") in markdown


def test_runs_scored_on_different_test_sets_get_no_difference_at_all(seeded_runs, prepared_multi30k, tmp_path,
                                                                     capsys):
    runs = tmp_path / "runs"
    shutil.copytree(seeded_runs / "mle", runs / "mle")
    # as many test items, but other references: the same corpus with its test targets changed
    other = tmp_path / "other"
    shutil.copytree(prepared_multi30k, other)
    references = other / "references" / "test.de"
    references.write_text("".join(f"{line} nein\n" for line in references.read_text().splitlines()))
    scored_run(runs / "ot_seq", other, "ot_seq", (other / "tok" / "test.de").read_text().splitlines(),
               logged_seed=1)
    # 36 of the 37 items: no generate output, no command naming references, only the count tells
    (runs / "gjs").mkdir()
    (runs / "gjs" / "train.log").write_text(configuration_line(1) + "\n" + crafted_log([((5.0, 4.0), 3)]))
    write_scores(runs / "gjs", "test", task="translation", recipe="translation", criterion="gjs",
                 metrics={"sacrebleu": 12.5}, hypotheses=36, command="generate and score")
    collect_results.main([str(runs)])
    markdown = capsys.readouterr().out
    rows = table_rows(markdown)
    assert rows["gjs"][3] == "— (note 1)" and rows["ot_seq"][3] == "— (note 2)"
    assert (f"1. no difference to mle: the runs were scored on different test sets, of 36 and 37 items.\n"
            f"2. no difference to mle: the runs were scored on different test sets, the references of "
            f"{other} and {prepared_multi30k}.") in markdown


def test_another_folder_with_the_same_test_references_is_the_same_test_set(seeded_runs, prepared_multi30k,
                                                                           tmp_path, capsys):
    # a sequence-level KD corpus: other training targets, the original's test split
    copy = tmp_path / "seqkd"
    shutil.copytree(prepared_multi30k, copy)
    (copy / "tok" / "train.de").write_text("ersetzt\n")
    runs = tmp_path / "runs"
    shutil.copytree(seeded_runs / "mle", runs / "mle")
    lines = (seeded_runs / "ot_seq" / "generate-test.txt").read_text().splitlines()
    scored_run(runs / "seqkd", copy, "seqkd", [line.split("\t")[2] for line in lines[1::2]], logged_seed=1)
    collect_results.main([str(runs)])
    rows = table_rows(capsys.readouterr().out)
    expected, _ = sacrebleu_paired_bs(prepared_multi30k, runs / "mle", seeded_runs / "ot_seq", tmp_path)
    assert rows["seqkd"][3] == expected


def test_plot_shows_each_difference_with_the_interval_of_its_table_row(seeded_runs, prepared_multi30k, tmp_path,
                                                                       capsys):
    png = tmp_path / "plots" / "differences.png"
    points = collect_results.main([str(seeded_runs), "--plot", str(png)])
    rows = table_rows(capsys.readouterr().out)
    plotted = {name: (observed, lower, upper)
               for name, _, observed, lower, upper in points["translation", "test", "sacrebleu"]}
    assert set(plotted) == {"ot_seq", "ot_seq_seed2"}  # the MLE runs are the zero line
    for system, control in [("ot_seq", "mle"), ("ot_seq_seed2", "mle_2")]:
        cell, (lower, upper) = sacrebleu_paired_bs(prepared_multi30k, seeded_runs / control, seeded_runs / system,
                                                   tmp_path)
        assert rows[system][3] == cell and plotted[system][1:] == (lower, upper)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_any_interval_is_refused_in_one_line(seeded_runs, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(seeded_runs / "mle", runs / "mle")
    with pytest.raises(SystemExit) as exit_info:
        collect_results.main([str(runs), "--plot", str(tmp_path / "d.png")])
    assert exit_info.value.code == 2 and not (tmp_path / "d.png").exists()
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--plot: no run of these has a difference" in error


def test_the_seed_comes_from_train_log_then_the_scores_command_then_the_name():
    log = parse_train_log([configuration_line(7), *PREAMBLE, configuration_line(8)])
    assert log.seed == 8  # the last attempt's
    assert parse_train_log(PREAMBLE).seed is None
    commands = ["scripts/run_text_recipe.py translation P R ot_seq -- --seed 3 --lr 1 --seed=4"]
    assert run_seed("gpu/ot_seq_seed2", 5, commands) == 5
    assert run_seed("gpu/ot_seq_seed2", None, commands) == 4
    assert run_seed("seed1/ot_seq_seed-2", None, ["generate and score"]) == 2
    assert run_seed("ot_seq", None, ["generate and score"]) is None


def aeslc_like_raw(folder, subjects):
    """Raw AESLC files whose test subjects are ``subjects``."""
    words = [subject.split() for subject in subjects]
    for stem in ("train", "dev", "test"):
        pairs = words if stem == "test" else [random.Random(k).sample(VOCABULARY, 4) for k in range(60)]
        emails = [" ".join(pair * 3) + " ." for pair in pairs]
        write_lines(folder / f"{stem}.email.gz", emails)
        write_lines(folder / f"{stem}.subject.gz", [" ".join(pair) for pair in pairs])
    return folder


def summarization_run(folder, prepared, criterion, hypotheses):
    folder.mkdir(parents=True)
    output = folder / "generate-test.txt"
    output.write_text("".join(f"D-{i}\t-0.5\t{h}\n" for i, h in enumerate(hypotheses)))
    metrics, count = text_scoring.score("rouge", output, prepared, "test")
    command = shlex.join(["scripts/run_text_recipe.py", "summarization", str(prepared), str(folder), criterion])
    write_scores(folder, "test", task="summarization", recipe="summarization", criterion=criterion,
                 metrics=metrics, hypotheses=count, command=command)


VOCABULARY = "apple bread chair table garden window river mountain pencil candle".split()


def test_a_constant_rouge_gain_on_every_item_is_a_zero_width_interval_at_the_gain(tmp_path, capsys):
    # four-word subjects; the control gets 1 or 2 of an item's words right,
    # the system 2 more, so its ROUGE-1 F1 is 2/4 higher on every item
    rng = random.Random(0)
    subjects = [rng.sample(VOCABULARY, 4) for _ in range(30)]
    right = [rng.choice([1, 2]) for _ in subjects]
    prepared = tmp_path / "prepared"
    script_main("prepare_aeslc")(["--raw-dir", str(aeslc_like_raw(tmp_path / "raw", map(" ".join, subjects))),
                                  "--out-dir", str(prepared), "--bpe-merges", "50"])
    runs = tmp_path / "runs"
    for criterion, extra in [(MLE, 0), ("ot_seq", 2)]:
        hypotheses = [" ".join(words[:k + extra] + ["zzz"] * (4 - k - extra)) for words, k in zip(subjects, right)]
        summarization_run(runs / criterion, prepared, criterion, hypotheses)
    collect_results.main([str(runs)])
    rows = table_rows(capsys.readouterr().out)
    system_rouge1 = 100 * sum(k + 2 for k in right) / (4 * len(right))
    assert rows["ot_seq"][1:4] == ["—", f"{system_rouge1:.2f}", "+50.00 [+50.00, +50.00]"]
    records = [(runs / name, read_scores(runs / name / "scores_test.json")) for name in ("ot_seq", MLE)]
    rouge1 = paired_comparison(*records).intervals["rouge1_f1"]
    assert rouge1.difference.lower == pytest.approx(50, abs=1e-9)
    assert rouge1.difference.upper == pytest.approx(50, abs=1e-9)
    assert rouge1.control.half_width > 1  # the item scores vary: the gain is what is constant


def captioning_run(folder, data, criterion, hypotheses, data_flag):
    """A captioning run folder scored as score_captions.py --no-meteor
    records it, with a METEOR score added to its record."""
    folder.mkdir(parents=True)
    output = folder / "generate-test.txt"
    output.write_text("".join(f"H-{i}\t-0.5\t{h}\nD-{i}\t-0.5\t{h}\n" for i, h in enumerate(hypotheses)))
    references = [refs for _, refs in caption_scoring.read_references(data, "test")]
    metrics = dict(caption_scoring.caption_scores(hypotheses, references, meteor=False), meteor=20.0)
    command = ["fairseq_ot/cli/score_captions.py", str(output), *data_flag, "--run-dir", str(folder),
               "--criterion", criterion, "--no-meteor"]
    write_scores(folder, "test", task="captioning", recipe="captioning", criterion=criterion, metrics=metrics,
                 hypotheses=len(hypotheses), command=shlex.join(command))


def brute_force_cider_interval(system, control, references, n_resamples, seed=12345):
    """The 95% interval of CIDEr x100 differences, pycocoevalcap's Cider
    rerun on each resampled test set (sacrebleu's draws)."""
    differences = []
    for indices in np.random.default_rng(seed).choice(len(references), size=(n_resamples, len(references))):
        gts = {key: references[i] for key, i in enumerate(indices)}
        scores = [Cider().compute_score(gts, {key: [hypotheses[i]] for key, i in enumerate(indices)})[0]
                  for hypotheses in (system, control)]
        differences.append(100 * (scores[0] - scores[1]))
    differences = np.sort(differences)
    return differences[n_resamples // 40], differences[-1 - n_resamples // 40]


def test_caption_intervals_resample_cider_and_skip_meteor_on_request(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    images = [(f"{i}.jpg", KINDS[i % len(KINDS)]) for i in range(12)]
    (data / "test.images.txt").write_text("".join(f"{name}\n" for name, refs in images for _ in refs))
    (data / "test.references.txt").write_text("".join(f"{ref.lower()}\n" for _, refs in images for ref in refs))
    system = [refs[i % 5].lower().rsplit(" ", 2)[0] for i, (_, refs) in enumerate(images)]
    control = [KINDS[(i + i % 2) % len(KINDS)][0].lower() for i in range(len(images))]
    runs = tmp_path / "runs"
    captioning_run(runs / "gjs", data, "gjs", system, ["--data", str(data)])
    captioning_run(runs / MLE, data, MLE, control, [f"--data={data}"])
    collect_results.main([str(runs), "--no-meteor", "--resamples", "200"])
    markdown = capsys.readouterr().out
    cells = dict(zip(markdown.splitlines()[4].strip("|").split(" | "), table_rows(markdown)["gjs"]))
    normalize = caption_scoring.normalize
    lower, upper = brute_force_cider_interval([normalize(h) for h in system], [normalize(h) for h in control],
                                              [[normalize(ref) for ref in refs] for _, refs in images], 200)
    observed = (read_scores(runs / "gjs" / "scores_test.json")["metrics"]["cider"]
                - read_scores(runs / MLE / "scores_test.json")["metrics"]["cider"])
    assert cells["Δ cider vs MLE [95% CI]"].strip() == f"{observed:+.2f} [{lower:+.2f}, {upper:+.2f}]"
    assert all(re.fullmatch(r"[+-]\d+\.\d\d \[.*\]", cells[f"Δ bleu{n} vs MLE [95% CI]"].strip()) for n in range(1, 5))
    assert cells["Δ meteor vs MLE [95% CI]"].strip() == "+0.00 (no CI, note 1)"
    assert f"1. no interval for meteor against {MLE}: --no-meteor was given." in markdown

"""scripts/collect_results.py, scripts/plot_training_curves.py and the
fairseq JSON train-log parser they share, on crafted run folders whose
numbers are known and on the log of a real, restarted fairseq-train run."""

import json
import re
import shutil

import pytest

from fairseq_ot.evaluation.scores import write_scores
from fairseq_ot.evaluation.train_log import curve, parse_train_log, read_train_log

from conftest import TINY_TRANSFORMER, USER_DIR, load_script, run_cli

MLE = "label_smoothed_cross_entropy"




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

| criterion | cider | bleu4 | hypotheses | updates | train s | run |
|---|---:|---:|---:|---:|---:|---|
| gjs | 0.9500 | 0.3000 | 1000 | 100 | 7 | coco/gjs |

### translation, test split

{legend} Δ vs MLE: difference to the `label_smoothed_cross_entropy` run of the same recipe.

| criterion | recipe | sacrebleu | Δ sacrebleu vs MLE | meteor | Δ meteor vs MLE | hypotheses | updates | train s | run |
|---|---|---:|---:|---:|---:|---:|---:|---:|---|
| ot_seq | iwslt14 | 28.40 | — | 0.4000 | — | 1000 | 100 | 300 | iwslt/ot |
| label_smoothed_cross_entropy | multi30k | 35.00 | — | 0.5500 | — | 1000 | 200 | 81 | multi30k/mle |
| ot_seq | multi30k | 36.25 | +1.25 | 0.5000 | -0.0500 | 1000 | 200 | 102 | multi30k/ot |

### translation, valid split

{legend} Δ vs MLE: difference to the `label_smoothed_cross_entropy` run of the same recipe.

| criterion | sacrebleu | Δ sacrebleu vs MLE | meteor | Δ meteor vs MLE | hypotheses | updates | train s | run |
|---|---:|---:|---:|---:|---:|---:|---:|---|
| label_smoothed_cross_entropy | 37.50 | — | 0.6000 | — | 1000 | 200 | 81 | multi30k/mle |

### Unfinished runs (no scores_*.json)

| run | updates | train s |
|---|---:|---:|
| multi30k/cot | 100 | 11 |
"""


def test_tables_hold_the_numbers_put_in(runs, tmp_path, capsys):
    out = tmp_path / "results.md"
    collect_results.main([str(runs), "--out", str(out)])
    expected = EXPECTED_TABLES.format(legend=collect_results.LEGEND)
    assert out.read_text() == expected
    assert capsys.readouterr().out == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md", "runs"]  # no temporary left


def test_run_folders_given_one_by_one_keep_their_names(runs):
    found = collect_results.find_runs([runs / "multi30k" / "ot", runs / "multi30k", runs / "multi30k" / "cot"])
    # a folder reached twice is counted once, under the name it was first given
    assert [run.name for run in found] == ["ot", "cot", "mle"]
    assert [run.scores for run in found if run.name == "cot"] == [[]]


def test_mle_of_several_seeds_is_averaged(tmp_path):
    for seed, bleu in enumerate((30.0, 31.0, 35.5)):
        crafted_run(tmp_path / f"mle{seed}", [((5.0, 4.0), 1)], {"test": translation("m", MLE, bleu=bleu)})
    crafted_run(tmp_path / "ot", [((5.0, 4.0), 1)], {"test": translation("m", "ot_seq", bleu=33.0)})
    markdown = collect_results.results_markdown(collect_results.find_runs([tmp_path]))
    assert "to the mean of its runs for m (3 runs)." in markdown
    assert "| ot_seq | 33.00 | +0.83 | 1000 |" in markdown  # 33 - 32.1667


def test_criteria_run_several_times_get_mean_deviation_and_range(tmp_path):
    for seed, (bleu, chrf) in enumerate(((30.0, 0.5), (31.0, 0.75), (35.0, 1.0))):
        crafted_run(tmp_path / f"mle{seed}", [((5.0, 4.0), 1)], {"test": translation("m", MLE, bleu=bleu, chrf=chrf)})
    crafted_run(tmp_path / "ot1", [((5.0, 4.0), 1)], {"test": translation("m", "ot_seq", bleu=33.0)})
    crafted_run(tmp_path / "ot2", [((5.0, 4.0), 1)], {"test": translation("m", "ot_seq", bleu=36.0, chrf=0.25)})
    crafted_run(tmp_path / "gjs", [((5.0, 4.0), 1)], {"test": translation("m", "gjs", bleu=20.0)})
    markdown = collect_results.results_markdown(collect_results.find_runs([tmp_path]))
    spread = markdown.split(collect_results.SPREAD_NOTE)[1].strip().splitlines()
    # sample standard deviations: sqrt(((-2)^2 + (-1)^2 + 3^2) / 2) = sqrt(7); sqrt(2 * 1.5^2) = 2.1213
    assert spread[2:] == [
        "| label_smoothed_cross_entropy | m | 3 | 32.00 ± 2.65 (30.00–35.00) | 0.75 ± 0.25 (0.50–1.00) |",
        "| ot_seq | m | 2 | 34.50 ± 2.12 (33.00–36.00) | — |",  # chrf from one run only
    ]


def test_no_run_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no run folder"):
        collect_results.main([str(tmp_path / "empty")])


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
    figure, notes = plot_training_curves.plot_training_curves(run_dirs, ["loss", "nll_loss", "bleu", "valid_loss"])
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
        plot_training_curves.plot_training_curves([runs / "coco" / "gjs"], ["loss", "valid_accuracy", "gnorm"])
    with pytest.raises(SystemExit, match="no .*nowhere/train.log"):
        plot_training_curves.plot_training_curves([tmp_path / "nowhere"], ["loss"])

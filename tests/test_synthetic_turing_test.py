"""The synthetic Turing test's training budget: the planned updates, or
fairseq's cumulative training time, resumed and extended from the
checkpoints, with the scheduled sampling slope of the updates its first
launch planned; the temperature sweep of its models against teacher forcing
of the tempered model."""

import json
import math
import re
import subprocess

import pytest
import torch

from fairseq_ot.evaluation.lm_sampling import load_generator
from fairseq_ot.synthetic import turing_test as synthetic
from fairseq_ot.synthetic.evaluation import load_split_words
from fairseq_ot.synthetic.lm_data import build_oracle_lm_data
from fairseq_ot.synthetic.oracle import OracleLSTM

from conftest import REPO, load_script, one_line_error


def option(command, flag):
    return command[command.index(flag) + 1]


def cumulative_seconds_and_updates(checkpoint):
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return state["extra_state"]["previous_training_time"], state["optimizer_history"][-1]["num_updates"]


def small_oracle_run(tmp_path, method):
    """(data-bin, run folder, its checkpoint_last.pt) of `method` on a small random oracle's data."""
    oracle = OracleLSTM.random(seed=3, vocab=50)
    data_bin = build_oracle_lm_data(oracle, tmp_path / "data", n_train=300, n_valid=64, n_test=64)
    run_dir = tmp_path / "runs" / method
    return data_bin, run_dir, run_dir / "checkpoints" / "checkpoint_last.pt"


def test_a_larger_budget_resumes_the_run_with_its_first_schedule(tmp_path):
    data_bin, run_dir, last = small_oracle_run(tmp_path, "scheduled_sampling")

    planned = {**synthetic.PLANNED_UPDATES, "scheduled_sampling": 100}
    first = synthetic.train(data_bin, "scheduled_sampling", run_dir, 0.05, "cpu", planned)
    assert [launch["returncode"] for launch in first] == [0]
    seconds_first, updates_first = cumulative_seconds_and_updates(last)
    assert 3 <= seconds_first

    assert synthetic.train(data_bin, "scheduled_sampling", run_dir, 0.05, "cpu", planned) == first

    # more minutes and more updates planned: the second launch keeps the first's slope
    launches = synthetic.train(data_bin, "scheduled_sampling", run_dir, 0.12, "cpu",
                               {**planned, "scheduled_sampling": 240})
    assert [launch["returncode"] for launch in launches] == [0, 0]
    seconds, updates = cumulative_seconds_and_updates(last)
    assert 7.2 <= seconds < seconds_first + 7.2 + 60 and updates > updates_first
    # fairseq's own report of the second launch: it started from the first's state
    loaded = re.findall(r"Loaded checkpoint .*\(epoch \d+ @ (\d+) updates\)",
                        (run_dir / "train.log").read_text())
    assert loaded == [str(updates_first)]
    # the schedule of the first budget, not one stretched over the second
    assert option(launches[1]["command"], "--ss-c") == option(launches[0]["command"], "--ss-c")
    assert option(launches[0]["command"], "--ss-c") == f"{synthetic.scheduled_sampling_slope(100):.3g}"
    assert option(launches[1]["command"], "--ss-c") != f"{synthetic.scheduled_sampling_slope(240):.3g}"
    assert [launch["planned_updates"] for launch in launches] == [100, 240]
    assert option(launches[1]["command"], "--stop-time-hours") == f"{0.12 / 60:.6f}"


def test_without_minutes_each_method_trains_exactly_its_planned_updates(tmp_path):
    data_bin, run_dir, last = small_oracle_run(tmp_path, "mle")

    planned = {**synthetic.PLANNED_UPDATES, "mle": 20}
    first = synthetic.train(data_bin, "mle", run_dir, None, "cpu", planned)
    assert [launch["returncode"] for launch in first] == [0]
    assert "--stop-time-hours" not in first[0]["command"] and option(first[0]["command"], "--max-update") == "20"
    assert cumulative_seconds_and_updates(last)[1] == 20
    assert option(first[0]["command"], "--save-interval-updates") == "2"

    assert synthetic.train(data_bin, "mle", run_dir, None, "cpu", planned) == first
    launches = synthetic.train(data_bin, "mle", run_dir, None, "cpu", {**planned, "mle": 30})
    assert [launch["planned_updates"] for launch in launches] == [20, 30]
    assert cumulative_seconds_and_updates(last)[1] == 30
    # a time budget is another budget: it launches again
    assert not synthetic.already_trained(launches[-1], 0.01, 30)


def test_the_device_flag_decides_fairseqs_cpu_flag(tmp_path):
    on_cpu = synthetic.train_command(tmp_path, "cot", tmp_path, 5, "cpu", 5)
    on_gpu = synthetic.train_command(tmp_path, "cot", tmp_path, 5, "cuda", 5)
    assert "--cpu" in on_cpu and "--cpu" not in on_gpu
    assert [arg for arg in on_cpu if arg != "--cpu"] == on_gpu


def test_the_default_plan_is_the_old_default_budgets():
    """The planned updates, counts, give the flags that the old default of
    10 minutes at the measured updates per minute (490 mle, 275 scheduled
    sampling, 110 mediator) gave."""
    def flags(method):
        command = synthetic.train_command("DATA", method, REPO, 10, "cpu",
                                          synthetic.planned_updates_of(method))
        return option(command, "--save-interval-updates"), command

    assert [flags(method)[0] for method in ("mle", "scheduled_sampling", "cot", "gjs_0.5")] == [
        "490", "275", "110", "110"]
    assert option(flags("scheduled_sampling")[1], "--ss-c") == f"{(1 - 0.7) / (275 * 10 / 2):.3g}" == "0.000218"


def test_checkpoints_are_ordered_by_updates_then_last(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("checkpoint_2_1000.pt", "checkpoint_1_98.pt", "checkpoint_1_450.pt", "checkpoint_last.pt"):
        (folder / name).touch()
    assert [path.name for path in synthetic.saved_checkpoints(tmp_path)] == [
        "checkpoint_1_98.pt", "checkpoint_1_450.pt", "checkpoint_2_1000.pt", "checkpoint_last.pt"]


def test_oracle_temperature_sweep_scores_the_tempered_model(tmp_path, capsys):
    from test_synthetic_evaluation import stepwise_mean_nll

    sweep = load_script("sweep_oracle_temperature")
    oracle = OracleLSTM.random(seed=3, vocab=50)
    data_bin = build_oracle_lm_data(oracle, tmp_path / "data", n_train=300, n_valid=64, n_test=16)
    run_dir = tmp_path / "runs" / "mle"
    assert [launch["returncode"] for launch in synthetic.train(data_bin, "mle", run_dir, 0.03, "cpu")] == [0]
    out = tmp_path / "sweep.png"
    sweep.main([str(run_dir), "--data", str(data_bin), "--out", str(out), "--temperatures", "0.5", "1", "2",
                "--samples", "50"])
    points = json.loads(out.with_suffix(".json").read_text())["points"]
    assert [p["temperature"] for p in points] == [0.5, 1.0, 2.0] and out.stat().st_size > 0
    lm = load_generator(run_dir / "checkpoints" / "checkpoint_last.pt", data_bin)
    test_words = load_split_words(data_bin, "test", lm.dictionary)
    for point in points:
        expected = stepwise_mean_nll(lm.generator, lm.dictionary, test_words, point["temperature"])
        assert math.isclose(point["nll_test"], expected, rel_tol=1e-5)
    table = out.with_suffix(".md").read_text()
    assert f"| mle | {points[0]['updates']} | {points[0]['nll_oracle']:.3f} / {points[0]['nll_test']:.3f} |" in table

    png = str(tmp_path / "bad.png")
    assert one_line_error(capsys, sweep.main, [str(run_dir), "--data", str(data_bin), "--out", png,
                                               "--temperatures", "1", "0"]
                          ).endswith("error: --temperature must be > 0, got 0.0")
    missing = tmp_path / "nothing"
    assert one_line_error(capsys, sweep.main, [str(missing), "--data", str(data_bin), "--out", png]
                          ).endswith(f"error: {missing / 'checkpoints' / 'checkpoint_last.pt'}: no such checkpoint file")


def test_code_version_is_the_plugins_last_commit():
    expected = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h", "--", "fairseq_ot"],
                              capture_output=True, text=True).stdout.strip()
    if not expected:
        pytest.skip("not a git checkout")
    assert synthetic.code_version().removesuffix("-dirty") == expected

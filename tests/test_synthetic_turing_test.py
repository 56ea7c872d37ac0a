"""The synthetic Turing test's training budget: fairseq's cumulative training
time, resumed and extended from the checkpoints."""

import re

import torch

from fairseq_ot.synthetic.lm_data import build_oracle_lm_data
from fairseq_ot.synthetic.oracle import OracleLSTM

from conftest import load_script

synthetic = load_script("synthetic_turing_test")


def option(command, flag):
    return command[command.index(flag) + 1]


def cumulative_seconds_and_updates(checkpoint):
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return state["extra_state"]["previous_training_time"], state["optimizer_history"][-1]["num_updates"]


def test_a_larger_budget_resumes_the_run_with_its_first_schedule(tmp_path):
    oracle = OracleLSTM.random(seed=3, vocab=50)
    data_bin = build_oracle_lm_data(oracle, tmp_path / "data", n_train=300, n_valid=64, n_test=64)
    run_dir = tmp_path / "runs" / "scheduled_sampling"
    last = run_dir / "checkpoints" / "checkpoint_last.pt"

    first = synthetic.train(data_bin, "scheduled_sampling", run_dir, 0.05, "cpu")
    assert [launch["returncode"] for launch in first] == [0]
    seconds_first, updates_first = cumulative_seconds_and_updates(last)
    assert 3 <= seconds_first

    assert synthetic.train(data_bin, "scheduled_sampling", run_dir, 0.05, "cpu") == first

    launches = synthetic.train(data_bin, "scheduled_sampling", run_dir, 0.12, "cpu")
    assert [launch["returncode"] for launch in launches] == [0, 0]
    seconds, updates = cumulative_seconds_and_updates(last)
    assert 7.2 <= seconds < seconds_first + 7.2 + 60 and updates > updates_first
    # fairseq's own report of the second launch: it started from the first's state
    loaded = re.findall(r"Loaded checkpoint .*\(epoch \d+ @ (\d+) updates\)",
                        (run_dir / "train.log").read_text())
    assert loaded == [str(updates_first)]
    # the schedule of the first budget, not one stretched over the second
    assert option(launches[1]["command"], "--ss-c") == option(launches[0]["command"], "--ss-c")
    assert option(launches[1]["command"], "--ss-c") != f"{synthetic.scheduled_sampling_slope(0.12):.3g}"
    assert option(launches[1]["command"], "--stop-time-hours") == f"{0.12 / 60:.6f}"


def test_the_device_flag_decides_fairseqs_cpu_flag(tmp_path):
    on_cpu = synthetic.train_command(tmp_path, "cot", tmp_path, 5, "cpu", 5)
    on_gpu = synthetic.train_command(tmp_path, "cot", tmp_path, 5, "cuda", 5)
    assert "--cpu" in on_cpu and "--cpu" not in on_gpu
    assert [arg for arg in on_cpu if arg != "--cpu"] == on_gpu


def test_checkpoints_are_ordered_by_updates_then_last(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("checkpoint_2_1000.pt", "checkpoint_1_98.pt", "checkpoint_1_450.pt", "checkpoint_last.pt"):
        (folder / name).touch()
    assert [path.name for path in synthetic.saved_checkpoints(tmp_path)] == [
        "checkpoint_1_98.pt", "checkpoint_1_450.pt", "checkpoint_2_1000.pt", "checkpoint_last.pt"]

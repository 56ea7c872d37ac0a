"""A rerun of a finished training command (the usual way to resume, and what a
requeued Slurm job does) trains nothing: one log line, exit status 0, every
file of the save dir byte-identical with its modification time unchanged.
Stock fairseq trained one update past --max-update and overwrote
checkpoint_last.pt and checkpoint_best.pt. (A rerun with a higher
--max-update resumes: tests/test_end_to_end.py.)"""

import re
from types import SimpleNamespace

import pytest

from conftest import TINY_TRANSFORMER, USER_DIR, run_cli
from fairseq_ot.compat.finished_training import finished


def train_command(program, data_bin, save_dir, *stop):
    return [
        program, data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation", *TINY_TRANSFORMER,
        "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "0.001",
        "--max-tokens", "1500", "--save-interval-updates", "2", "--save-dir", save_dir, "--seed", "1",
        "--log-format", "json", "--log-interval", "1", *stop,
    ]


def files(save_dir):
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in save_dir.iterdir()}


@pytest.mark.parametrize("program,stop,done", [
    # 8 updates an epoch: --max-update stops inside the first one
    ("fairseq-train", ["--max-update", "4"], "update 4 of --max-update 4"),
    ("fairseq-ot-train", ["--max-epoch", "1"], "epoch 1 of --max-epoch 1 done"),
])
def test_rerun_of_a_finished_run_trains_nothing(toy_data_bin, tmp_path, program, stop, done):
    command = train_command(program, toy_data_bin, tmp_path, *stop)
    _, first = run_cli(*command)
    assert "| train_inner |" in first
    before = files(tmp_path)
    assert {"checkpoint_last.pt", "checkpoint_best.pt"} <= set(before)

    _, rerun = run_cli(*command)
    assert re.search(
        rf"\| INFO \| fairseq_ot\.compat\.finished_training \| training is finished \({done}\): "
        rf"nothing to train, the checkpoints in {re.escape(str(tmp_path))} are left as they are$", rerun, re.M)
    assert "| train_inner |" not in rerun and "Saved checkpoint" not in rerun
    assert files(tmp_path) == before


def limits(max_update=0, max_epoch=0):
    return SimpleNamespace(max_update=max_update, max_epoch=max_epoch)


@pytest.mark.parametrize("optimization,num_updates,next_epoch,expected", [
    (limits(), 10**6, 50, None),  # no limit: fairseq trains on
    (limits(max_update=6), 5, 1, None),
    (limits(max_update=6), 6, 1, "update 6 of --max-update 6"),
    (limits(max_update=6), 7, 2, "update 7 of --max-update 6"),  # lowered on the rerun
    (limits(max_epoch=2), 30, 2, None),  # epoch 2 not begun, or begun and not done
    (limits(max_epoch=2), 30, 3, "epoch 2 of --max-epoch 2 done"),
    (limits(max_update=100, max_epoch=1), 8, 2, "epoch 1 of --max-epoch 1 done"),
])
def test_finished_follows_fairseqs_stopping_rules(optimization, num_updates, next_epoch, expected):
    assert finished(optimization, num_updates, next_epoch) == expected


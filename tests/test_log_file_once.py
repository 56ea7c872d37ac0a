"""--log-file holds each line once (fairseq added a file handler at every
progress bar, one per epoch and validation)."""

import json

from conftest import TINY_TRANSFORMER, USER_DIR, run_cli


def test_log_file_holds_each_line_once_over_several_epochs(toy_data_bin, tmp_path):
    log = tmp_path / "train.log"
    run_cli("fairseq-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation",
            *TINY_TRANSFORMER, "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam",
            "--lr", "0.003", "--max-tokens", "2000", "--max-epoch", "4", "--log-format", "json",
            "--log-interval", "2", "--save-dir", tmp_path / "checkpoints", "--no-save",
            "--num-workers", "0", "--log-file", log)
    # the records (the model's printout repeats its own lines)
    records = [line for line in log.read_text().splitlines() if line.startswith('{"')]
    assert len(records) > 8 and len(records) == len(set(records)), "a record is repeated"
    epochs = [json.loads(line)["epoch"] for line in records if '"train_loss"' in line]
    assert epochs == [1, 2, 3, 4]  # one end-of-epoch record each

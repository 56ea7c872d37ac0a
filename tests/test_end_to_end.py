"""fairseq's own command lines with `--criterion ot_seq`: training lowers the
validation loss, `fairseq-generate` loads the checkpoint and scores every
test sentence, training resumes from checkpoint_last.pt, and checkpoints
stay weights-only."""

import fractions
import json
import re

import pytest
import torch
from fairseq import checkpoint_utils

from conftest import TINY_TRANSFORMER, USER_DIR, run_cli
from fairseq_ot.checkpoints.loading import UnsafeCheckpointError

N_TEST = 37  # not a multiple of 8: fairseq-generate must still score them all


def train_command(program, data_bin, save_dir, max_update):
    return [
        program, data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation",
        *TINY_TRANSFORMER, "--criterion", "ot_seq", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--lr", "0.005", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "50", "--max-tokens", "1500", "--max-update", max_update,
        "--save-dir", save_dir, "--no-epoch-checkpoints", "--seed", "1",
        "--log-format", "json", "--log-interval", "10",
    ]


def logged(output, kind):
    """The JSON records of fairseq's `--log-format json` lines of one kind."""
    return [json.loads(line.split(f"| {kind} | ", 1)[1])
            for line in output.splitlines() if f"| {kind} | {{" in line]


@pytest.fixture(scope="module")
def trained(toy_data_bin, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("ckpt")
    _, output = run_cli(*train_command("fairseq-train", toy_data_bin, save_dir, 200))
    return save_dir, output


def test_training_lowers_validation_loss(trained):
    _, output = trained
    valid = logged(output, "valid")
    assert len(valid) >= 3
    first, last = float(valid[0]["valid_loss"]), float(valid[-1]["valid_loss"])
    assert last < 0.7 * first, (first, last)
    assert all(float(v["valid_ot_loss"]) >= 0 for v in valid)


def test_generate_loads_checkpoint_and_scores_every_sentence(toy_data_bin, trained):
    save_dir, _ = trained
    _, output = run_cli(
        "fairseq-generate", toy_data_bin, "--user-dir", USER_DIR, "--cpu",
        "--path", save_dir / "checkpoint_best.pt", "--gen-subset", "test", "--beam", "4",
        "--batch-size", "16", "--required-batch-size-multiple", "1", "--scoring", "sacrebleu",
    )
    assert len(re.findall(r"^H-\d+\t", output, flags=re.M)) == N_TEST
    bleu = float(re.search(r"BLEU = ([\d.]+)", output).group(1))
    assert bleu > 30, output[-2000:]


def test_console_script_resumes_from_checkpoint_last(toy_data_bin, trained, tmp_path):
    save_dir, _ = trained
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint_last.pt").write_bytes((save_dir / "checkpoint_last.pt").read_bytes())
    _, output = run_cli(*train_command("fairseq-ot-train", toy_data_bin, resumed, 240))
    assert re.search(r"Loaded checkpoint .*checkpoint_last\.pt \(epoch \d+ @ 200 updates\)", output)
    updates = [int(record["num_updates"]) for record in logged(output, "train_inner")]
    assert updates and min(updates) > 200 and max(updates) == 240


def test_checkpoints_load_weights_only(trained):
    save_dir, _ = trained
    state = torch.load(save_dir / "checkpoint_last.pt", weights_only=True)
    assert state["optimizer_history"][-1]["num_updates"] == 200


def write_crafted_checkpoint(trained, path):
    """The trained checkpoint with one extra pickled class in it."""
    save_dir, _ = trained
    state = torch.load(save_dir / "checkpoint_last.pt", weights_only=True)
    state["extra_state"]["payload"] = fractions.Fraction(1, 3)
    torch.save(state, path)


def test_checkpoint_with_a_foreign_class_is_refused(toy_data_bin, trained, tmp_path):
    crafted = tmp_path / "crafted.pt"
    write_crafted_checkpoint(trained, crafted)

    with pytest.raises(UnsafeCheckpointError, match="fractions.Fraction"):
        checkpoint_utils.load_checkpoint_to_cpu(str(crafted))
    code, output = run_cli(
        "fairseq-generate", toy_data_bin, "--user-dir", USER_DIR, "--cpu",
        "--path", crafted, "--gen-subset", "test", check=False,
    )
    assert code == 2 and "Traceback" not in output
    assert re.match(r"fairseq-generate: error: refused to load checkpoint .*crafted\.pt: "
                    r"it pickles fractions\.Fraction", output.splitlines()[-1])


def test_resuming_from_a_checkpoint_with_a_foreign_class_is_refused(toy_data_bin, trained, tmp_path):
    write_crafted_checkpoint(trained, tmp_path / "checkpoint_last.pt")
    code, output = run_cli(*train_command("fairseq-ot-train", toy_data_bin, tmp_path, 240), check=False)
    assert code == 2 and "Traceback" not in output
    assert re.match(r"fairseq-ot-train: error: refused to load checkpoint .*checkpoint_last\.pt: "
                    r"it pickles fractions\.Fraction", output.splitlines()[-1])

"""Damaged checkpoint files: loading one (fairseq-train, fairseq-generate,
fairseq-ot-train) ends in one line naming the file and what is wrong with it
(empty, truncated, corrupted, not a checkpoint); fairseq-ot-train resuming
from a damaged checkpoint_last.pt keeps it aside and resumes from the newest
intact checkpoint, or stops with one line when there is none."""

import io
import os
import re
import subprocess
import zipfile

import pytest
import torch
from fairseq import checkpoint_utils

from conftest import TINY_TRANSFORMER, USER_DIR
from fairseq_ot.checkpoints.files import DamagedCheckpointError, first_process

NOT_A_ZIP = "not a checkpoint (neither a zip archive, as torch.save writes, nor torch's legacy format)"


def train_command(program, data_bin, save_dir, max_update):
    """A tiny model, a checkpoint every 2 updates (8 updates an epoch)."""
    return [
        program, data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation", *TINY_TRANSFORMER,
        "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "0.001",
        "--max-tokens", "1500", "--max-update", max_update, "--save-interval-updates", "2",
        "--save-dir", save_dir, "--seed", "1", "--log-format", "json", "--log-interval", "1",
    ]


def run(*command):
    result = subprocess.run([str(c) for c in command], env=dict(os.environ, OMP_NUM_THREADS="1"),
                            capture_output=True, text=True)
    return result.returncode, result.stdout, result.stderr


def assert_one_line_error(result, expected):
    code, stdout, stderr = result
    assert code == 2, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr
    # fairseq's own warnings (hydra's deprecations) come first, then the one line
    assert stderr.rstrip().splitlines()[-1] == expected
    assert [line for line in stderr.splitlines() if ": error: " in line] == [expected]


@pytest.fixture(scope="module")
def trained(toy_data_bin, tmp_path_factory):
    """checkpoint_1_2.pt, checkpoint_1_4.pt, checkpoint_1_6.pt, checkpoint_best.pt
    and checkpoint_last.pt of a run of 6 updates, in that order of writing."""
    save_dir = tmp_path_factory.mktemp("trained")
    code, stdout, stderr = run(*train_command("fairseq-train", toy_data_bin, save_dir, 6))
    assert code == 0, stdout[-2000:] + stderr[-2000:]
    return save_dir


def updates_of(path):
    return torch.load(path, weights_only=True)["optimizer_history"][-1]["num_updates"]


def pickle_flipped(intact):
    """`intact` with the first byte of its pickle (the protocol opcode) changed:
    the archive still opens, torch fails to unpickle, the entry's checksum fails."""
    with zipfile.ZipFile(io.BytesIO(intact)) as archive:
        entry = archive.getinfo(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    start = entry.header_offset
    name_length = int.from_bytes(intact[start + 26:start + 28], "little")
    extra_length = int.from_bytes(intact[start + 28:start + 30], "little")
    data = bytearray(intact)
    data[start + 30 + name_length + extra_length] = 0xFF
    return bytes(data)


def zip_without_pickle():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()


# kind: (write the damaged file at path from the intact checkpoint's bytes, reason)
DAMAGE = {
    "empty": (lambda path, intact: path.write_bytes(b""), "empty (0 bytes)"),
    "truncated": (lambda path, intact: path.write_bytes(intact[: len(intact) // 2]),
                  "truncated (a zip archive of {half} bytes whose end is missing)"),
    "text": (lambda path, intact: path.write_text("step 100: loss 3.2\n"), NOT_A_ZIP),
    "other zip": (lambda path, intact: path.write_bytes(zip_without_pickle()),
                  "not a checkpoint (a zip archive without torch's data.pkl)"),
    "corrupted": (lambda path, intact: path.write_bytes(pickle_flipped(intact)),
                  "corrupted (its entry archive/data.pkl fails its checksum)"),
    "list": (lambda path, intact: torch.save([1, 2, 3], path), "not a fairseq checkpoint (torch.save of a list)"),
    "dict": (lambda path, intact: torch.save({"epoch": 3}, path),
             "not a fairseq checkpoint (a dict without 'model')"),
}


def damaged(kind, trained, path):
    """Write a damaged checkpoint of `kind` at `path`; returns the reason it is refused."""
    write, reason = DAMAGE[kind]
    intact = (trained / "checkpoint_last.pt").read_bytes()
    write(path, intact)
    return reason.format(half=len(intact) // 2)


@pytest.mark.parametrize("kind", DAMAGE)
def test_loader_names_the_file_and_the_damage(trained, tmp_path, kind):
    path = tmp_path / "checkpoint.pt"
    reason = damaged(kind, trained, path)
    with pytest.raises(DamagedCheckpointError) as error:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert str(error.value) == f"cannot load checkpoint {path}: it is {reason}"


def test_an_intact_checkpoint_still_loads(trained):
    state = checkpoint_utils.load_checkpoint_to_cpu(str(trained / "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == 6


def test_fairseq_train_with_a_damaged_checkpoint_last(toy_data_bin, trained, tmp_path):
    """Stock fairseq-train with the plugin: one line, and the file left as it is."""
    last = tmp_path / "checkpoint_last.pt"
    reason = damaged("empty", trained, last)
    result = run(*train_command("fairseq-train", toy_data_bin, tmp_path, 8))
    assert_one_line_error(result, f"fairseq-train: error: cannot load checkpoint {last}: it is {reason}")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_last.pt"] and last.read_bytes() == b""


@pytest.mark.parametrize("kind", ["truncated", "text", "list"])
def test_fairseq_generate_with_a_damaged_checkpoint(toy_data_bin, trained, tmp_path, kind):
    path = tmp_path / "model.pt"
    reason = damaged(kind, trained, path)
    result = run("fairseq-generate", toy_data_bin, "--user-dir", USER_DIR, "--cpu",
                 "--path", path, "--gen-subset", "test")
    assert_one_line_error(result, f"fairseq-generate: error: cannot load checkpoint {path}: it is {reason}")


def test_fairseq_ot_train_with_a_damaged_restore_file(toy_data_bin, trained, tmp_path):
    """A --restore-file the user names is loaded or refused, never replaced."""
    restore = tmp_path / "start.pt"
    reason = damaged("truncated", trained, restore)
    result = run(*train_command("fairseq-ot-train", toy_data_bin, tmp_path / "run", 8), "--restore-file", restore)
    assert_one_line_error(result, f"fairseq-ot-train: error: cannot load checkpoint {restore}: it is {reason}")


def test_fairseq_ot_train_falls_back_to_the_intact_checkpoint_with_most_updates(toy_data_bin, trained, tmp_path):
    """checkpoint_last.pt truncated by a killed copy, and the saves of update 6
    damaged too: the run resumes from checkpoint_1_4.pt (not the older
    checkpoint_1_2.pt) and trains updates 5 to 8."""
    save_dir = tmp_path / "run"
    save_dir.mkdir()
    for name in ["checkpoint_1_2.pt", "checkpoint_1_4.pt"]:  # in saving order
        (save_dir / name).write_bytes((trained / name).read_bytes())
    last = save_dir / "checkpoint_last.pt"
    reason = damaged("truncated", trained, last)
    damaged("empty", trained, save_dir / "checkpoint_1_6.pt")
    damaged("text", trained, save_dir / "checkpoint_best.pt")
    truncated = last.read_bytes()

    code, stdout, stderr = run(*train_command("fairseq-ot-train", toy_data_bin, save_dir, 8))
    assert code == 0, stderr[-3000:]
    [line] = [line for line in stdout.splitlines() if "fairseq_ot.cli" in line]
    kept = re.fullmatch(
        rf".* \| WARNING \| fairseq_ot\.cli \| {re.escape(f'{last} is {reason}')}: kept it as "
        r"(checkpoint_last\.pt\.damaged-\d{8}-\d{6}) and restored it from checkpoint_1_4\.pt, "
        r"the intact checkpoint with the most updates: training goes back to update 4", line)
    assert kept, line
    assert (save_dir / kept.group(1)).read_bytes() == truncated
    assert re.search(r"Loaded checkpoint \S+checkpoint_last\.pt \(epoch 1 @ 4 updates\)", stdout)
    trained_updates = [int(n) for n in re.findall(r'\| train_inner \| .*"num_updates": "(\d+)"', stdout)]
    assert trained_updates == [5, 6, 7, 8]
    assert updates_of(last) == 8


def test_fairseq_ot_train_without_an_intact_checkpoint(toy_data_bin, trained, tmp_path):
    last = tmp_path / "checkpoint_last.pt"
    reason = damaged("truncated", trained, last)
    damaged("text", trained, tmp_path / "checkpoint_best.pt")
    damaged("empty", trained, tmp_path / "checkpoint_1_6.pt")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    result = run(*train_command("fairseq-ot-train", toy_data_bin, tmp_path, 8))
    assert_one_line_error(result, f"fairseq-ot-train: error: cannot resume from {last}: it is {reason}, "
                                  f"and {tmp_path} holds no intact checkpoint")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


@pytest.mark.parametrize("environment,distributed_rank,first", [
    ({}, 0, True),
    ({}, 1, False),  # started by hand with --distributed-rank 1
    ({"RANK": "0", "SLURM_PROCID": "1"}, -1, True),  # torchrun on the second node's srun task
    ({"RANK": "1", "SLURM_PROCID": "0"}, -1, False),
    ({"SLURM_PROCID": "2"}, 0, False),  # one srun task per GPU
])
def test_only_the_first_process_restores(monkeypatch, environment, distributed_rank, first):
    """The others wait in fairseq's distributed set-up until it has."""
    for variable in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert first_process(distributed_rank) is first

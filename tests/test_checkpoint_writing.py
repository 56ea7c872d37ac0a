"""Checkpoint writes that keep the last good checkpoint, and one training per
save folder (fairseq_ot/checkpoints/writing.py, lock.py and
compat/checkpoint_writing.py): a full disk on a small tmpfs (or, where no
tmpfs can be mounted, an injected ENOSPC), a copy that fails, a second
training into a held folder, a lock left by a killed training."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_TRANSFORMER, USER_DIR
from fairseq_ot.checkpoints import files, lock, writing
from fairseq_ot.errors import ModelDiverged


def train_command(data_bin, save_dir, max_update, *extra):
    """A tiny model saving after every update."""
    return ["fairseq-train", str(data_bin), "--user-dir", USER_DIR, "--cpu", "--task", "translation",
            *TINY_TRANSFORMER, "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam",
            "--lr", "0.001", "--max-tokens", "300", "--max-update", str(max_update),
            "--save-interval-updates", "1", "--save-dir", str(save_dir), "--seed", "1",
            "--num-workers", "0", "--disable-validation", *extra]


def run(command):
    result = subprocess.run(command, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)
    return result.returncode, result.stdout, result.stderr


def updates_of(path):
    return torch.load(path, weights_only=True)["optimizer_history"][-1]["num_updates"]


def leftovers(folder):
    return sorted(path.name for path in Path(folder).iterdir() if ".tmp" in path.name or "restoring" in path.name)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs, or a skip where mounting is not allowed."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): the injected ENOSPC tests stand in")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_keeps_the_last_good_checkpoint(toy_data_bin, small_tmpfs):
    """Each save adds a checkpoint_1_N.pt of about 170 kB until the 1 MiB
    disk is full: the run ends in one line naming the file and the disk
    error, checkpoint_last.pt is whole and resumable, and no temporary is
    left behind."""
    code, stdout, stderr = run(train_command(toy_data_bin, small_tmpfs, 30))
    assert code == 2, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr
    line = stderr.rstrip().splitlines()[-1]
    last = small_tmpfs / "checkpoint_last.pt"
    assert files.damage(last, verify_data=True) is None
    updates = updates_of(last)
    assert 1 <= updates < 30
    assert line.startswith(f"fairseq-train: error: cannot write checkpoint {small_tmpfs}/checkpoint_"), line
    assert line.endswith(f": No space left on device; checkpoint_last.pt (update {updates}) left as before"), line
    assert leftovers(small_tmpfs) == []
    # every checkpoint left is whole
    assert all(files.damage(path, verify_data=True) is None for path in small_tmpfs.glob("*.pt"))


def test_an_injected_write_error_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    writing.save({"optimizer_history": [{"num_updates": 7}]}, path)
    before = path.read_bytes()

    def half_then_full(file):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(writing.CheckpointWriteError) as error:
        writing.write_atomically(path, half_then_full)
    assert str(error.value) == (f"cannot write checkpoint {path}: No space left on device; "
                                "checkpoint_last.pt (update 7) left as before")
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_an_injected_copy_error_leaves_the_copy_target_as_it_was(tmp_path, monkeypatch):
    """fairseq copies the checkpoint it wrote to checkpoint_last.pt: the copy
    fails half-way, the old checkpoint_last.pt stays."""
    source, last = tmp_path / "checkpoint_1_9.pt", tmp_path / "checkpoint_last.pt"
    writing.save({"optimizer_history": [{"num_updates": 9}]}, source)
    writing.save({"optimizer_history": [{"num_updates": 8}]}, last)
    before = last.read_bytes()

    def cut_copy(original, file, length):
        file.write(original.read(10))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writing.shutil, "copyfileobj", cut_copy)
    with pytest.raises(writing.CheckpointWriteError, match="left as before"):
        writing.copy(source, last)
    assert last.read_bytes() == before and leftovers(tmp_path) == []


def test_a_failed_restore_copy_leaves_no_partial_file(tmp_path, monkeypatch):
    """A damaged checkpoint_last.pt on a disk still full: the restore fails in
    one line and every file is as it was (no 0-byte .restoring file)."""
    writing.save({"optimizer_history": [{"num_updates": 4}]}, tmp_path / "checkpoint_1_4.pt")
    (tmp_path / "checkpoint_last.pt").write_bytes(b"PK\x03\x04 cut")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def full_disk(source, destination):
        Path(destination).write_bytes(b"")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.shutil, "copyfile", full_disk)
    with pytest.raises(files.DamagedCheckpointError) as error:
        files.restore_checkpoint_last(tmp_path)
    assert str(error.value).endswith("and copying checkpoint_1_4.pt in its place failed (No space left on device)")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_model_with_non_finite_parameters_is_not_saved(tmp_path):
    model = torch.nn.Linear(3, 2)
    writing.save({"optimizer_history": [{"num_updates": 3}]}, tmp_path / "checkpoint_last.pt")
    writing.require_finite_parameters(model, 4, tmp_path / "checkpoint_1_4.pt")  # finite: no error
    with torch.no_grad():
        model.bias[1] = float("nan")
    with pytest.raises(ModelDiverged) as error:
        writing.require_finite_parameters(model, 4, tmp_path / "checkpoint_1_4.pt")
    assert str(error.value).startswith(f"the model diverged by update 4: its parameters hold NaN or inf, so "
                                       f"{tmp_path}/checkpoint_1_4.pt was not written")
    assert str(error.value).endswith("checkpoint_last.pt (update 3) left as before")


def wait_for(condition, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_one_training_per_save_folder(toy_data_bin, tmp_path):
    """A second fairseq-train into the folder of a live one is refused in one
    line naming the live one's PID, and writes nothing; after the first is
    killed (-9, its lock file left behind), a third takes the folder over and
    resumes; a training that ends removes its lock file."""
    save_dir = tmp_path / "run"
    first = subprocess.Popen(train_command(toy_data_bin, save_dir, 100_000), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        wait_for(lambda: (save_dir / "checkpoint_last.pt").is_file())
        assert (save_dir / lock.LOCK).read_text() == f"{first.pid}\n"
        code, _, stderr = run(train_command(toy_data_bin, save_dir, 100_000))
        assert code == 2 and "Traceback" not in stderr
        assert stderr.rstrip().splitlines()[-1] == (
            f"fairseq-train: error: --save-dir {save_dir} is in use by another training (PID {first.pid}): "
            f"wait for it, stop it, or choose another --save-dir")
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (save_dir / lock.LOCK).read_text() == f"{first.pid}\n"  # left by the killed run
    shutil.copyfile(save_dir / "checkpoint_last.pt", tmp_path / "resume.pt")
    resumed_from = updates_of(tmp_path / "resume.pt")
    code, stdout, stderr = run(train_command(toy_data_bin, save_dir, resumed_from + 2, "--restore-file",
                                             str(tmp_path / "resume.pt")))
    assert code == 0, stdout[-2000:] + stderr[-2000:]
    assert updates_of(save_dir / "checkpoint_last.pt") == resumed_from + 2
    assert not (save_dir / lock.LOCK).exists()


def test_the_lock_is_taken_over_from_a_process_that_died(tmp_path):
    """In one process: a folder held stays held (idempotent); a lock file
    whose holder is gone is locked anew."""
    (tmp_path / lock.LOCK).write_text("999999999\n")  # no such process holds it
    assert lock.hold_save_dir(tmp_path) is None
    assert (tmp_path / lock.LOCK).read_text() == f"{os.getpid()}\n"
    assert lock.hold_save_dir(tmp_path) is None
    holder = subprocess.run([sys.executable, "-c", f"from fairseq_ot.checkpoints import lock; "
                                             f"print(lock.hold_save_dir({str(tmp_path)!r}))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert holder == str(os.getpid())

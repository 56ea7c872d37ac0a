"""What is wrong with a checkpoint file, the update count it records, and an
intact checkpoint_last.pt put back before a run resumes, by the job's first
process.

fairseq writes a checkpoint atomically (a temporary file, then a rename) and
copies it to its other names, checkpoint_last.pt among them: a job killed
during a copy leaves that file truncated. A torch checkpoint is a zip archive,
whose directory sits at its end, so a truncated one does not open.

Standard library only, and no import of the package:
scripts/cluster/restore_last_checkpoint.py loads this file by its path, so that
a job's start does not import fairseq and torch (over 10 s) for the check.
The update count is read from the archive's pickle with every class and
tensor replaced by a stub: no code of the file runs, no tensor is read."""

import os
import pickle
import shutil
import time
import zipfile
from pathlib import Path

LAST = "checkpoint_last.pt"
# how torch's format before 1.6 (and torch.save(..., _use_new_zipfile_serialization=False))
# begins: its magic number, pickled
LEGACY_TORCH_HEADER = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]
ZIP_HEADER = b"PK\x03\x04"


class DamagedCheckpointError(ValueError):
    """A checkpoint file that is empty, truncated, corrupted or no checkpoint
    at all; the message names the file and fits on one line."""


def damage(path, verify_data=False):
    """What is wrong with the file at `path`, completing "it is ...": empty,
    truncated, or not a checkpoint; None when it looks like one (a zip
    archive holding torch's data.pkl, or torch's legacy format, which only
    torch can read). Reads the archive's directory only, unless `verify_data`:
    then also every entry's checksum (the whole file)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "empty (0 bytes)"
    with path.open("rb") as file:
        header = file.read(len(LEGACY_TORCH_HEADER))
    if header.startswith(LEGACY_TORCH_HEADER):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            corrupted = archive.testzip() if verify_data else None
    except zipfile.BadZipFile:
        if header.startswith(ZIP_HEADER):
            return f"truncated (a zip archive of {size} bytes whose end is missing)"
        return "not a checkpoint (neither a zip archive, as torch.save writes, nor torch's legacy format)"
    if not any(name.rpartition("/")[2] == "data.pkl" for name in names):
        return "not a checkpoint (a zip archive without torch's data.pkl)"
    if corrupted is not None:
        return f"corrupted (its entry {corrupted} fails its checksum)"
    return None


class _Stub:
    """Stands for any class or tensor storage of a checkpoint's pickle."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Stub()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        return _Stub

    def persistent_load(self, pid):
        return None


def update_count(path):
    """The update count that the fairseq checkpoint at `path` records
    (`optimizer_history[-1]["num_updates"]`); None when the file is damaged
    or records none (torch's legacy format is not read)."""
    if damage(path) is not None:
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(name for name in archive.namelist() if name.rpartition("/")[2] == "data.pkl")
            with archive.open(name) as pickled:
                state = _StubUnpickler(pickled).load()
        count = state["optimizer_history"][-1]["num_updates"]
    except Exception:  # a zip of another layout, a pickle of other objects
        return None
    return count if isinstance(count, int) else None


def latest_intact(save_dir, other_than):
    """(path, update count) of the intact checkpoint*.pt of `save_dir` that
    records the most updates, `other_than` excluded; (None, None) if there is
    none. Modification times are not used: a folder copied with `cp -r` has
    them all equal or in copy order."""
    counted = ((update_count(path), path) for path in sorted(Path(save_dir).glob("checkpoint*.pt"))
               if path != Path(other_than))
    counted = [(count, path) for count, path in counted if count is not None]
    if not counted:
        return None, None
    count, path = max(counted, key=lambda item: item[0])
    return path, count


def restore_checkpoint_last(save_dir):
    """If SAVE_DIR/checkpoint_last.pt is damaged, keep it as
    checkpoint_last.pt.damaged-TIMESTAMP and put a copy of the intact
    checkpoint with the most updates in its place. Returns a line saying so;
    None when checkpoint_last.pt is missing or intact. Raises
    DamagedCheckpointError, leaving every file as it was (no partial copy,
    a full disk included), when no intact checkpoint is left or the copy
    fails."""
    save_dir = Path(save_dir)
    last = save_dir / LAST
    if not last.exists():
        return None
    reason = damage(last)
    if reason is None:
        return None
    source, count = latest_intact(save_dir, other_than=last)
    if source is None:
        raise DamagedCheckpointError(
            f"cannot resume from {last}: it is {reason}, and {save_dir} holds no intact checkpoint")
    copying = last.with_name(f"{LAST}.restoring-{os.getpid()}")
    try:
        shutil.copyfile(source, copying)
        kept = last.with_name(f"{LAST}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(last, kept)
        os.replace(copying, last)
    except OSError as error:
        raise DamagedCheckpointError(
            f"cannot resume from {last}: it is {reason}, and copying {source.name} in its place "
            f"failed ({error.strerror or error})") from None
    finally:
        if copying.exists():
            copying.unlink()
    return (f"{last} is {reason}: kept it as {kept.name} and restored it from {source.name}, "
            f"the intact checkpoint with the most updates: training goes back to update {count}")


def first_process(distributed_rank=0):
    """Whether this is the job's first process, the one that restores
    checkpoint_last.pt, before fairseq sets up its ranks: torchrun says so in
    RANK, srun in SLURM_PROCID, else `distributed_rank` (fairseq's
    --distributed-rank: 0 by default, also where fairseq spawns one process
    per GPU from this one) does."""
    rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", distributed_rank))
    return int(rank) == 0

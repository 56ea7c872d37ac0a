"""What is wrong with a checkpoint file, and an intact checkpoint_last.pt put
back before a run resumes.

fairseq writes a checkpoint atomically (a temporary file, then a rename) and
copies it to its other names, checkpoint_last.pt among them: a job killed
during a copy leaves that file truncated. A torch checkpoint is a zip archive,
whose directory sits at its end, so a truncated one does not open.

Standard library only, and no import of the package:
scripts/cluster/restore_last_checkpoint.py loads this file by its path, so that
a job's start does not import fairseq and torch (over 10 s) for the check."""

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


def newest_intact(save_dir, other_than):
    """The most recently written checkpoint*.pt of `save_dir` that looks
    intact, `other_than` excluded; None if there is none."""
    candidates = sorted(
        (path for path in Path(save_dir).glob("checkpoint*.pt") if path != Path(other_than)),
        key=lambda path: path.stat().st_mtime_ns, reverse=True,
    )
    return next((path for path in candidates if damage(path) is None), None)


def restore_checkpoint_last(save_dir):
    """If SAVE_DIR/checkpoint_last.pt is damaged, keep it as
    checkpoint_last.pt.damaged-TIMESTAMP and put a copy of the newest intact
    checkpoint in its place. Returns a line saying so; None when
    checkpoint_last.pt is missing or intact. Raises DamagedCheckpointError,
    leaving the file where it is, when no intact checkpoint is left."""
    save_dir = Path(save_dir)
    last = save_dir / LAST
    if not last.exists():
        return None
    reason = damage(last)
    if reason is None:
        return None
    source = newest_intact(save_dir, other_than=last)
    if source is None:
        raise DamagedCheckpointError(
            f"cannot resume from {last}: it is {reason}, and {save_dir} holds no intact checkpoint")
    copying = last.with_name(LAST + ".restoring")
    shutil.copyfile(source, copying)
    kept = last.with_name(f"{LAST}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(last, kept)
    os.replace(copying, last)
    return (f"{last} is {reason}: kept it as {kept.name} and restored it from {source.name}, "
            "the newest intact checkpoint")

"""Put back an intact checkpoint_last.pt before a run resumes.

fairseq saves a checkpoint by writing one file atomically (a temporary file,
then a rename) and copying it to the other names, checkpoint_last.pt among
them. A job killed during that copy (pre-emption, the end of a requeued
allocation) leaves checkpoint_last.pt truncated, and every later start would
fail to load it. A torch checkpoint is a zip archive, whose directory sits at
its end: a truncated one does not open. Then the newest checkpoint that does
open (the one the copy started from, or an older save) replaces it.

Standard library only, so that launch.sh runs it without importing torch:

    python -I scripts/cluster/restore_last_checkpoint.py SAVE_DIR
"""

import os
import shutil
import sys
import zipfile
from pathlib import Path


def is_intact(path):
    try:
        with zipfile.ZipFile(path):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


def restore_last_checkpoint(save_dir):
    """Replace a truncated SAVE_DIR/checkpoint_last.pt with the newest intact
    checkpoint; returns the checkpoint it was restored from, or None when
    nothing needed (or could be) restored."""
    save_dir = Path(save_dir)
    last = save_dir / "checkpoint_last.pt"
    if not last.exists() or is_intact(last):
        return None
    others = sorted(
        (p for p in save_dir.glob("checkpoint*.pt") if p != last),
        key=lambda p: p.stat().st_mtime, reverse=True,
    )
    source = next((p for p in others if is_intact(p)), None)
    if source is None:
        raise SystemExit(f"error: {last} is truncated and {save_dir} holds no intact checkpoint")
    partial = last.with_suffix(".pt.restoring")
    shutil.copyfile(source, partial)
    os.replace(partial, last)
    return source


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: restore_last_checkpoint.py SAVE_DIR")
    source = restore_last_checkpoint(sys.argv[1])
    if source is not None:
        print(f"checkpoint_last.pt was truncated: restored it from {source.name}", file=sys.stderr)


if __name__ == "__main__":
    main()

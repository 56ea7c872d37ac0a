"""Put back an intact checkpoint_last.pt before a run resumes
(fairseq_ot/checkpoints/files.py: a damaged one is kept as
checkpoint_last.pt.damaged-TIMESTAMP and replaced by a copy of the newest
intact checkpoint).

That module is loaded from its file rather than through the package, whose
import brings in fairseq and torch, so that launch.sh runs this with the
standard library alone:

    python -I scripts/cluster/restore_last_checkpoint.py SAVE_DIR
"""

import importlib.util
import sys
from pathlib import Path

MODULE = Path(__file__).resolve().parents[2] / "fairseq_ot" / "checkpoints" / "files.py"


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: restore_last_checkpoint.py SAVE_DIR")
    spec = importlib.util.spec_from_file_location("checkpoint_files", MODULE)
    checkpoint_files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checkpoint_files)
    try:
        restored = checkpoint_files.restore_checkpoint_last(sys.argv[1])
    except checkpoint_files.DamagedCheckpointError as error:
        raise SystemExit(f"error: {error}") from None
    if restored is not None:
        print(restored, file=sys.stderr)


if __name__ == "__main__":
    main()

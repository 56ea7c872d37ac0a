"""Where the plugin's package is (what fairseq's `--user-dir` takes) and the
real corpora of the development layout (`../shared/data` beside a
checkout; elsewhere the commands take their data folder as a flag)."""

from pathlib import Path

USER_DIR = Path(__file__).resolve().parent
SHARED_DATA = USER_DIR.parent.parent / "shared" / "data"

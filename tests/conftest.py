import os
import subprocess
from pathlib import Path

import pytest

from fairseq_ot.toy_corpus import write_toy_corpus

REPO = Path(__file__).resolve().parent.parent
USER_DIR = str(REPO / "fairseq_ot")

TINY_TRANSFORMER = [
    "--arch", "transformer", "--share-all-embeddings",
    "--encoder-layers", "1", "--decoder-layers", "1",
    "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
    "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]


def run_cli(*command, check=True):
    """Run a fairseq command line; returns its combined output."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [str(c) for c in command], env=env, capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    if check and result.returncode != 0:
        raise AssertionError(f"{command[0]} failed ({result.returncode}):\n{output[-4000:]}")
    return result.returncode, output


@pytest.fixture(scope="session")
def toy_data_bin(tmp_path_factory):
    """The generated toy corpus, binarized by fairseq-preprocess."""
    root = tmp_path_factory.mktemp("toy")
    raw = write_toy_corpus(root / "raw", n_train=1500, n_valid=100, n_test=37)
    data_bin = root / "data-bin"
    run_cli(
        "fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt",
        "--trainpref", raw / "train", "--validpref", raw / "valid",
        "--testpref", raw / "test", "--destdir", data_bin,
        "--joined-dictionary", "--workers", "1",
    )
    return data_bin

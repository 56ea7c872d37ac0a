import importlib
import math
import os
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from fairseq_ot.toy_corpus import write_toy_corpus

REPO = Path(__file__).resolve().parent.parent
USER_DIR = str(REPO / "fairseq_ot")
# real corpora beside the checkout; tests that need them skip without them
SHARED_DATA = REPO.parent / "shared" / "data"


def load_script(name):
    """The module behind scripts/NAME.py (fairseq_ot.cli.NAME)."""
    return importlib.import_module(f"fairseq_ot.cli.{name}")


TINY_TRANSFORMER = [
    "--arch", "transformer", "--share-all-embeddings",
    "--encoder-layers", "1", "--decoder-layers", "1",
    "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
    "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]


def one_line_error(capsys, main, argv):
    """The one stderr line with which main(argv) exits with status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def free_port():
    """A TCP port of 127.0.0.1 free now (torchrun's --master_port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def build(data_bin, *args, arch=TINY_TRANSFORMER, task="translation"):
    """Task, model and criterion from fairseq-train flags, in-process."""
    parser = options.get_training_parser()
    parsed = options.parse_args_and_arch(parser, [
        str(data_bin), "--user-dir", USER_DIR, "--task", task, "--cpu",
        *arch, "--dropout", "0", "--seed", "3", *args,
    ])
    cfg = convert_namespace_to_omegaconf(parsed)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(3)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return task, model, criterion


@pytest.fixture(scope="session")
def batch(toy_data_bin):
    """One padded validation batch of 12 sentences."""
    task, _, _ = build(toy_data_bin, "--criterion", "label_smoothed_cross_entropy")
    task.load_dataset("valid")
    iterator = task.get_batch_iterator(task.dataset("valid"), max_sentences=12, seed=1)
    return next(iter(iterator.next_epoch_itr(shuffle=False)))


@pytest.fixture(scope="session")
def tiny_lm_data_bin(tmp_path_factory):
    """Language-model data over three words, small enough to enumerate."""
    root = tmp_path_factory.mktemp("tiny_lm")
    lines = ["a", "b c", "c a", "a a", "b", "c b"] * 20
    for split in ("train", "valid"):
        (root / f"{split}.txt").write_text("".join(line + "\n" for line in lines))
    data_bin = root / "data-bin"
    run_cli(
        "fairseq-preprocess", "--only-source", "--trainpref", root / "train.txt",
        "--validpref", root / "valid.txt", "--destdir", data_bin, "--workers", "1",
    )
    return data_bin


def sentences(task, ids, split="valid"):
    """A collated batch of the sentences `ids` of a split (the collater
    orders them by source length)."""
    if split not in task.datasets:
        task.load_dataset(split)
    dataset = task.dataset(split)
    return dataset.collater([dataset[i] for i in ids])


def assert_batch_sums_its_sentences(criterion, model, task, batch, keys, rel_tol):
    """fairseq's test_label_smoothing.py form: the loss, sample size and the
    logging output's `keys` of a padded batch equal the sums over its
    sentences, each alone in a batch (model in eval mode, no grad)."""
    model.eval()
    with torch.no_grad():
        loss, sample_size, log = criterion(model, batch)
        alone = [criterion(model, sentences(task, [i])) for i in batch["id"].tolist()]
    assert batch["target"].eq(task.target_dictionary.pad()).any()  # padded
    assert math.isclose(float(loss), sum(float(one[0]) for one in alone), rel_tol=rel_tol)
    assert sample_size == sum(one[1] for one in alone)
    for key in keys:
        assert math.isclose(float(log[key]), sum(float(one[2][key]) for one in alone),
                            rel_tol=rel_tol, abs_tol=1e-6), key

"""Stock fairseq keeps working with the plugin imported (issue 29 item 13).

fairseq's own v0.12.2 tests (../shared/fairseq_tests, see its README.md) run
on their CPU subset twice, each in its own copy of the suite and at the same
time: once stock, once with fairseq_ot imported (a conftest.py at the copy's
root for pytest's process, a sitecustomize.py on PYTHONPATH for any other
Python process). No test that passes stock may fail with the plugin.

Measured (torch 2.13 CPU, fairseq-fixed 0.12.3.1), 123 tests, pass / fail /
skip: stock 88 / 25 / 10, with the plugin 110 / 3 / 10. Most stock failures
are torch's weights-only loading refusing fairseq's own checkpoints, or
`numpy.compat`. With the plugin, test_valid_subset_checks' test_combined and
test_subsets fail as stock does, and test_load_model_ensemble_and_task is
refused by the vocabulary check (an ensemble of two models over different
dictionaries; stock cannot load them at all). About 3.5 minutes on 2 busy
cores."""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from unittest.mock import MagicMock

import pytest
from fairseq import checkpoint_utils
from fairseq.dataclass.configs import CheckpointConfig

from conftest import REPO

SUITE = REPO.parent / "shared" / "fairseq_tests"
MODULES = [
    "label_smoothing", "sequence_generator", "sequence_scorer", "checkpoint_utils", "train",
    "dictionary", "iterators", "data_utils", "backtranslation_dataset", "noising", "utils",
    "valid_subset_checks", "lstm_jitable", "export", "token_block_dataset",
    "average_checkpoints", "reproducibility", "fp16_optimizer", "memory_efficient_fp16",
    "metrics", "dataset", "binaries",
]
# of test_binaries, only these (the others train for minutes on CPU)
BINARIES = ("test_transformer or test_lstm or test_fconv or test_generation or test_eval_bleu "
            "or test_update_freq or test_raw or test_activation")
PLUGIN_CONFTEST = '''\
"""fairseq_ot imported before fairseq's own tests (tests/test_stock_fairseq.py)."""
import fairseq_ot


def pytest_report_header():
    return f"fairseq_ot: {fairseq_ot.__file__}"
'''


def test_a_mock_trainer_is_left_to_fairseqs_load_checkpoint(tmp_path):
    """As fairseq's test_train.py loads checkpoints: no patch of
    load_checkpoint asks a MagicMock trainer for its config (finished_training
    compared a MagicMock --max-update with 0)."""
    trainer = MagicMock()
    trainer.load_checkpoint.return_value = None  # no checkpoint yet
    extra_state, epoch_itr = checkpoint_utils.load_checkpoint(
        CheckpointConfig(save_dir=str(tmp_path)), trainer)
    assert extra_state is None and epoch_itr is trainer.get_train_iterator.return_value
    trainer.get_train_iterator.assert_called_once_with(epoch=1, load_dataset=True)


@pytest.mark.skipif(not SUITE.is_dir(), reason=f"{SUITE} is absent")
def test_stock_fairseq_tests_pass_as_well_with_the_plugin(tmp_path):
    stock, plugin = (_copy_of_suite(tmp_path / name) for name in ("stock", "plugin"))
    (plugin / "conftest.py").write_text(PLUGIN_CONFTEST)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import fairseq_ot  # noqa: F401\n")
    runs = [_start_subset(stock, pythonpath=None),
            _start_subset(plugin, pythonpath=os.pathsep.join([str(site), str(REPO)]))]
    (_, stock_results), (plugin_output, plugin_results) = (_finish(*run) for run in runs)
    assert f"fairseq_ot: {REPO / 'fairseq_ot' / '__init__.py'}" in plugin_output, plugin_output
    broken = {test: plugin_results.get(test, ("missing", "not run"))
              for test, (outcome, _) in stock_results.items() if outcome == "passed"}
    broken = {test: message for test, (outcome, message) in broken.items() if outcome != "passed"}
    assert not broken, "pass stock, not with the plugin:\n" + "\n".join(
        f"{test}: {message}" for test, message in sorted(broken.items()))


def _copy_of_suite(root):
    """A copy of the suite at `root`, its own rootdir (an empty pytest.ini:
    neither this project's pytest.ini nor its tests/conftest.py apply)."""
    shutil.copytree(SUITE, root)
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


def _start_subset(root, pythonpath):
    """pytest on the suite's CPU subset at `root`, started; its output goes
    to root/output.txt (a file: neither run waits on a full pipe), its junit
    XML to root/results.xml."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "pytest", "--tb=no", "-p", "no:cacheprovider",
               "--junitxml", str(root / "results.xml"),
               "-k", f"not test_binaries or {BINARIES}",
               *(f"tests/test_{module}.py" for module in MODULES)]
    with open(root / "output.txt", "w") as output:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    return process, root


def _finish(process, root):
    """The output of the run started at `root` and {test: (outcome, first
    line of its failure)} from its junit XML."""
    process.wait()
    output = (root / "output.txt").read_text()
    # pytest's status 1: some tests failed (many do, stock), anything else: no run
    assert process.returncode in (0, 1), output[-4000:]
    return output, _outcomes(root / "results.xml")


def _outcomes(results):
    """{test: (outcome, the first line of its failure)} from a junit XML file."""
    return {f"{case.get('classname')}::{case.get('name')}": _outcome(case)
            for case in ElementTree.parse(results).iter("testcase")}


def _outcome(case):
    """A junit testcase's outcome: failure, error, skipped or passed."""
    for child in case:
        if child.tag in ("failure", "error"):
            return child.tag, (child.get("message") or "").partition("\n")[0]
        if child.tag == "skipped":
            return "skipped", ""
    return "passed", ""

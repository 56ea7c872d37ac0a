"""Checkpoints record the symbols of their task's dictionaries
(fairseq_ot/compat/vocabulary_fingerprint.py). A checkpoint used with the
data-bin of another corpus whose dictionaries have the same size (the toy
corpus's words renamed) is refused in one line naming both dictionary files
and the first symbol that differs: by fairseq-generate, on resume, with
--finetune-from-model and --mediator-init, in one process and in two. Without
the record (stock fairseq) a checkpoint loads with a warning and generates
as with it."""

import json
import logging
import shutil

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data import Dictionary
from fairseq.dataclass.configs import GenerationConfig

from conftest import TINY_TRANSFORMER, USER_DIR, run_cli
from fairseq_ot.compat.vocabulary_fingerprint import KEY
from fairseq_ot.errors import FlagError
from fairseq_ot.tasks.mediator import MEDIATOR_ARGS
from test_data_parallel_and_resumption import RUNNER, free_port, train_several

COMMON = ["--user-dir", USER_DIR, "--cpu", *TINY_TRANSFORMER, "--dropout", "0",
          "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "300", "--num-workers", "0",
          "--disable-validation", "--no-epoch-checkpoints", "--seed", "1",
          "--ddp-backend", "legacy_ddp"]
MLE = ["--task", "translation", "--criterion", "label_smoothed_cross_entropy"]
COT = ["--task", "mediator_translation", "--criterion", "cot"]
# a mediator that a plain checkpoint of TINY_TRANSFORMER fits
GENERATOR_SIZED_MEDIATOR = ["--mediator-embed-dim", "32", "--mediator-hidden-dim", "64",
                            "--mediator-dropout", "0"]
TWO_PROCESSES = ["--distributed-world-size", "2", "--distributed-backend", "gloo",
                 "--distributed-init-method", "env://", "--distributed-no-spawn",
                 "--distributed-rank", "-1", "--device-id", "0"]


def data_bin_with(source, destination, rewrite):
    """A copy of the data-bin `source` whose dictionaries' lines are
    `rewrite(lines)`; the binarized data is kept."""
    shutil.copytree(source, destination)
    for name in ("dict.src.txt", "dict.tgt.txt"):
        lines = (source / name).read_text().splitlines()
        (destination / name).write_text("".join(f"{line}\n" for line in rewrite(lines)))
    return destination


def renamed(lines):
    """Every word renamed: the same size, other words, the same indices in
    the data (as another corpus's would be)."""
    return [f"{word}_b {count}" for word, count in (line.split() for line in lines)]


@pytest.fixture(scope="module")
def runs(toy_data_bin, tmp_path_factory):
    """other/ (the toy data-bin, words renamed), fewer/ (8 symbols fewer);
    NAME/checkpoint_last.pt of an MLE model (mle), one trained on other/
    (other_mle) and a cot model (cot)."""
    root = tmp_path_factory.mktemp("vocabulary")
    other = data_bin_with(toy_data_bin, root / "other", renamed)
    data_bin_with(toy_data_bin, root / "fewer", lambda lines: lines[:-8])
    trainings = {
        "mle": [toy_data_bin, *MLE, "--max-update", "2"],
        "other_mle": [other, *MLE, "--max-update", "1"],
        "cot": [toy_data_bin, *COT, "--max-update", "1"],
    }
    train_several([([*args, *COMMON, "--save-dir", root / name], root / f"{name}.log")
                   for name, args in trainings.items()], root, processes=1)
    return root


def refusal(checkpoint, trained_on, data):
    """The message for a checkpoint trained on the data-bin `trained_on`,
    loaded with the data-bin `data` (one of them the toy corpus, the other
    its words renamed): the first word differs."""
    first = [(path / "dict.src.txt").read_text().split()[0] for path in (trained_on, data)]
    return (f"{checkpoint} was trained with another source dictionary: symbol 4 is "
            f"{first[0]!r} in {trained_on / 'dict.src.txt'} (the checkpoint's), "
            f"{first[1]!r} in {data / 'dict.src.txt'} (the data's)")


def hypotheses(path):
    """{sentence id: best beam-2 hypothesis of at most 10 tokens} on the test
    set, as fairseq-generate builds the search for the checkpoint's task;
    and the task."""
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(path)])
    task.load_dataset("test")
    search = task.build_generator(models, GenerationConfig(beam=2, max_len_b=10))
    batches = task.get_batch_iterator(task.dataset("test"), max_sentences=64)
    found = {}
    for sample in batches.next_epoch_itr(shuffle=False):
        beams = task.inference_step(search, models, sample)
        for sentence, beam in zip(sample["id"].tolist(), beams):
            found[sentence] = beam[0]["tokens"].tolist()
    return found, task


def assert_refused(code, output, message, program="fairseq-train"):
    assert code == 2 and "Traceback" not in output, output[-3000:]
    assert output.splitlines()[-1] == f"{program}: error: {message}"


def test_checkpoints_record_their_dictionaries(runs, toy_data_bin):
    for name in ("mle", "cot"):
        task_state = torch.load(runs / name / "checkpoint_last.pt", weights_only=True)["task_state"]
        for role, language in (("source", "src"), ("target", "tgt")):
            path = toy_data_bin / f"dict.{language}.txt"
            assert task_state[KEY][role] == {"file": str(path),
                                             "symbols": Dictionary.load(str(path)).symbols}
    assert MEDIATOR_ARGS in task_state  # the mediator task's own state beside it


def test_generate_refuses_another_dictionary(runs, toy_data_bin):
    code, output = run_cli(
        "fairseq-generate", runs / "other", "--user-dir", USER_DIR, "--cpu",
        "--task", "translation", "--path", runs / "mle" / "checkpoint_last.pt",
        "--gen-subset", "test", "--beam", "2", "--batch-size", "64", check=False)
    assert "H-" not in output  # no garbage translations before the refusal
    assert_refused(code, output,
                   refusal(runs / "mle" / "checkpoint_last.pt", toy_data_bin, runs / "other"),
                   program="fairseq-generate")


def test_cot_checkpoint_refuses_another_dictionary(runs, toy_data_bin):
    """As fairseq-generate --task mediator_translation loads it."""
    with pytest.raises(FlagError) as error:
        checkpoint_utils.load_model_ensemble_and_task(
            [str(runs / "cot" / "checkpoint_last.pt")], arg_overrides={"data": str(runs / "other")})
    assert str(error.value) == refusal(runs / "cot" / "checkpoint_last.pt", toy_data_bin,
                                       runs / "other")


def test_an_ensemble_refuses_the_file_of_another_dictionary(runs, toy_data_bin):
    """As fairseq's test_checkpoint_utils loads two models: the task is the
    first checkpoint's, the second file (trained on other/) is named."""
    other_mle = runs / "other_mle" / "checkpoint_last.pt"
    with pytest.raises(FlagError) as error:
        checkpoint_utils.load_model_ensemble_and_task(
            [str(runs / "mle" / "checkpoint_last.pt"), str(other_mle)])
    assert str(error.value) == refusal(other_mle, runs / "other", toy_data_bin)


def test_a_dictionary_of_another_size_is_refused_with_both_sizes(runs, toy_data_bin):
    with pytest.raises(FlagError) as error:
        checkpoint_utils.load_model_ensemble_and_task(
            [str(runs / "mle" / "checkpoint_last.pt")], arg_overrides={"data": str(runs / "fewer")})
    assert str(error.value) == (
        f"{runs / 'mle' / 'checkpoint_last.pt'} was trained with another source dictionary: "
        f"64 symbols in {toy_data_bin / 'dict.src.txt'} (the checkpoint's), 56 in "
        f"{runs / 'fewer' / 'dict.src.txt'} (the data's)")


def test_resume_refuses_another_dictionary(runs, toy_data_bin, tmp_path):
    save_dir = tmp_path / "resumed"
    shutil.copytree(runs / "mle", save_dir)
    checkpoint = save_dir / "checkpoint_last.pt"
    before = checkpoint.read_bytes()
    code, output = run_cli("fairseq-train", runs / "other", *COMMON, *MLE, "--max-update", "4",
                           "--save-dir", save_dir, check=False)
    assert_refused(code, output, refusal(checkpoint, toy_data_bin, runs / "other"))
    assert checkpoint.read_bytes() == before  # nothing trained on


def test_finetune_refuses_another_dictionary(runs, toy_data_bin, tmp_path):
    mle = runs / "mle" / "checkpoint_last.pt"
    code, output = run_cli("fairseq-train", runs / "other", *COMMON, *MLE, "--max-update", "1",
                           "--finetune-from-model", mle, "--save-dir", tmp_path / "run",
                           check=False)
    assert_refused(code, output, refusal(mle, toy_data_bin, runs / "other"))
    assert not (tmp_path / "run" / "checkpoint_last.pt").exists()


def test_mediator_init_refuses_another_dictionary(runs, toy_data_bin, tmp_path):
    """The generator's checkpoint fits; the mediator's was trained on other/."""
    other_mle = runs / "other_mle" / "checkpoint_last.pt"
    code, output = run_cli(
        "fairseq-train", toy_data_bin, *COMMON, *COT, *GENERATOR_SIZED_MEDIATOR,
        "--max-update", "1", "--finetune-from-model", runs / "mle" / "checkpoint_last.pt",
        "--mediator-init", other_mle, "--save-dir", tmp_path / "run", check=False)
    assert_refused(code, output, refusal(other_mle, runs / "other", toy_data_bin))


@pytest.mark.parametrize("name", ["mle", "cot"])
def test_checkpoint_without_record_loads_with_a_warning_and_generates_alike(
        runs, toy_data_bin, tmp_path, caplog, name):
    recorded = runs / name / "checkpoint_last.pt"
    state = torch.load(recorded, weights_only=True)
    del state["task_state"][KEY]
    stock = tmp_path / "stock.pt"
    torch.save(state, stock)
    with caplog.at_level(logging.WARNING, logger="fairseq_ot"):
        expected, task = hypotheses(recorded)
        assert not caplog.records
        found, _ = hypotheses(stock)
    # the task keeps its own state, not the checkpoint's record
    assert KEY not in task.state.state_dict
    assert (MEDIATOR_ARGS in task.state.state_dict) == (name == "cot")
    assert len(expected) == 37 and found == expected
    assert [record.getMessage() for record in caplog.records] == [
        f"{stock} records no vocabulary (stock fairseq or an older fairseq-ot wrote it): "
        f"not checked against the data's {toy_data_bin / 'dict.src.txt'}, "
        f"{toy_data_bin / 'dict.tgt.txt'}"]


def test_two_processes_record_and_refuse_on_resume(runs, toy_data_bin, tmp_path):
    """2 updates in 2 processes, then a resume of them with other/ (the same
    processes: tests/fairseq_train_several.py), refused on each rank."""
    save_dir = tmp_path / "two"
    spec = tmp_path / "runs.json"
    spec.write_text(json.dumps([
        {"args": [str(arg) for arg in [data, *COMMON, *TWO_PROCESSES, *MLE, "--max-update",
                                       updates, "--save-dir", save_dir]],
         "log": str(tmp_path / f"{updates}_rank{{rank}}.log")}
        for data, updates in ((toy_data_bin, 2), (runs / "other", 4))]))
    code, output = run_cli("torchrun", "--nproc_per_node", 2, "--master_addr", "127.0.0.1",
                           "--master_port", free_port(), RUNNER, spec, check=False)
    checkpoint = save_dir / "checkpoint_last.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert state["optimizer_history"][-1]["num_updates"] == 2
    assert state["task_state"][KEY]["target"]["file"] == str(toy_data_bin / "dict.tgt.txt")
    assert code != 0
    # each rank refuses: none is left waiting for rank 0 (gloo's traceback)
    program = RUNNER.name
    errors = [line for line in output.splitlines() if line.startswith(f"{program}: error:")]
    assert errors == [f"{program}: error: {refusal(checkpoint, toy_data_bin, runs / 'other')}"] * 2
    assert "Connection closed" not in output

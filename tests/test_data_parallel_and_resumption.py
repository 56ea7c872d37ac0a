"""Every criterion through real fairseq-train runs, a few updates each:

- data parallel: 2 processes (torchrun, gloo, legacy_ddp) x batch B log the
  same losses and end with the same parameters as 1 process with
  --update-freq 2, which sees the same batches (fairseq gives batch i to rank
  i % 2) and reduces its two logging outputs as a list, where 2 processes sum
  theirs across ranks;
- resumption: N/2 updates, a stop, N/2 more from checkpoint_last.pt log and
  end exactly as N updates in one go (the 1-process run above);
- --memory-efficient-fp16 on CPU logs finite losses.

Dropout is 0: fairseq's dropout draws from torch's global generator, whose
stream depends on how batches are spread over processes; the criterions'
own draws come from a generator of the batch (fairseq_ot/modules/batch_random).
The distill runs read a tiny teacher trained first, in the same process."""

import json
import math
import sys

import pytest
import torch
from fairseq.criterions import CRITERION_REGISTRY

from conftest import REPO, TINY_TRANSFORMER, USER_DIR, free_port, run_cli
from criterion_flags import CRITERIA, TEACHER, teacher_args, with_teacher

RUNNER = REPO / "tests" / "fairseq_train_several.py"

UPDATES = 4
# logged per update by the trainer, not the criterion, or timings
NOT_COMPARED = {"epoch", "wps", "ups", "wall", "train_wall", "gb_free", "loss_scale", "clip"}


def train_records(log):
    """The train_inner records of a --log-format json log, by update number."""
    records = [json.loads(line.split("| train_inner | ", 1)[1])
               for line in log.read_text().splitlines() if "| train_inner | {" in line]
    return {int(record["num_updates"]): record for record in records}


def train_several(runs, root, processes):
    """fairseq-train for every (args, log) of `runs` in one process (one per
    rank under torchrun)."""
    spec = root / f"runs_{processes}.json"
    spec.write_text(json.dumps([{"args": [str(a) for a in args], "log": str(log)}
                                for args, log in runs]))
    if processes == 1:
        run_cli(sys.executable, RUNNER, spec)
        return
    run_cli("torchrun", "--nproc_per_node", processes, "--master_addr", "127.0.0.1",
            "--master_port", free_port(), RUNNER, spec)


def parameters(save_dir):
    return torch.load(save_dir / "checkpoint_last.pt", weights_only=True)["model"]


def selected_criteria(session):
    """The criteria of this module's tests that the session runs (all of
    CRITERIA unless -k or node ids select fewer): the runs of the others are
    not made."""
    names = {item.callspec.params["name"] for item in session.items
             if getattr(item, "module", None) is not None and item.module.__name__ == __name__
             and "name" in getattr(getattr(item, "callspec", None), "params", {})}
    return [name for name in CRITERIA if name in names]


@pytest.fixture(scope="module")
def runs(toy_data_bin, tmp_path_factory, request):
    """For every criterion, folders one/ (N updates, 1 process, --update-freq
    2), two/ (2 processes), resumed/ (N/2 updates, then N) and fp16/, each
    with its logs (train*.log) and checkpoint_last.pt."""
    root = tmp_path_factory.mktemp("runs")
    single, distributed = [], []
    names = selected_criteria(request.session)
    teacher = root / "teacher"
    if any(TEACHER in CRITERIA[name] for name in names):  # trained before the runs that read it
        teacher.mkdir()
        single.append((teacher_args(toy_data_bin, teacher), teacher / "train.log"))
    for name in names:
        criterion_args = with_teacher(CRITERIA[name], teacher / "checkpoint_last.pt")
        def run(folder, *extra, log="train.log"):
            save_dir = root / name / folder
            save_dir.mkdir(parents=True, exist_ok=True)
            args = [
                toy_data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation",
                *TINY_TRANSFORMER, "--dropout", "0", *criterion_args,
                "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "300",
                "--num-workers", "0", "--disable-validation", "--no-epoch-checkpoints",
                "--save-dir", save_dir, "--seed", "1", "--log-format", "json",
                "--log-interval", "1", *extra,
            ]
            return args, save_dir / log

        steps = ["--max-update", str(UPDATES), "--update-freq", "2"]
        halfway = ["--max-update", str(UPDATES // 2), "--update-freq", "2"]
        single += [run("one", *steps), run("resumed", *halfway, log="first.log"),
                   run("resumed", *steps, log="second.log"),
                   run("fp16", "--max-update", "2", "--memory-efficient-fp16",
                       "--fp16-init-scale", "4")]
        # legacy_ddp: pytorch_ddp needs devices (and cot/gjs need legacy_ddp anyway);
        # the last --ddp-backend given wins
        distributed.append(run(
            "two", "--max-update", str(UPDATES), "--ddp-backend", "legacy_ddp",
            "--distributed-world-size", "2", "--distributed-backend", "gloo",
            "--distributed-init-method", "env://", "--distributed-no-spawn",
            "--distributed-rank", "-1", "--device-id", "0", log="train_rank{rank}.log"))
    train_several(single, root, processes=1)
    train_several(distributed, root, processes=2)
    return root


def assert_same_records(records, expected, rel=1e-3, abs_=2e-3):
    assert sorted(records) == sorted(expected)
    for update, record in expected.items():
        keys = set(record) - NOT_COMPARED
        assert set(records[update]) - NOT_COMPARED == keys
        for key in keys:
            assert math.isclose(float(records[update][key]), float(record[key]),
                                rel_tol=rel, abs_tol=abs_), (update, key, records[update], record)


def assert_same_parameters(found, expected, atol):
    assert found.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.allclose(found[name], tensor, rtol=0, atol=atol), (
            name, float((found[name] - tensor).abs().max()))


@pytest.mark.parametrize("name", list(CRITERIA))
def test_two_processes_equal_one_with_update_freq(runs, name):
    one_go = train_records(runs / name / "one" / "train.log")
    assert sorted(one_go) == list(range(1, UPDATES + 1))
    # the two ranks' logging outputs are summed by all-reduce (fairseq's fast
    # path, taken when the criterion allows it): bsz, wpb and every ratio of
    # sums (loss per token, ss_replaced, ...) must come out the same
    flags = CRITERIA[name]
    assert CRITERION_REGISTRY[flags[flags.index("--criterion") + 1]].logging_outputs_can_be_summed()
    assert_same_records(train_records(runs / name / "two" / "train_rank0.log"), one_go)
    assert_same_parameters(parameters(runs / name / "two"), parameters(runs / name / "one"),
                           atol=1e-5)


@pytest.mark.parametrize("name", list(CRITERIA))
def test_resuming_from_checkpoint_last_equals_training_in_one_go(runs, name):
    first = train_records(runs / name / "resumed" / "first.log")
    assert sorted(first) == list(range(1, UPDATES // 2 + 1))
    second = train_records(runs / name / "resumed" / "second.log")
    assert_same_records({**first, **second}, train_records(runs / name / "one" / "train.log"),
                        rel=0, abs_=0)
    resumed = parameters(runs / name / "resumed")
    if "mediator_translation" in CRITERIA[name]:
        assert any(key.startswith("mediator.") for key in resumed)
    assert_same_parameters(resumed, parameters(runs / name / "one"), atol=0)


@pytest.mark.parametrize("name", list(CRITERIA))
def test_memory_efficient_fp16_on_cpu_logs_finite_losses(runs, name):
    records = train_records(runs / name / "fp16" / "train.log")
    assert sorted(records) == [1, 2]
    for record in records.values():
        # loss_scale: fairseq's fp16 optimizer ran
        assert "loss_scale" in record, record
        assert math.isfinite(float(record["loss"])) and float(record["loss"]) > 0, record

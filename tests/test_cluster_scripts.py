"""scripts/cluster/: the torchrun launcher on its own, and the Slurm batch job
submitted to a real one-node Slurm on localhost (tests/slurm_cluster.py): it
trains on two processes, a job requeued mid-run resumes from checkpoint_last.pt
instead of starting over and, requeued once finished, trains nothing, the
warning signal before the time limit requeues the job, and a checkpoint_last.pt
truncated by a kill is restored first."""

import json
import os
import re
import subprocess
import time

import pytest
import torch

import fairseq_ot  # noqa: F401  (allow-lists fairseq's checkpoint classes for torch.load)
from conftest import REPO, TINY_TRANSFORMER, build, run_cli
from fairseq_ot.recipes import recipe_args
from slurm_cluster import SlurmCluster, missing_binaries

LAUNCH = REPO / "scripts" / "cluster" / "launch.sh"
SBATCH = REPO / "scripts" / "cluster" / "train.sbatch"
RESTORE = REPO / "scripts" / "cluster" / "restore_last_checkpoint.py"
# The toy_translation recipe with a smaller model; --log-interval 1 logs every update.
FAST = [*TINY_TRANSFORMER, "--log-interval", "1"]
CPU_PROCESSES = ["--cpu", "--nproc-per-node", "2"]


def checkpoint_updates(path):
    return torch.load(path, weights_only=True)["optimizer_history"][-1]["num_updates"]


def logged_updates(start):
    """The update numbers of one start's per-update records (fairseq logs some
    twice, when a mid-epoch checkpoint follows them)."""
    return sorted({int(r["num_updates"]) for r in start["records"] if "num_updates" in r})


def log_records(run_dir):
    """fairseq's JSON records in RUN_DIR/train.log, split at each start of training."""
    starts = []
    for line in (run_dir / "train.log").read_text().splitlines():
        if line.startswith("training on "):
            starts.append({"devices": int(line.split()[2]), "records": []})
        elif line.startswith('{"'):
            starts[-1]["records"].append(json.loads(line))
    return starts


def updates_per_epoch(data_bin, processes):
    """fairseq's own count of the updates in one epoch of the recipe's batches
    shared among ``processes`` data-parallel workers."""
    recipe = recipe_args("toy_translation", "ot_seq")
    task, _, _ = build(data_bin, "--criterion", "label_smoothed_cross_entropy")
    task.load_dataset("train")
    iterator = task.get_batch_iterator(
        task.dataset("train"), max_tokens=int(recipe[recipe.index("--max-tokens") + 1]),
        required_batch_size_multiple=8, seed=int(recipe[recipe.index("--seed") + 1]),
        num_shards=processes, shard_id=0,
    )
    return len(iterator)


def assert_trained_on_two_processes(run_dir, data_bin, max_update):
    assert checkpoint_updates(run_dir / "checkpoints" / "checkpoint_last.pt") == max_update
    [start] = log_records(run_dir)
    assert start["devices"] == 2
    assert logged_updates(start) == list(range(1, max_update + 1))
    epoch_1 = next(r for r in start["records"] if r.get("epoch") == 1 and "train_num_updates" in r)
    # Two workers split each epoch's batches: half the updates of one process.
    assert updates_per_epoch(data_bin, 2) < updates_per_epoch(data_bin, 1)
    assert int(epoch_1["train_num_updates"]) == updates_per_epoch(data_bin, 2)


def test_launcher_trains_two_cpu_processes(toy_data_bin, tmp_path):
    run_dir = tmp_path / "run"
    run_cli(LAUNCH, *CPU_PROCESSES, "toy_translation", "ot_seq", toy_data_bin, run_dir,
            *FAST, "--max-update", "6")
    assert_trained_on_two_processes(run_dir, toy_data_bin, 6)


@pytest.mark.parametrize("arguments,message", [
    (["toy_translation", "ot_seq", "{missing}", "{run}"], "data directory .*missing does not exist"),
    (["no_such_recipe", "ot_seq", "{data}", "{run}"], "no recipe 'no_such_recipe'"),
    (["toy_translation", "no_such_loss", "{data}", "{run}"],
     "recipe 'toy_translation' has no flags for criterion 'no_such_loss'"),
    (["--cpu", "--launcher", "slurm", "toy_translation", "ot_seq", "{data}", "{run}"],
     "--launcher slurm needs GPUs"),
    (["toy_translation", "ot_seq", "{data}"], "usage: launch.sh"),
])
def test_launcher_refuses_bad_arguments(toy_data_bin, tmp_path, arguments, message):
    paths = {"missing": tmp_path / "missing", "run": tmp_path / "run", "data": toy_data_bin}
    code, output = run_cli(LAUNCH, *[a.format(**paths) for a in arguments], check=False)
    assert code == 2
    assert re.search(message, output), output
    assert not (tmp_path / "run").exists()


def test_batch_script_outside_slurm_says_so():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    result = subprocess.run(["bash", SBATCH, "toy_translation", "ot_seq", "DATA", "RUN"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "submit with sbatch; on one machine use scripts/cluster/launch.sh" in result.stderr


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm is not installed (no {', '.join(missing)}): apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("the test's Slurm runs slurmd as root, which needs root")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.env["OMP_NUM_THREADS"] = "1"
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def submit(slurm, data_bin, run_dir, max_update):
    """The batch job on one node, two CPU processes, checkpoints every 5 updates;
    Slurm's output goes to RUN_DIR.out."""
    return slurm.sbatch(
        f"--output={run_dir}.out", "--nodes=1", "--ntasks-per-node=1", "--cpus-per-task=2",
        SBATCH, *CPU_PROCESSES, "--save-interval-updates", "5",
        "toy_translation", "ot_seq", data_bin, run_dir, *FAST, "--max-update", max_update,
    )


def test_sbatch_trains_on_two_processes(slurm, toy_data_bin, tmp_path):
    run_dir = tmp_path / "run"
    job = submit(slurm, toy_data_bin, run_dir, 12)
    assert slurm.wait_job(job, timeout=240)["JobState"] == "COMPLETED", run_dir.with_suffix(".out").read_text()
    assert_trained_on_two_processes(run_dir, toy_data_bin, 12)


def test_requeued_job_resumes_from_checkpoint_last(slurm, toy_data_bin, tmp_path):
    # Long enough that the job is still running when the requeue reaches it.
    run_dir, max_update = tmp_path / "run", 60
    job = submit(slurm, toy_data_bin, run_dir, max_update)
    last = run_dir / "checkpoints" / "checkpoint_last.pt"
    deadline = time.monotonic() + 180
    saved_before_requeue = None
    while saved_before_requeue is None:
        assert slurm.job(job)["JobState"] in {"PENDING", "RUNNING"}, run_dir.with_suffix(".out").read_text()
        assert time.monotonic() < deadline, "no checkpoint_last.pt after 180 s"
        time.sleep(0.2)
        try:
            saved_before_requeue = checkpoint_updates(last)
        except (FileNotFoundError, EOFError, RuntimeError):
            pass  # not written yet, or fairseq is still copying it from checkpoint_best.pt
    slurm.run("scontrol", "requeue", job)

    final = slurm.wait_job(job, timeout=240)
    output = run_dir.with_suffix(".out").read_text()
    assert final["JobState"] == "COMPLETED" and final["Restarts"] == "1", output
    assert "start 0 on 1 node" in output and "start 1 on 1 node" in output
    after_restart = output.split("start 1 on 1 node", 1)[1]
    loaded = re.search(r"Loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ (\d+) updates\)", after_restart)
    assert loaded, after_restart[-3000:]
    resumed_at = int(loaded.group(1))
    assert saved_before_requeue <= resumed_at < max_update

    first, second = log_records(run_dir)
    assert first["devices"] == second["devices"] == 2
    assert logged_updates(second) == list(range(resumed_at + 1, max_update + 1))
    assert checkpoint_updates(last) == max_update

    # Requeued once finished (a pre-emption racing the job's end): nothing is
    # trained, no checkpoint is rewritten.
    checkpoints = run_dir / "checkpoints"
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in checkpoints.iterdir()}
    slurm.run("scontrol", "requeue", job)
    assert slurm.job(job)["Restarts"] == "2"
    final = slurm.wait_job(job, timeout=240)
    output = run_dir.with_suffix(".out").read_text()
    assert final["JobState"] == "COMPLETED", output
    after_finish = output.split("start 2 on 1 node", 1)[1]
    assert f"training is finished (update {max_update} of --max-update {max_update}): nothing to train" in after_finish
    assert [start["records"] for start in log_records(run_dir)[2:]] == [[]]
    assert {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in checkpoints.iterdir()} == before


FAKE_SRUN = """#!/usr/bin/env bash
# Stands in for srun: records its arguments, and runs until killed on the first start.
echo "start ${SLURM_RESTART_COUNT:-0}: $*" >> "$FAKE_SRUN_LOG"
[[ ${SLURM_RESTART_COUNT:-0} -ge 1 ]] || exec sleep 120
"""


@pytest.mark.parametrize("launcher,step", [
    ([], r"--ntasks=1 --ntasks-per-node=1 --kill-on-bad-exit=1 --cpus-per-task 2 \S+/launch\.sh "
         r"--nnodes 1 --master-addr \S+ --master-port \d+ toy_translation ot_seq DATA RUN"),
    (["--launcher", "fairseq"],
     r"--kill-on-bad-exit=1 --cpus-per-task 2 \S+/launch\.sh --launcher slurm --master-port \d+ "
     r"toy_translation ot_seq DATA RUN"),
])
def test_usr1_before_the_time_limit_requeues_the_job(slurm, tmp_path, launcher, step):
    """The batch script's trap, with srun replaced by a stub: Slurm's warning
    signal (--signal=B:USR1@120, sent here by scancel) requeues the job, which
    starts again under the same id."""
    (tmp_path / "bin").mkdir()
    srun = tmp_path / "bin" / "srun"
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    log = tmp_path / "srun.log"
    job = slurm.sbatch(
        f"--output={tmp_path}/job.out", "--cpus-per-task=2", SBATCH, *launcher,
        "toy_translation", "ot_seq", "DATA", "RUN",
        env={"PATH": f"{tmp_path / 'bin'}{os.pathsep}{slurm.env['PATH']}", "FAKE_SRUN_LOG": str(log)},
    )
    deadline = time.monotonic() + 60
    while not log.exists():
        assert time.monotonic() < deadline, "the job did not start within 60 s"
        time.sleep(0.2)
    slurm.run("scancel", "--batch", "--signal=USR1", job)

    final = slurm.wait_job(job, timeout=60)
    output = (tmp_path / "job.out").read_text()
    assert final["JobState"] == "COMPLETED" and final["Restarts"] == "1", output
    assert f"USR1 before the time limit: requeueing job {job}" in output
    starts = log.read_text().splitlines()
    assert [line.split(":")[0] for line in starts] == ["start 0", "start 1"]
    assert all(re.fullmatch(rf"start \d: {step}", line) for line in starts), starts


# launch.sh runs it so: the standard library alone (-S: not even site-packages)
RESTORE_COMMAND = ("python", "-I", "-S", RESTORE)


def test_truncated_checkpoint_last_is_restored_from_the_most_updates(tmp_path):
    """A kill while fairseq copies checkpoint_last.pt leaves it truncated. The
    folder was copied with `cp -r`, newest file first: the restore goes by the
    update count each checkpoint records, not by modification time."""
    for name, updates in [("checkpoint_2_10.pt", 10), ("checkpoint_best.pt", 10), ("checkpoint4.pt", 4),
                          ("checkpoint_1_5.pt", 5)]:
        torch.save({"optimizer_history": [{"num_updates": 1}, {"num_updates": updates}]}, tmp_path / name)
        time.sleep(0.01)  # distinct modification times, the oldest update last
    intact = (tmp_path / "checkpoint_2_10.pt").read_bytes()
    (tmp_path / "checkpoint_best.pt").write_bytes(intact[: len(intact) // 2])  # the copy was cut short too
    (tmp_path / "checkpoint_last.pt").write_bytes(intact[:100])

    _, output = run_cli(*RESTORE_COMMAND, tmp_path)
    [kept] = [path.name for path in tmp_path.glob("checkpoint_last.pt.damaged-*")]
    assert output == (f"{tmp_path}/checkpoint_last.pt is truncated (a zip archive of 100 bytes whose end "
                      f"is missing): kept it as {kept} and restored it from checkpoint_2_10.pt, the intact "
                      "checkpoint with the most updates: training goes back to update 10\n")
    assert (tmp_path / kept).read_bytes() == intact[:100]
    assert torch.load(tmp_path / "checkpoint_last.pt")["optimizer_history"][-1]["num_updates"] == 10
    assert not list(tmp_path.glob("*restoring*"))

    _, output = run_cli(*RESTORE_COMMAND, tmp_path)  # intact now: left alone
    assert output == ""


def test_checkpoint_last_with_no_intact_source_is_an_error(tmp_path):
    (tmp_path / "checkpoint_last.pt").write_bytes(b"PK\x03\x04 cut")
    code, output = run_cli(*RESTORE_COMMAND, tmp_path, check=False)
    assert code == 1 and output == (
        f"error: cannot resume from {tmp_path}/checkpoint_last.pt: it is truncated (a zip archive of "
        f"8 bytes whose end is missing), and {tmp_path} holds no intact checkpoint\n")
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint_last.pt"]

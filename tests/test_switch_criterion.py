"""scripts/switch_criterion.py: a checkpoint continued under another
criterion keeps its optimizer state, learning-rate schedule and update
count, against fairseq's own resumption as the oracle."""

import shutil

import pytest
import torch
from fairseq.criterions import CRITERION_REGISTRY

from fairseq_ot.evaluation.train_log import read_train_log

from conftest import TINY_TRANSFORMER, USER_DIR, load_script, one_line_error, run_cli

switch_criterion = load_script("switch_criterion")

MLE = ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
GJS = ["--criterion", "gjs", "--gjs-pi", "0.5"]


def train(data_bin, save_dir, criterion, updates):
    """fairseq-train to ``updates``, resuming from save_dir/checkpoint_last.pt;
    returns the learning rate logged at each update."""
    save_dir.mkdir(exist_ok=True)
    log = save_dir / f"train_{updates}.log"
    run_cli("fairseq-train", data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation",
            *TINY_TRANSFORMER, "--dropout", "0", *criterion, "--optimizer", "adam", "--lr", "0.003",
            "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "3", "--max-tokens", "300",
            "--max-update", str(updates), "--num-workers", "0", "--disable-validation",
            "--no-epoch-checkpoints", "--save-dir", save_dir, "--log-interval", "1",
            "--log-format", "json", "--log-file", log, "--seed", "2")
    return {int(update): stats["lr"] for update, stats in read_train_log(log).train_inner.items()}


@pytest.fixture(scope="module")
def mle_at_2(toy_data_bin, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("mle")
    train(toy_data_bin, save_dir, MLE, 2)
    return save_dir / "checkpoint_last.pt"


def continued(data_bin, source, folder, name, criterion):
    folder.mkdir()
    switch_criterion.main([str(source), str(folder / "checkpoint_last.pt"), name])
    rates = train(data_bin, folder, criterion, 5)
    return rates, torch.load(folder / "checkpoint_last.pt", weights_only=True)


def test_same_criterion_through_the_script_is_fairseqs_own_resumption(toy_data_bin, mle_at_2, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(mle_at_2, plain / "checkpoint_last.pt")
    plain_rates = train(toy_data_bin, plain, MLE, 5)
    rates, state = continued(toy_data_bin, mle_at_2, tmp_path / "switched", "label_smoothed_cross_entropy", MLE)
    assert rates == plain_rates and sorted(rates) == [3, 4, 5]
    expected = torch.load(plain / "checkpoint_last.pt", weights_only=True)["model"]
    assert all(torch.equal(state["model"][key], value) for key, value in expected.items())


def test_another_criterion_continues_the_schedule_and_the_update_count(toy_data_bin, mle_at_2, tmp_path):
    mle_rates = train(toy_data_bin, tmp_path / "straight", MLE, 5)
    rates, state = continued(toy_data_bin, mle_at_2, tmp_path / "gjs", "gjs", GJS)
    # inverse_sqrt past its 3 warm-up updates: 0.003 * sqrt(3 / update), logged to 6 digits
    decay = pytest.approx({u: 0.003 * (3 / u) ** 0.5 for u in (3, 4, 5)}, rel=1e-5)
    assert rates == {u: mle_rates[u] for u in (3, 4, 5)} == decay
    history = state["optimizer_history"]
    assert [h["criterion_name"] for h in history][-2:] == ["GJSCriterion", "GJSCriterion"]
    assert history[-1]["num_updates"] == 5


def test_the_best_score_of_another_criterion_is_forgotten(tmp_path):
    # a best validation loss of MLE (4.36) would keep gjs (about 1.4) or ot_seq (MLE + OT) from
    # ever writing checkpoint_best.pt, or choose it on the wrong scale
    state = {"model": {}, "criterion": None, "last_optimizer_state": {"state": {}},
             "optimizer_history": [{"criterion_name": "LabelSmoothedCrossEntropyCriterion", "num_updates": 7}],
             "extra_state": {"best": 4.36, "val_loss": 4.4}}
    torch.save(state, tmp_path / "mle.pt")
    for name, kept in (("gjs", {"val_loss": 4.4}), ("label_smoothed_cross_entropy", {"best": 4.36, "val_loss": 4.4})):
        switch_criterion.main([str(tmp_path / "mle.pt"), str(tmp_path / f"{name}.pt"), name])
        assert torch.load(tmp_path / f"{name}.pt", weights_only=True)["extra_state"] == kept


def test_refusals_name_the_problem(mle_at_2, tmp_path, capsys):
    out = tmp_path / "out.pt"
    assert one_line_error(capsys, switch_criterion.main, [str(mle_at_2), str(out), "gsj"]).endswith(
        "error: unknown criterion 'gsj'; registered: " + ", ".join(sorted(CRITERION_REGISTRY)))
    state = torch.load(mle_at_2, weights_only=True)
    state["last_optimizer_state"] = None
    torch.save(state, tmp_path / "weights_only.pt")
    assert one_line_error(capsys, switch_criterion.main, [str(tmp_path / "weights_only.pt"), str(out), "gjs"]
                          ).endswith(f"error: {tmp_path / 'weights_only.pt'} holds no optimizer state to continue from")
    assert not out.exists()


def test_switching_to_a_mediator_criterion_is_refused(mle_at_2, tmp_path, capsys):
    # the optimizer state holds the model alone: fairseq-train --task mediator_translation died on
    # its param group sizes, 12 frames deep
    out = tmp_path / "out.pt"
    error = one_line_error(capsys, switch_criterion.main, [str(mle_at_2), str(out), "cot"])
    assert error.endswith(
        f"error: cot trains a mediator, which the optimizer state of {mle_at_2} does not cover: start it "
        f"from the model with fairseq-train --task mediator_* --finetune-from-model {mle_at_2} --mediator-init ...")
    assert not out.exists()


def test_switching_from_a_mediator_task_is_refused(mle_at_2, tmp_path, capsys):
    # a cot checkpoint continued as ot_seq: "Cannot load model parameters" at fairseq-train
    state = torch.load(mle_at_2, weights_only=True)
    state["cfg"]["task"]["_name"] = "mediator_translation"
    state["optimizer_history"][-1]["criterion_name"] = "CotCriterion"
    cot = tmp_path / "cot.pt"
    torch.save(state, cot)
    out = tmp_path / "out.pt"
    for criterion in ("ot_seq", "cot"):
        error = one_line_error(capsys, switch_criterion.main, [str(cot), str(out), criterion])
        assert error.endswith(
            f"error: {cot} was trained with a mediator (task mediator_translation), which its optimizer state "
            f"covers too: extract its generator (scripts/extract_generator.py) and start {criterion} from it "
            "with fairseq-train --finetune-from-model")
    assert not out.exists()


def test_an_existing_destination_is_replaced_only_with_force(mle_at_2, tmp_path, capsys):
    out = tmp_path / "out.pt"
    out.write_bytes(b"kept")
    assert one_line_error(capsys, switch_criterion.main, [str(mle_at_2), str(out), "gjs"]).endswith(
        f"error: {out} exists: pass --force to replace it")
    assert out.read_bytes() == b"kept"
    switch_criterion.main([str(mle_at_2), str(out), "gjs", "--force"])
    assert torch.load(out, weights_only=True)["optimizer_history"][-1]["criterion_name"] == "GJSCriterion"


def test_the_source_is_never_overwritten(mle_at_2, tmp_path, capsys):
    source = tmp_path / "mle.pt"
    shutil.copy(mle_at_2, source)
    before = source.read_bytes()
    for destination in (str(source), f"{tmp_path}/./mle.pt"):
        error = one_line_error(capsys, switch_criterion.main, [str(source), destination, "gjs", "--force"])
        assert error.endswith(f"error: {destination} is the source checkpoint: write to another file")
    assert source.read_bytes() == before

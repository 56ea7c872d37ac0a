"""scripts/extract_generator.py: the generator of a mediator-task checkpoint
as a plain checkpoint, and the refusals that leave every file as it was
(one line, exit status 2). The checkpoints are hand-made: the tool reads
only the task config and the model's keys."""

import pytest
import torch

from conftest import load_script, one_line_error

extract_generator = load_script("extract_generator")


def mediator_checkpoint(path):
    """A checkpoint of mediator_translation as fairseq writes one, in miniature."""
    torch.save({
        "cfg": {"task": {"_name": "mediator_translation", "mediator_arch": "", "data": "data-bin"}},
        "model": {"generator.w": torch.ones(2), "mediator.w": torch.zeros(3)},
        "criterion": None, "last_optimizer_state": {"state": {}},
        "optimizer_history": [{"criterion_name": "CotCriterion", "num_updates": 3}],
    }, path)
    return path


@pytest.fixture
def cot(tmp_path):
    return mediator_checkpoint(tmp_path / "cot.pt")


def test_the_generator_becomes_a_plain_checkpoint(cot, tmp_path):
    extract_generator.main([str(cot), str(tmp_path / "generator.pt")])
    state = torch.load(tmp_path / "generator.pt", weights_only=True)
    assert state["cfg"]["task"] == {"_name": "translation", "data": "data-bin"}
    assert list(state["model"]) == ["w"] and torch.equal(state["model"]["w"], torch.ones(2))
    assert state["last_optimizer_state"] is None


def test_a_plain_checkpoint_is_refused(cot, tmp_path, capsys):
    state = torch.load(cot, weights_only=True)
    state["cfg"]["task"]["_name"] = "translation"
    torch.save(state, tmp_path / "plain.pt")
    out = tmp_path / "out.pt"
    error = one_line_error(capsys, extract_generator.main, [str(tmp_path / "plain.pt"), str(out)])
    assert error.endswith(f"error: {tmp_path / 'plain.pt'} is not a mediator-task checkpoint (task "
                          "'translation'; mediator tasks: mediator_captioning, mediator_language_modeling, "
                          "mediator_translation)")
    assert not out.exists()


def test_an_existing_destination_is_replaced_only_with_force(cot, tmp_path, capsys):
    out = tmp_path / "out.pt"
    out.write_bytes(b"kept")
    assert one_line_error(capsys, extract_generator.main, [str(cot), str(out)]).endswith(
        f"error: {out} exists: pass --force to replace it")
    assert out.read_bytes() == b"kept"
    extract_generator.main([str(cot), str(out), "--force"])
    assert list(torch.load(out, weights_only=True)["model"]) == ["w"]


def test_the_source_is_never_overwritten(cot, tmp_path, capsys):
    # it overwrote its input, the mediator and the optimizer state lost
    before = cot.read_bytes()
    link = tmp_path / "link.pt"
    link.symlink_to(cot)
    for destination in (str(cot), f"{tmp_path}/./cot.pt", str(link)):
        error = one_line_error(capsys, extract_generator.main, [str(cot), destination, "--force"])
        assert error.endswith(f"error: {destination} is the source checkpoint: write to another file")
    assert cot.read_bytes() == before

"""scripts/parameter_drift.py: the norm of a model's change between
checkpoints against numpy on the concatenated parameters (tied embeddings
once, a mediator-task checkpoint's generator alone), the refusals in one
line, and a real first update of a fresh Adam against its closed form: each
parameter with a gradient moves by lr * g / (|g| + eps / sqrt(1 - beta2))."""

import json
import math

import numpy as np
import torch

from conftest import TINY_TRANSFORMER, USER_DIR, load_script, one_line_error, run_cli
from fairseq_ot.evaluation.parameter_drift import parameter_drift

parameter_drift_cli = load_script("parameter_drift")


def checkpoint(path, model, updates, task="translation"):
    torch.save({"cfg": {"task": {"_name": task}}, "model": model,
                "optimizer_history": [{"criterion_name": "X", "num_updates": updates}]}, path)
    return path


def tied_model(seed):
    generator = torch.Generator().manual_seed(seed)
    embedding = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    return {"encoder.embed_tokens.weight": embedding, "decoder.output_projection.weight": embedding,
            "layer.bias": torch.randn(5, generator=generator, dtype=torch.float64),
            "layer.version": torch.tensor([2])}


def flat(model):
    return np.concatenate([model["encoder.embed_tokens.weight"].numpy().ravel(), model["layer.bias"].numpy()])


def test_the_norms_are_those_of_the_concatenated_parameters(tmp_path, capsys):
    models = [tied_model(seed) for seed in (1, 2, 3)]
    paths = [checkpoint(tmp_path / f"c{k}.pt", model, 10 * k) for k, model in enumerate(models)]
    rows = parameter_drift(paths)
    vectors = [flat(model) for model in models]
    assert [row["updates"] for row in rows] == [0, 10, 20]
    assert [row["updates_between"] for row in rows] == [None, 10, 10]
    assert rows[0]["parameters"] == 26 and rows[0]["step"] is None and rows[0]["total"] == 0
    for k in (1, 2):
        step = np.linalg.norm(vectors[k] - vectors[k - 1])
        assert math.isclose(rows[k]["step"], step, rel_tol=1e-12)
        assert math.isclose(rows[k]["step_rms"], step / math.sqrt(26), rel_tol=1e-12)
        total = np.linalg.norm(vectors[k] - vectors[0])
        assert math.isclose(rows[k]["total"], total, rel_tol=1e-12)
        assert math.isclose(rows[k]["relative_total"], total / np.linalg.norm(vectors[0]), rel_tol=1e-12)

    out = tmp_path / "drift.json"
    parameter_drift_cli.main([str(path) for path in paths] + ["--json", str(out)])
    assert json.loads(out.read_text()) == rows
    assert f"| 20 | 10 | {rows[2]['step']:.6g} |" in capsys.readouterr().out


def test_a_mediator_checkpoint_counts_its_generator_alone(tmp_path):
    def mediator_state(generator, mediator):
        return {"generator.w": torch.tensor(generator), "mediator.w": torch.tensor(mediator)}

    paths = [checkpoint(tmp_path / "a.pt", mediator_state([0.0, 0.0], [0.0]), 1, "mediator_translation"),
             checkpoint(tmp_path / "b.pt", mediator_state([3.0, 4.0], [100.0]), 2, "mediator_translation")]
    rows = parameter_drift(paths)
    assert rows[1]["parameters"] == 2 and rows[1]["step"] == 5.0


def test_bad_input_is_refused_in_one_line(tmp_path, capsys):
    first = checkpoint(tmp_path / "a.pt", tied_model(1), 1)
    other = checkpoint(tmp_path / "b.pt", {**tied_model(2), "extra.weight": torch.zeros(2)}, 2)
    reshaped = checkpoint(tmp_path / "c.pt", {**tied_model(2), "layer.bias": torch.zeros(4)}, 2)
    assert one_line_error(capsys, parameter_drift_cli.main, [str(first), str(other)]).endswith(
        f"error: {first} and {other} hold different models (extra.weight is in one only)")
    assert one_line_error(capsys, parameter_drift_cli.main, [str(first), str(reshaped)]).endswith(
        f"error: {first} and {reshaped} hold different models (layer.bias has shape [5] in one, [4] in the other)")
    missing = tmp_path / "missing.pt"
    assert one_line_error(capsys, parameter_drift_cli.main, [str(first), str(missing)]).endswith(
        f"error: {missing}: no such file")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(first.read_bytes()[:200])
    assert f"error: cannot load checkpoint {damaged}: it is " in one_line_error(
        capsys, parameter_drift_cli.main, [str(first), str(damaged)])
    not_fairseq = tmp_path / "tensor.pt"
    torch.save({"weights": torch.zeros(1)}, not_fairseq)
    assert "not a fairseq checkpoint" in one_line_error(capsys, parameter_drift_cli.main, [str(not_fairseq)])


def test_a_fresh_adams_first_update_moves_each_parameter_by_about_lr(toy_data_bin, tmp_path):
    lr = 1e-3

    def train(save_dir, *args):
        run_cli("fairseq-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation",
                *TINY_TRANSFORMER, "--dropout", "0", "--criterion", "label_smoothed_cross_entropy",
                "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--adam-eps", "1e-8",
                "--lr-scheduler", "fixed", "--max-tokens", "500", "--seed", "1",
                "--no-epoch-checkpoints", "--save-dir", save_dir, *args)

    train(tmp_path / "start", "--lr", "0.01", "--max-update", "5")
    start = tmp_path / "start" / "checkpoint_last.pt"
    train(tmp_path / "fresh", "--lr", str(lr), "--max-update", "1", "--finetune-from-model", start)
    row = parameter_drift([start, tmp_path / "fresh" / "checkpoint_last.pt"])[1]

    before = torch.load(start, weights_only=True)["model"]
    after = torch.load(tmp_path / "fresh" / "checkpoint_last.pt", weights_only=True)["model"]
    kept = [name for name, tensor in before.items() if torch.is_floating_point(tensor)
            and name not in ("decoder.embed_tokens.weight", "decoder.output_projection.weight")]  # tied
    changes = torch.cat([(after[name].double() - before[name].double()).ravel() for name in kept])
    # the float32 parameters round each change by up to one unit in their last place
    rounding = torch.cat([torch.maximum(before[name].abs(), after[name].abs()).double().ravel()
                          for name in kept]) * torch.finfo(torch.float32).eps
    moved = int((changes != 0).sum())
    # |g| / (|g| + eps') <= 1, and close to 1 wherever |g| >> eps' = 1e-8 / sqrt(0.02)
    assert bool((changes.abs() <= lr + rounding).all())
    assert 0.98 * lr * math.sqrt(moved) <= row["step"] <= lr * math.sqrt(moved) * (1 + 1e-3)
    assert row["updates"] == 1 and row["parameters"] == changes.numel()

"""The `ot_seq` criterion against fairseq's own criterion and an exact OT
solver (POT's emd2), on a real fairseq task and transformer."""

import math

import numpy as np
import ot as pot
import pytest
import torch

from conftest import build
from fairseq_ot.modules.batch_random import batch_generator

# Enough IPOT iterations that its distance is the exact OT distance.
CONVERGED = ["--ot-iters", "400", "--ot-beta", "0.1"]


def loss_of(criterion, model, sample):
    loss, _, logging_output = criterion(model, sample)
    return loss, logging_output


def exact_ot(x, y):
    """emd2 with uniform marginals under cosine cost, in float64."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    cost = 1.0 - x @ y.T
    return pot.emd2(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), cost)


def predicted_embeddings(model, sample, belief=lambda logits: torch.softmax(logits, -1)):
    """E^T belief(logits), computed from the logits in float64, per real target
    token (belief: [B, T, V] -> [B, T, V])."""
    with torch.no_grad():
        logits = model(**sample["net_input"])[0].double()
        embedding = model.decoder.embed_tokens.weight.double()
        beliefs = belief(logits) @ embedding
    for s, target in enumerate(sample["target"]):
        real = target.ne(model.decoder.padding_idx)
        yield beliefs[s, real].numpy(), embedding[target[real]].numpy()


def test_zero_weight_equals_label_smoothed_cross_entropy(toy_data_bin, batch):
    _, model, reference = build(
        toy_data_bin, "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"
    )
    _, _, criterion = build(
        toy_data_bin, "--criterion", "ot_seq", "--label-smoothing", "0.1", "--ot-weight", "0"
    )
    expected, expected_log = loss_of(reference, model, batch)
    actual, actual_log = loss_of(criterion, model, batch)
    assert torch.equal(actual, expected)
    assert actual_log["nll_loss"] == expected_log["nll_loss"]


def test_ot_term_is_gamma_times_summed_exact_ot(toy_data_bin, batch):
    _, model, reference = build(toy_data_bin, "--criterion", "label_smoothed_cross_entropy")
    _, _, criterion = build(
        toy_data_bin, "--criterion", "ot_seq", "--ot-weight", "0.7", *CONVERGED
    )
    mle, _ = loss_of(reference, model, batch)
    loss, logging_output = loss_of(criterion, model, batch)
    distances = [exact_ot(pred, ref) for pred, ref in predicted_embeddings(model, batch)]
    assert math.isclose(float(logging_output["ot_loss_sum"]), sum(distances), rel_tol=1e-3)
    assert math.isclose(float(loss - mle), 0.7 * sum(distances), rel_tol=1e-3)


def test_copy_term_is_exact_ot_between_source_and_predictions(toy_data_bin, batch):
    _, model, criterion = build(
        toy_data_bin, "--criterion", "ot_seq", "--ot-weight", "0",
        "--ot-copy-weight", "1", *CONVERGED,
    )
    _, logging_output = loss_of(criterion, model, batch)
    embedding = model.encoder.embed_tokens.weight.detach().double().numpy()
    expected = 0.0
    for (pred, _), source in zip(predicted_embeddings(model, batch), batch["net_input"]["src_tokens"]):
        source = source[source.ne(model.encoder.padding_idx)].numpy()
        expected += exact_ot(embedding[source], pred)
    assert math.isclose(float(logging_output["ot_copy_loss_sum"]), expected, rel_tol=1e-3)


def test_warmup_follows_the_update_number_the_trainer_gives_the_task(toy_data_bin, batch):
    task, model, criterion = build(
        toy_data_bin, "--criterion", "ot_seq", "--ot-weight", "1", "--ot-warmup-updates", "100",
    )

    class Optimizer:  # task.train_step only calls optimizer.backward
        def backward(self, loss):
            loss.backward()

    optimizer = Optimizer()

    def ot_part(update_num):
        model.zero_grad()
        _, _, logging_output = task.train_step(batch, model, criterion, optimizer, update_num)
        # ot_loss_sum is unweighted; the weighted part is loss - (loss at weight 0)
        return float(logging_output["loss"]), float(logging_output["ot_loss_sum"])

    model.eval()  # the same forward for every call despite train_step's model.train()
    losses = {n: ot_part(n) for n in (0, 25, 100, 400)}
    mle = losses[0][0]
    ot_sum = losses[0][1]
    assert ot_sum > 0
    assert math.isclose(losses[25][0] - mle, 0.25 * ot_sum, rel_tol=1e-4)
    assert math.isclose(losses[100][0] - mle, ot_sum, rel_tol=1e-4)
    assert math.isclose(losses[400][0] - mle, ot_sum, rel_tol=1e-4)


def test_pad_only_target_gives_finite_loss_and_zero_ot(toy_data_bin, batch):
    _, model, criterion = build(toy_data_bin, "--criterion", "ot_seq", "--ot-weight", "1")
    sample = dict(batch, target=batch["target"].clone())
    sample["target"][0] = model.decoder.padding_idx
    loss, logging_output = loss_of(criterion, model, sample)
    alone = dict(sample, target=sample["target"][1:], net_input={
        key: value[1:] for key, value in sample["net_input"].items()
    })
    _, alone_log = loss_of(criterion, model, alone)
    assert torch.isfinite(loss)
    assert math.isclose(float(logging_output["ot_loss_sum"]), float(alone_log["ot_loss_sum"]),
                        rel_tol=1e-5)


@pytest.mark.parametrize("flag,value", [
    ("--ot-weight", "-0.1"), ("--ot-copy-weight", "-1"), ("--ot-beta", "0"),
    ("--ot-beta", "0.001"), ("--ot-iters", "0"), ("--ot-inner-iters", "0"),
    ("--ot-temperature", "0"), ("--ot-warmup-updates", "-5"), ("--label-smoothing", "1.5"),
])
def test_out_of_range_flags_are_refused_naming_the_flag(toy_data_bin, flag, value):
    with pytest.raises(ValueError, match=flag):
        build(toy_data_bin, "--criterion", "ot_seq", flag, value)


def test_unknown_solver_is_an_argparse_error(toy_data_bin, capsys):
    with pytest.raises(SystemExit):
        build(toy_data_bin, "--criterion", "ot_seq", "--ot-solver", "emd")
    assert "--ot-solver" in capsys.readouterr().err


def test_model_without_embedding_matrix_gets_a_one_line_error(toy_data_bin, batch):
    _, model, criterion = build(toy_data_bin, "--criterion", "ot_seq")

    class ModelWithoutEmbeddings(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder = torch.nn.Identity()  # a decoder with no embed_tokens
            self.forward = model.forward
            self.get_normalized_probs = model.get_normalized_probs
            self.get_targets = model.get_targets

    with pytest.raises(ValueError, match="decoder has an `embed_tokens`") as error:
        criterion(ModelWithoutEmbeddings(), batch)
    assert "\n" not in str(error.value)


def ot_sum(model, sample, belief):
    return sum(exact_ot(pred, ref) for pred, ref in predicted_embeddings(model, sample, belief))


def test_logits_belief_embeds_the_raw_logits(toy_data_bin, batch):
    """The released code's soft ids: E^T z with the raw logits z."""
    _, model, criterion = build(toy_data_bin, "--criterion", "ot_seq", "--ot-belief", "logits", *CONVERGED)
    _, logging_output = loss_of(criterion, model, batch)
    expected = ot_sum(model, batch, lambda logits: logits)
    assert math.isclose(float(logging_output["ot_loss_sum"]), expected, rel_tol=1e-3)
    # lprobs differ from z by a per-position constant, which E^T 1 != 0 does not absorb
    assert not math.isclose(expected, ot_sum(model, batch, lambda logits: torch.log_softmax(logits, -1)),
                            rel_tol=1e-2)


def test_gumbel_softmax_belief_is_seeded_by_the_update_and_the_sentences(toy_data_bin, batch):
    """softmax((log p + g) / tau) with g Gumbel noise from batch_generator(seed,
    update, ids), drawn for the real target positions in batch order; the
    same update gives the same loss, another update other noise."""
    _, model, criterion = build(toy_data_bin, "--criterion", "ot_seq", "--ot-belief", "gumbel_softmax",
                                "--ot-temperature", "0.5", "--seed", "3", *CONVERGED)
    real = batch["target"].ne(model.decoder.padding_idx)
    vocabulary = len(model.decoder.dictionary)

    def gumbel_belief(update):
        def belief(logits):
            uniforms = torch.rand((int(real.sum()), vocabulary), generator=batch_generator(3, update, batch["id"]))
            noise = torch.zeros(logits.shape, dtype=torch.float64)
            noise[real] = -torch.log(-torch.log(uniforms.double()))
            return torch.softmax((torch.log_softmax(logits, -1) + noise) / 0.5, -1)
        return belief

    _, first = loss_of(criterion, model, batch)
    _, again = loss_of(criterion, model, batch)
    assert float(first["ot_loss_sum"]) == float(again["ot_loss_sum"])
    assert math.isclose(float(first["ot_loss_sum"]), ot_sum(model, batch, gumbel_belief(0)), rel_tol=1e-3)
    criterion.set_num_updates(7)
    _, later = loss_of(criterion, model, batch)
    assert math.isclose(float(later["ot_loss_sum"]), ot_sum(model, batch, gumbel_belief(7)), rel_tol=1e-3)
    assert float(later["ot_loss_sum"]) != float(first["ot_loss_sum"])


def test_temperature_with_logits_belief_is_refused(toy_data_bin):
    with pytest.raises(ValueError, match="--ot-temperature 0.5 has no effect with --ot-belief logits"):
        build(toy_data_bin, "--criterion", "ot_seq", "--ot-belief", "logits", "--ot-temperature", "0.5")

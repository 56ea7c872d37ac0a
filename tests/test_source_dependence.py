"""fairseq_ot.evaluation.source_dependence against independent oracles:
fairseq's own label_smoothed_cross_entropy for the NLL, a decoder cut off from
the encoder for a gap of exactly zero, a constant encoder for zero spread."""

import math

import pytest
import torch

from conftest import TINY_TRANSFORMER, USER_DIR, build, load_script, run_cli
from fairseq_ot.evaluation.source_dependence import measure_source_dependence

EXAMPLES = 20


@pytest.fixture
def model_and_data(toy_data_bin):
    task, model, criterion = build(toy_data_bin, "--criterion", "label_smoothed_cross_entropy",
                                   "--label-smoothing", "0")
    task.load_dataset("valid")
    return model, task.dataset("valid"), criterion


def test_nll_equals_fairseq_criterion(model_and_data):
    model, dataset, criterion = model_and_data
    result = measure_source_dependence(model, dataset, EXAMPLES, batch_size=7)
    model.eval()
    with torch.no_grad():
        _, _, logging = criterion(model, dataset.collater([dataset[i] for i in range(EXAMPLES)]))
    expected_bits = logging["nll_loss"].item() / logging["ntokens"] / math.log(2)
    assert result.nll_bits == pytest.approx(expected_bits, rel=1e-5)
    assert result.examples == EXAMPLES


def test_gap_is_zero_exactly_when_decoder_ignores_encoder(model_and_data):
    model, dataset, _ = model_and_data
    # untrained, the source changes the NLL in either direction
    assert abs(measure_source_dependence(model, dataset, EXAMPLES).nll_gap_bits) > 0.01
    with torch.no_grad():
        for layer in model.decoder.layers:
            layer.encoder_attn.out_proj.weight.zero_()
            layer.encoder_attn.out_proj.bias.zero_()
    assert measure_source_dependence(model, dataset, EXAMPLES).nll_gap_bits == pytest.approx(0, abs=1e-6)


def test_spread_is_zero_for_constant_encoder(model_and_data):
    model, dataset, _ = model_and_data
    assert measure_source_dependence(model, dataset, EXAMPLES).encoder_spread > 0.1
    norm = model.encoder.layers[-1].final_layer_norm
    with torch.no_grad():
        norm.weight.zero_()
        norm.bias.normal_()
    assert measure_source_dependence(model, dataset, EXAMPLES).encoder_spread == pytest.approx(0, abs=1e-6)


def test_script_flags_a_model_that_ignores_its_source(toy_data_bin, tmp_path, capsys):
    run_cli("fairseq-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation",
            *TINY_TRANSFORMER, "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam",
            "--lr", "0.001", "--max-tokens", "1500", "--max-update", "1", "--save-dir", tmp_path,
            "--no-epoch-checkpoints", "--no-save-optimizer-state")
    checkpoint = tmp_path / "checkpoint_last.pt"
    state = torch.load(checkpoint, weights_only=False)
    for name, value in state["model"].items():
        if ".encoder_attn.out_proj." in name:
            value.zero_()
    torch.save(state, checkpoint)
    result = load_script("source_dependence").main([str(checkpoint), str(toy_data_bin), "--examples", "30"])
    assert result.nll_gap_bits == pytest.approx(0, abs=1e-6)
    assert "ignores its source" in capsys.readouterr().out

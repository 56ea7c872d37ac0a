"""The mediator task through fairseq's command lines: `cot` trains, its
checkpoint reloads with both networks, and generation from it equals
generation from the generator alone."""

import re

import pytest
import torch
from fairseq import checkpoint_utils

from conftest import REPO, TINY_TRANSFORMER, USER_DIR, run_cli
from fairseq_ot.models.generator_mediator import GeneratorMediatorModel


@pytest.fixture(scope="module")
def cot_checkpoint(toy_data_bin, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("cot")
    _, output = run_cli(
        "fairseq-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu",
        "--task", "mediator_translation", *TINY_TRANSFORMER,
        "--mediator-embed-dim", "16", "--mediator-hidden-dim", "32",
        "--criterion", "cot", "--optimizer", "adam", "--lr", "0.005",
        "--max-tokens", "1500", "--max-update", "20", "--save-dir", save_dir,
        "--no-epoch-checkpoints", "--ddp-backend", "legacy_ddp", "--seed", "1",
        "--log-format", "simple", "--log-interval", "5",
    )
    assert re.search(r"jsd \d", output), output[-3000:]
    return save_dir / "checkpoint_last.pt"


def hypotheses(output):
    return sorted(re.findall(r"^H-\d+\t.*$", output, flags=re.M))


def test_checkpoint_reloads_both_networks(cot_checkpoint):
    state = torch.load(cot_checkpoint, weights_only=True)
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(cot_checkpoint)])
    model = models[0]
    assert isinstance(model, GeneratorMediatorModel)
    assert model.mediator.encoder.embed_tokens.embedding_dim == 16
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state["model"][name]), name
    assert any(name.startswith("mediator.") for name in state["model"])


def test_generation_equals_the_generator_alone(toy_data_bin, cot_checkpoint, tmp_path):
    common = ["--cpu", "--gen-subset", "test", "--beam", "3", "--batch-size", "16",
              "--required-batch-size-multiple", "1"]
    _, with_mediator = run_cli(
        "fairseq-generate", toy_data_bin, "--user-dir", USER_DIR,
        "--task", "mediator_translation", "--path", cot_checkpoint, *common,
    )
    generator_only = tmp_path / "generator.pt"
    run_cli("python", REPO / "scripts" / "extract_generator.py", cot_checkpoint, generator_only)
    _, alone = run_cli(
        "fairseq-ot-generate", toy_data_bin, "--task", "translation",
        "--path", generator_only, *common,
    )
    assert len(hypotheses(alone)) == 37
    assert hypotheses(with_mediator) == hypotheses(alone)


def test_composite_optimizer_gives_each_network_its_learning_rate(tiny_lm_data_bin, tmp_path):
    _, output = run_cli(
        "fairseq-ot-hydra-train", "--config-dir", REPO / "fairseq_ot" / "recipes" / "cot_composite_lr",
        "--config-name", "cot_composite", f"common.user_dir={USER_DIR}",
        f"task.data={tiny_lm_data_bin}", "optimization.max_update=4",
        f"checkpoint.save_dir={tmp_path / 'ckpt'}", f"hydra.run.dir={tmp_path / 'hydra'}",
    )
    assert re.search(r"lr_generator 0\.001 \| lr_mediator 0\.003", output), output[-3000:]

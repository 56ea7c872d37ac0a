"""Warm start of the mediator tasks from a plain fairseq (MLE) checkpoint:
`--finetune-from-model MLE.pt` loads the generator, `--mediator-init`
starts the mediator (random, a copy of the generator, or another plain
checkpoint), a resume from checkpoint_last.pt re-applies neither, and a
checkpoint that does not fit is refused in one line. A mediator-task
checkpoint as `--finetune-from-model` gives its generator alone.

The warm starts train at learning rate 0, so every network must still hold
exactly the weights it started from. The fairseq-train runs share one process
(tests/fairseq_train_several.py): importing fairseq costs more than a run."""

import json
import sys

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.dataclass.configs import GenerationConfig

from conftest import REPO, TINY_TRANSFORMER, USER_DIR, build, run_cli
from fairseq_ot.errors import FlagError

RUNNER = REPO / "tests" / "fairseq_train_several.py"
TINY_LM = ["--arch", "transformer_lm", "--decoder-layers", "1", "--decoder-embed-dim", "16",
           "--decoder-ffn-embed-dim", "32", "--decoder-attention-heads", "2",
           "--sample-break-mode", "eos", "--tokens-per-sample", "16"]
# a mediator of the generator's sizes (TINY_TRANSFORMER), built from the flags
GENERATOR_SIZED_MEDIATOR = ["--mediator-embed-dim", "32", "--mediator-hidden-dim", "64",
                            "--mediator-dropout", "0"]
COMMON = ["--user-dir", USER_DIR, "--cpu", "--dropout", "0", "--optimizer", "adam",
          "--max-tokens", "500", "--num-workers", "0", "--disable-validation",
          "--no-epoch-checkpoints", "--seed", "1"]
FROZEN = ["--lr", "0", "--ddp-backend", "legacy_ddp"]  # warm starts: no weight may move


@pytest.fixture(scope="module")
def runs(toy_data_bin, tiny_lm_data_bin, tmp_path_factory):
    """The folder of the runs, NAME/checkpoint_last.pt and NAME.log each:
    two MLE translation models (mle_a, mle_b), an MLE language model (lm),
    and warm starts from them (cot_small: mle_b, a random mediator of the
    default sizes)."""
    root = tmp_path_factory.mktemp("warm_start")
    mle_a, mle_b, lm = (root / name / "checkpoint_last.pt" for name in ("mle_a", "mle_b", "lm"))
    translation = [toy_data_bin, *COMMON, *TINY_TRANSFORMER]
    mle = [*translation, "--task", "translation", "--criterion", "label_smoothed_cross_entropy",
           "--lr", "0.005", "--max-update", "3"]
    warm = [*translation, "--task", "mediator_translation", *FROZEN]
    runs = {
        "mle_a": mle,
        "mle_b": [*mle, "--seed", "2"],
        "lm": [tiny_lm_data_bin, *COMMON, *TINY_LM, "--task", "language_modeling",
               "--criterion", "cross_entropy", "--lr", "0.005", "--max-update", "2"],
        "cot": [*warm, "--criterion", "cot", "--finetune-from-model", mle_a,
                "--mediator-init", "generator", "--max-update", "1"],
        "cot_small": [*warm, "--criterion", "cot", "--finetune-from-model", mle_b, "--max-update", "1"],
        # gjs, the mediator from another checkpoint; then resumed with other checkpoints
        "gjs": [*warm, "--criterion", "gjs", "--gjs-mode", "mediator", *GENERATOR_SIZED_MEDIATOR,
                "--finetune-from-model", mle_a, "--mediator-init", mle_b, "--max-update", "2"],
        "gjs_resumed": [*warm, "--criterion", "gjs", "--gjs-mode", "mediator",
                        *GENERATOR_SIZED_MEDIATOR, "--finetune-from-model", mle_b,
                        "--mediator-init", mle_a, "--max-update", "4"],
        "lm_cot": [tiny_lm_data_bin, *COMMON, *TINY_LM, "--task", "mediator_language_modeling",
                   *FROZEN, "--criterion", "cot", "--finetune-from-model", lm,
                   "--mediator-init", "generator", "--max-update", "1"],
    }
    train_in_one_process(root, runs)
    return root


def train_in_one_process(root, runs):
    """fairseq-train each of `runs` ({NAME: arguments}), in order, into
    root/NAME (NAME_resumed: into root/NAME, resuming it), logging to root/NAME.log."""
    spec = []
    for name, args in runs.items():
        save_dir = root / name.replace("_resumed", "")
        spec.append({"args": [str(arg) for arg in [*args, "--save-dir", save_dir]],
                     "log": str(root / f"{name}.log")})
    (root / "runs.json").write_text(json.dumps(spec))
    run_cli(sys.executable, RUNNER, root / "runs.json")


def checkpoint(runs, name):
    return runs / name / "checkpoint_last.pt"


def weights(path, network=None):
    """The model's state dict in a checkpoint; `network`: only its keys, unprefixed."""
    state = torch.load(path, weights_only=True)["model"]
    if network is None:
        return state
    prefix = f"{network}."
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def assert_same_weights(found, expected):
    assert found.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(found[key], tensor), key


def load(path):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(path)])
    return models[0].eval(), task


def data_nll(model, batch):
    with torch.no_grad():
        log_probs = model.get_normalized_probs(model(**batch["net_input"]), log_probs=True)
    target = batch["target"]
    token_nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return token_nll[target.ne(model.decoder.dictionary.pad())].sum()


def beam_hypotheses(path):
    """{sentence id: best beam-3 hypothesis} on the test set, as fairseq-generate
    builds the search for the checkpoint's task."""
    model, task = load(path)
    task.load_dataset("test")
    search = task.build_generator([model], GenerationConfig(beam=3))
    batches = task.get_batch_iterator(task.dataset("test"), max_sentences=64)
    hypotheses = {}
    for sample in batches.next_epoch_itr(shuffle=False):
        for sentence, beam in zip(sample["id"].tolist(), task.inference_step(search, [model], sample)):
            hypotheses[sentence] = beam[0]["tokens"].tolist()
    return hypotheses


def test_generator_and_mediator_start_as_the_mle_model(runs, batch):
    mle = weights(checkpoint(runs, "mle_a"))
    warm = checkpoint(runs, "cot")
    assert_same_weights(weights(warm, "generator"), mle)
    assert_same_weights(weights(warm, "mediator"), mle)
    model, _ = load(warm)
    mle_model, _ = load(checkpoint(runs, "mle_a"))
    expected = data_nll(mle_model, batch)
    assert data_nll(model.generator, batch) == expected
    assert data_nll(model.mediator, batch) == expected


def test_generator_translates_as_the_mle_model(runs):
    hypotheses = beam_hypotheses(checkpoint(runs, "cot"))
    assert len(hypotheses) == 37
    assert hypotheses == beam_hypotheses(checkpoint(runs, "mle_a"))


def test_mediator_from_another_checkpoint_and_a_resume_reloads_neither(runs):
    """gjs from mle_a with the mediator of mle_b, 2 updates; resumed to 4
    updates with the two checkpoints swapped: checkpoint_last.pt wins."""
    log = (runs / "gjs_resumed.log").read_text()
    assert "Loaded checkpoint" in log and "(epoch 1 @ 2 updates)" in log
    assert "loading pretrained model" not in log
    resumed = checkpoint(runs, "gjs")
    assert torch.load(resumed, weights_only=True)["optimizer_history"][-1]["num_updates"] == 4
    mle_a, mle_b = weights(checkpoint(runs, "mle_a")), weights(checkpoint(runs, "mle_b"))
    assert not torch.equal(mle_a["encoder.embed_tokens.weight"], mle_b["encoder.embed_tokens.weight"])
    assert_same_weights(weights(resumed, "generator"), mle_a)
    assert_same_weights(weights(resumed, "mediator"), mle_b)


def test_a_mediator_checkpoint_gives_its_generator_and_mediator_init_the_mediator(runs, toy_data_bin, tmp_path):
    """gjs holds mle_a and mle_b as a mediator of the generator's sizes;
    cot_small mle_b and a mediator of the default sizes; cot mle_a twice.
    `--mediator-init generator` made a mediator of the generator's sizes,
    which loaded the mediator of gjs instead of a copy, and failed on that of
    cot_small in about 170 lines of size mismatch; random (the default
    sizes) failed on that of cot likewise."""
    warm = [toy_data_bin, *COMMON, *TINY_TRANSFORMER, "--task", "mediator_translation", *FROZEN,
            "--criterion", "cot", "--max-update", "1"]
    train_in_one_process(tmp_path, {
        "from_gjs": [*warm, "--finetune-from-model", checkpoint(runs, "gjs"), "--mediator-init", "generator"],
        "from_cot_small": [*warm, "--finetune-from-model", checkpoint(runs, "cot_small"),
                           "--mediator-init", "generator"],
        "random_from_cot": [*warm, "--finetune-from-model", checkpoint(runs, "cot")],
    })
    mle_a, mle_b = weights(checkpoint(runs, "mle_a")), weights(checkpoint(runs, "mle_b"))
    for name, mle in (("from_gjs", mle_a), ("from_cot_small", mle_b)):
        assert_same_weights(weights(checkpoint(tmp_path, name), "generator"), mle)
        assert_same_weights(weights(checkpoint(tmp_path, name), "mediator"), mle)
    assert_same_weights(weights(checkpoint(tmp_path, "random_from_cot"), "generator"), mle_a)
    mediator = weights(checkpoint(tmp_path, "random_from_cot"), "mediator")
    vocabulary = len(mle_a["encoder.embed_tokens.weight"])
    assert mediator["encoder.embed_tokens.weight"].shape == (vocabulary, 64)  # --mediator-embed-dim's default
    log = (tmp_path / "random_from_cot.log").read_text()
    assert (f"--finetune-from-model {checkpoint(runs, 'cot')} is a mediator-task checkpoint: its generator "
            "starts the generator, --mediator-init random the mediator") in log


def test_language_model_warm_start(runs):
    lm = weights(checkpoint(runs, "lm"))
    assert_same_weights(weights(checkpoint(runs, "lm_cot"), "generator"), lm)
    assert_same_weights(weights(checkpoint(runs, "lm_cot"), "mediator"), lm)


def test_checkpoint_of_another_dictionary_is_refused_in_one_line(runs, toy_data_bin, tmp_path):
    state = torch.load(checkpoint(runs, "mle_a"), weights_only=True)
    vocabulary, dim = state["model"]["encoder.embed_tokens.weight"].shape
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
                "decoder.output_projection.weight"):
        state["model"][key] = state["model"][key][:-3].clone()  # 3 words fewer
    other = tmp_path / "other_dictionary.pt"
    torch.save(state, other)
    code, output = run_cli(
        "fairseq-train", toy_data_bin, *COMMON, *TINY_TRANSFORMER, *FROZEN,
        "--task", "mediator_translation", "--criterion", "cot", "--max-update", "1",
        "--finetune-from-model", other, "--mediator-init", "generator",
        "--save-dir", tmp_path / "run", check=False)
    assert code == 2 and "Traceback" not in output
    assert output.splitlines()[-1] == (
        f"fairseq-train: error: --finetune-from-model {other}: encoder.embed_tokens.weight has "
        f"shape [{vocabulary - 3}, {dim}] in the checkpoint, [{vocabulary}, {dim}] in the "
        "generator (another dictionary or architecture)")


def warm_start(data_bin, *flags):
    """The model of a mediator_translation warm start, built but not yet loaded."""
    _, model, _ = build(data_bin, "--criterion", "cot", *flags, task="mediator_translation")
    return model


def test_checkpoints_of_another_architecture_are_refused(runs, toy_data_bin):
    """The language model as the generator's checkpoint; a translation model
    of the generator's sizes for a mediator of the default sizes."""
    lm, mle = checkpoint(runs, "lm"), checkpoint(runs, "mle_a")
    model = warm_start(toy_data_bin, "--finetune-from-model", str(lm), "--mediator-init", str(mle))
    with pytest.raises(FlagError, match=f"^--finetune-from-model {lm}: the generator has "
                       r"encoder\.\S+ and \d+ more, the checkpoint has not \(another architecture\)$"):
        model.load_state_dict(weights(lm), strict=True)
    with pytest.raises(FlagError, match=f"^--mediator-init {mle}: encoder.embed_tokens.weight "
                       r"has shape \[\d+, 32\] in the checkpoint, \[\d+, 64\] in the mediator "):
        model.load_state_dict(weights(mle), strict=True)


@pytest.mark.parametrize("flags,message", [
    (["--finetune-from-model", "mle.pt", "--mediator-init", "generator",
      "--mediator-embed-dim", "16"],
     "--mediator-embed-dim 16 differs from the generator's encoder_embed_dim 32: "
     "--mediator-init generator builds the mediator with the generator's model arguments"),
    (["--mediator-init", "generator"],
     "--mediator-init generator needs --finetune-from-model: it starts the mediator when the "
     "generator is warm-started"),
])
def test_mediator_init_flags_that_cannot_work(toy_data_bin, flags, message):
    with pytest.raises(FlagError) as error:
        warm_start(toy_data_bin, *flags)
    assert str(error.value) == message


class Backward:
    """What fairseq's task.train_step asks of its optimizer."""

    def backward(self, loss):
        loss.backward()


def has_gradient(network):
    return any(p.grad is not None and p.grad.any() for p in network.parameters())


def test_mediator_warmup_updates_train_the_mediator_alone(toy_data_bin, batch):
    task, model, criterion = build(toy_data_bin, "--criterion", "cot",
                                   "--cot-mediator-warmup-updates", "2",
                                   task="mediator_translation")
    for update in range(4):
        model.zero_grad()
        task.train_step(batch, model, criterion, Backward(), update)
        assert has_gradient(model.generator) == (update >= 2), update
        assert has_gradient(model.mediator), update
    model.eval()
    criterion.set_num_updates(0)
    assert criterion.is_generator_update(model)  # validation: the generator's terms count

"""`fused_lstm_lm`: its logits against its own incremental decoding, the LSTM
equations written out, and fairseq's lstm_lm given the same weights; seeded
sampling, beam search, scheduled sampling, the mediator tasks and a
fairseq-train run."""

import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils
from fairseq.sequence_generator import SequenceGenerator
from torch import nn

from conftest import USER_DIR, build, run_cli
from fairseq_ot.models.fused_lstm_lm import FusedLSTMLanguageModel
from fairseq_ot.modules.sampling import ancestral_sample

# two layers and an output projection: every part of the decoder in use
SIZES = ["--decoder-embed-dim", "6", "--decoder-hidden-size", "7", "--decoder-out-embed-dim", "5",
         "--decoder-layers", "2"]
FUSED = ["--arch", "fused_lstm_lm", *SIZES]
LM_DATA = ["--sample-break-mode", "eos", "--tokens-per-sample", "16"]
TOLERANCE = dict(atol=1e-5, rtol=0)


def build_lm(data_bin, arch, *flags, criterion="label_smoothed_cross_entropy"):
    """(task, model, criterion) of a language model with random weights far
    from uniform: distinct tokens get distinct distributions."""
    task, model, criterion = build(data_bin, "--criterion", criterion, *LM_DATA, *flags,
                                   arch=arch, task="language_modeling")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.7)
    return task, model.eval(), criterion


@pytest.fixture(scope="module")
def lm(tiny_lm_data_bin):
    return build_lm(tiny_lm_data_bin, FUSED)


@pytest.fixture(scope="module")
def valid_batch(lm):
    """The 120 sentences of 1 or 2 words and EOS, right-padded."""
    task = lm[0]
    task.load_dataset("valid")
    iterator = task.get_batch_iterator(task.dataset("valid"), max_sentences=120, seed=1)
    return next(iter(iterator.next_epoch_itr(shuffle=False)))


def random_tokens(dictionary, batch=3, length=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(dictionary.nspecial, len(dictionary), (batch, length), generator=generator)


def stepwise_logits(decoder, tokens):
    """Logits of every position, one token at a time through incremental_state."""
    state, steps = {}, []
    for t in range(tokens.size(1)):
        steps.append(decoder(tokens[:, : t + 1], incremental_state=state)[0])
        assert steps[-1].size(1) == 1  # only the newest token was read
    return torch.cat(steps, dim=1)


def lstm_equations(decoder, tokens):
    """The decoder's logits from its weights by the LSTM equations (gates
    input, forget, candidate, output; zero initial state), no nn.LSTM."""
    x = decoder.embed_tokens.weight[tokens]
    lstm = decoder.lstm
    for layer in range(lstm.num_layers):
        weight = lambda name: getattr(lstm, f"{name}_l{layer}")  # noqa: E731
        h = c = x.new_zeros(x.size(0), lstm.hidden_size)
        outputs = []
        for x_t in x.unbind(1):
            gates = (x_t @ weight("weight_ih").T + weight("bias_ih")
                     + h @ weight("weight_hh").T + weight("bias_hh"))
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        x = torch.stack(outputs, dim=1)
    x = decoder.additional_fc(x)
    return x @ decoder.fc_out.weight.T + decoder.fc_out.bias


@torch.no_grad()
def test_full_sequence_logits_equal_incremental_steps_and_the_lstm_equations(lm):
    task, model, _ = lm
    tokens = random_tokens(task.dictionary)
    logits = model(tokens)[0]
    assert logits.shape == (3, 6, len(task.dictionary))
    torch.testing.assert_close(stepwise_logits(model.decoder, tokens), logits, **TOLERANCE)
    torch.testing.assert_close(lstm_equations(model.decoder, tokens), logits, **TOLERANCE)


@torch.no_grad()
def test_lstm_lm_weights_load_and_give_lstm_lm_logits(tiny_lm_data_bin):
    task, lstm_lm, _ = build_lm(tiny_lm_data_bin, ["--arch", "lstm_lm", *SIZES])
    _, fused, _ = build_lm(tiny_lm_data_bin, FUSED)
    fused.load_state_dict(lstm_lm.state_dict())
    tokens = random_tokens(task.dictionary)
    torch.testing.assert_close(fused(tokens)[0], lstm_lm(tokens)[0], **TOLERANCE)


@torch.no_grad()
def test_reordering_the_state_reorders_the_next_logits(lm):
    """Beam search moves hypotheses between rows: the state follows them."""
    task, model, _ = lm
    tokens = random_tokens(task.dictionary, length=4)
    state = {}
    model.decoder(tokens[:, :3], incremental_state=state)
    order = torch.tensor([2, 0, 2])
    model.decoder.reorder_incremental_state_scripting(state, order)
    reordered = model.decoder(tokens[order], incremental_state=state)[0][:, -1]
    torch.testing.assert_close(reordered, model(tokens)[0][order, -1], **TOLERANCE)


@torch.no_grad()
def test_beam_search_finds_what_it_finds_with_lstm_lm(tiny_lm_data_bin):
    """fairseq's SequenceGenerator on the same weights: lstm_lm's cells and
    state reordering as the reference."""
    task, lstm_lm, _ = build_lm(tiny_lm_data_bin, ["--arch", "lstm_lm", *SIZES])
    _, fused, _ = build_lm(tiny_lm_data_bin, FUSED)
    fused.load_state_dict(lstm_lm.state_dict())
    prefix = random_tokens(task.dictionary, batch=2, length=2, seed=4)
    sample = {"net_input": {"src_tokens": prefix, "src_lengths": torch.tensor([2, 2])}}
    hypotheses = []
    for model in (lstm_lm, fused):
        generator = SequenceGenerator([model], task.target_dictionary, beam_size=3, max_len_b=8)
        hypotheses.append(task.inference_step(generator, [model], sample))
    for reference, fused_hypotheses in zip(*hypotheses):
        assert [h["tokens"].tolist() for h in fused_hypotheses] == [h["tokens"].tolist() for h in reference]
        torch.testing.assert_close(torch.stack([h["score"] for h in fused_hypotheses]),
                                   torch.stack([h["score"] for h in reference]), **TOLERANCE)


class FullPrefixDecoder(nn.Module):
    """The decoder without incremental state: each step reads the whole prefix."""

    def __init__(self, decoder):
        super().__init__()
        self.inner = decoder

    def forward(self, prefix, encoder_out=None, incremental_state=None):
        return self.inner(prefix)


def test_seeded_sampling_is_reproducible_and_equals_full_prefix_decoding(lm):
    task, model, _ = lm
    dictionary = task.dictionary
    limits = torch.tensor([9, 4, 9, 9, 1, 9])

    def sample(sampled_model):
        generator = torch.Generator().manual_seed(11)
        return ancestral_sample(sampled_model, limits, dictionary.eos(), dictionary.pad(),
                                banned=(dictionary.pad(), dictionary.bos()), generator=generator)

    tokens, forced = sample(model)
    again = sample(model)
    full_prefix = sample(nn.ModuleDict({"decoder": FullPrefixDecoder(model.decoder)}))
    assert torch.equal(tokens, again[0]) and torch.equal(forced, again[1])
    assert torch.equal(tokens, full_prefix[0]) and torch.equal(forced, full_prefix[1])
    assert tokens.size(1) > 2 and len({tuple(row) for row in tokens.tolist()}) > 1  # not degenerate


def test_stepwise_scheduled_sampling_equals_one_forward_over_the_tokens_it_fed(
        tiny_lm_data_bin, lm, valid_batch):
    """Stepwise decoding (eps = 0: every input after the first is the model's
    own greedy prediction) through incremental_state in training: its logits
    and their gradients are those of one full forward over the fed tokens."""
    _, model, _ = lm
    _, _, criterion = build(tiny_lm_data_bin, "--criterion", "scheduled_sampling", "--ss-mode", "stepwise",
                            "--ss-prediction", "argmax", *LM_DATA, arch=FUSED, task="language_modeling")
    net_input = valid_batch["net_input"]
    (logits, _), mixed, _ = criterion.stepwise_forward(model, net_input, eps=0.0, generator=None)
    gold = net_input["src_tokens"]
    assert gold.eq(1).any() and not torch.equal(mixed, gold)  # padding kept, predictions fed
    full_logits = model(mixed)[0]
    torch.testing.assert_close(logits, full_logits, **TOLERANCE)
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    gradients = []
    for output in (logits, full_logits):
        model.zero_grad()
        (output * weights).sum().backward()
        gradients.append([p.grad.clone() for p in model.parameters()])
    for stepwise_grad, full_grad in zip(*gradients):
        torch.testing.assert_close(stepwise_grad, full_grad, atol=1e-5, rtol=1e-5)
    assert all(grad.abs().sum() > 0 for grad in gradients[0])


@pytest.mark.parametrize("criterion", [["--criterion", "cot"],
                                       ["--criterion", "gjs", "--gjs-mode", "mediator"]],
                         ids=["cot", "gjs-mediator"])
def test_mediator_tasks_train_both_fused_networks(tiny_lm_data_bin, valid_batch, criterion):
    _, model, criterion = build(
        tiny_lm_data_bin, *criterion, *LM_DATA, "--mediator-arch", "fused_lstm_lm",
        "--mediator-embed-dim", "9", "--mediator-hidden-dim", "10", "--cot-max-len-b", "6",
        arch=FUSED, task="mediator_language_modeling")
    assert isinstance(model.generator, FusedLSTMLanguageModel)
    assert isinstance(model.mediator, FusedLSTMLanguageModel)
    assert model.mediator.decoder.lstm.hidden_size == 10
    loss, _, _ = criterion(model, valid_batch)
    loss.backward()
    for network in (model.generator, model.mediator):
        assert all(p.grad is not None for p in network.parameters())
        assert sum(float(p.grad.abs().sum()) for p in network.parameters()) > 0


def first_logged_loss(output):
    """The loss (base 2, 3 decimals) of fairseq-train's first train_inner line."""
    records = re.findall(r"\| train_inner \| (\{.*\})", output)
    return float(json.loads(records[0])["loss"]), len(records)


def test_fairseq_train_logs_the_loss_of_its_first_batch(tiny_lm_data_bin, tmp_path):
    """One batch holds the whole training set; the first update's logged loss
    is the NLL of the freshly built model (same seed) on it, per token."""
    flags = ["--optimizer", "adam", "--lr", "0.01", "--batch-size", "500", "--max-update", "3"]
    _, output = run_cli(
        "fairseq-train", tiny_lm_data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "language_modeling",
        *FUSED, *LM_DATA, "--dropout", "0", "--criterion", "label_smoothed_cross_entropy",
        "--label-smoothing", "0", *flags, "--seed", "3", "--log-format", "json", "--log-interval", "1",
        "--no-epoch-checkpoints", "--num-workers", "0", "--save-dir", tmp_path,
    )
    logged, updates = first_logged_loss(output)
    assert updates == 3

    task, model, _ = build(tiny_lm_data_bin, "--criterion", "label_smoothed_cross_entropy", *LM_DATA,
                           arch=FUSED, task="language_modeling")
    task.load_dataset("train")
    iterator = task.get_batch_iterator(task.dataset("train"), max_sentences=500, seed=3)
    (batch,) = list(iterator.next_epoch_itr(shuffle=False))
    assert batch["nsentences"] == len(task.dataset("train"))
    with torch.no_grad():
        log_probs = F.log_softmax(model(**batch["net_input"])[0], dim=-1)
    target = batch["target"]
    nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)[target.ne(task.dictionary.pad())]
    assert abs(logged - float(nll.sum() / batch["ntokens"]) / math.log(2)) < 1e-3

    trained, _ = checkpoint_utils.load_model_ensemble([str(tmp_path / "checkpoint_last.pt")])
    assert isinstance(trained[0], FusedLSTMLanguageModel)
    assert not torch.equal(trained[0].decoder.fc_out.weight, model.decoder.fc_out.weight)

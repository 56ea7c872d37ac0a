"""`scheduled_sampling`: schedules against their closed forms, the criterion
against fairseq's label_smoothed_cross_entropy and against an independent
step-by-step decode, per-token coins, and the schedule across a resume."""

import math

import pytest
import torch

from conftest import TINY_TRANSFORMER, USER_DIR, build, run_cli
from fairseq_ot.modules.embedding_mixtures import mixture_weights
from fairseq_ot.modules.schedules import teacher_forcing_probability

TINY_LSTM = [
    "--arch", "lstm", "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
    "--encoder-hidden-size", "16", "--decoder-hidden-size", "16",
    "--decoder-out-embed-dim", "16",
]


@pytest.mark.parametrize("schedule,k,c,eps_min,warmup,update,expected", [
    ("constant", 0.7, 0, 0, 0, 12345, 0.7),
    ("linear", 1.0, 0.001, 0, 0, 300, 0.7),
    ("linear", 1.0, 0.001, 0.25, 0, 900, 0.25),  # floored
    ("linear", 0.9, 0.01, 0, 50, 60, 0.8),  # i counts from the end of the warm-up
    ("linear", 0.9, 0.01, 0, 50, 49, 1.0),  # pure teacher forcing in the warm-up
    ("exponential", 0.99, 0, 0, 0, 100, 0.99**100),
    ("exponential", 0.5, 0, 0, 0, 10**6, 0.0),
    ("inverse_sigmoid", 10, 0, 0, 0, 30, 10 / (10 + math.exp(3))),
    ("inverse_sigmoid", 2000, 0, 0, 0, 0, 2000 / 2001),
    ("inverse_sigmoid", 2000, 0, 0, 0, 15202, 2000 / (2000 + math.exp(15202 / 2000))),  # ~0.5
    ("inverse_sigmoid", 5, 0, 0, 0, 10**7, 0.0),  # no overflow
])
def test_schedule_values_match_closed_forms(schedule, k, c, eps_min, warmup, update, expected):
    eps = teacher_forcing_probability(schedule, update, k, c, eps_min, warmup)
    assert math.isclose(eps, expected, rel_tol=1e-4, abs_tol=1e-12)


@pytest.mark.parametrize("flag,value,schedule", [
    ("--ss-k", "0", "exponential"), ("--ss-k", "1.5", "linear"),
    ("--ss-k", "0.5", "inverse_sigmoid"), ("--ss-c", "-1", "linear"),
    ("--ss-min", "2", "linear"), ("--ss-warmup-updates", "-1", "linear"),
])
def test_impossible_schedules_are_refused_naming_the_flag(toy_data_bin, flag, value, schedule):
    with pytest.raises(ValueError, match=flag):
        build(toy_data_bin, "--criterion", "scheduled_sampling", "--ss-schedule", schedule,
              "--ss-k", "0.9" if flag != "--ss-k" else value, *([flag, value] if flag != "--ss-k" else []))


def scheduled_sampling(data_bin, *args, arch=TINY_TRANSFORMER):
    task, model, criterion = build(
        data_bin, "--criterion", "scheduled_sampling", "--label-smoothing", "0.1",
        *args, arch=arch,
    )
    model.train()  # dropout is 0: training mode only switches the mixing on
    return task, model, criterion


@pytest.mark.parametrize("mode", ["two_pass", "stepwise"])
def test_gold_inputs_equal_label_smoothed_cross_entropy(toy_data_bin, batch, mode):
    _, model, criterion = scheduled_sampling(
        toy_data_bin, "--ss-mode", mode, "--ss-schedule", "constant", "--ss-k", "1"
    )
    _, _, reference = build(
        toy_data_bin, "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"
    )
    loss, _, log = criterion(model, batch)
    expected, _, _ = reference(model, batch)
    assert torch.equal(loss, expected)
    assert log["ss_replaced"] == 0


def shifted_greedy_predictions(model, net_input, pad, bos):
    with torch.no_grad():
        logits = model(**net_input)[0]
    logits[..., [pad, bos]] = float("-inf")
    greedy = logits.argmax(-1)
    gold = net_input["prev_output_tokens"]
    expected = gold.clone()
    expected[:, 1:] = torch.where(gold[:, 1:].ne(pad), greedy[:, :-1], pad)
    return expected


def test_two_pass_at_eps_zero_feeds_the_shifted_greedy_predictions(toy_data_bin, batch):
    task, model, criterion = scheduled_sampling(toy_data_bin, "--ss-prediction", "argmax")
    pad, bos = task.target_dictionary.pad(), task.target_dictionary.bos()
    mixed, coins = criterion.two_pass_inputs(model, batch["net_input"], eps=0.0, generator=None)
    assert torch.equal(mixed, shifted_greedy_predictions(model, batch["net_input"], pad, bos))
    gold = batch["net_input"]["prev_output_tokens"]
    assert torch.equal(coins[:, 1:], gold[:, 1:].ne(pad)) and not coins[:, 0].any()


@pytest.mark.parametrize("arch", [TINY_TRANSFORMER, TINY_LSTM], ids=["transformer", "lstm"])
def test_stepwise_equals_an_independent_token_by_token_decode(toy_data_bin, batch, arch):
    """At eps = 0 with argmax, the prefix is the model's own free-running greedy
    output, recomputed here by full (non-incremental) forwards, and the loss
    is the NLL of the gold target given that prefix."""
    task, model, criterion = scheduled_sampling(
        toy_data_bin, "--ss-mode", "stepwise", "--ss-prediction", "argmax",
        "--ss-schedule", "constant", "--ss-k", "0", arch=arch,
    )
    pad, bos = task.target_dictionary.pad(), task.target_dictionary.bos()
    net_input = batch["net_input"]
    gold = net_input["prev_output_tokens"]
    expected = gold.clone()
    with torch.no_grad():
        for t in range(1, gold.size(1)):
            logits = model(**dict(net_input, prev_output_tokens=expected[:, :t]))[0][:, -1]
            logits[:, [pad, bos]] = float("-inf")
            expected[:, t] = torch.where(gold[:, t].ne(pad), logits.argmax(-1), pad)
    net_output, mixed, _ = criterion.stepwise_forward(model, net_input, eps=0.0, generator=None)
    assert torch.equal(mixed, expected)

    loss, _, _ = criterion(model, batch)
    _, _, reference = build(toy_data_bin, "--criterion", "label_smoothed_cross_entropy",
                            "--label-smoothing", "0.1", arch=arch)
    expected_loss, _, _ = reference(model, dict(batch, net_input=dict(net_input, prev_output_tokens=mixed)))
    assert math.isclose(float(loss), float(expected_loss), rel_tol=1e-5)


@pytest.mark.parametrize("mode", ["two_pass", "stepwise"])
def test_coins_are_per_token_and_never_touch_padding(toy_data_bin, batch, mode):
    eps = 0.6
    _, model, criterion = scheduled_sampling(
        toy_data_bin, "--ss-mode", mode, "--ss-schedule", "constant", "--ss-k", str(eps)
    )
    gold = batch["net_input"]["prev_output_tokens"]
    pad = criterion.padding_idx
    real = gold.ne(pad)
    real[:, 0] = False
    generator = torch.Generator().manual_seed(0)
    replaced, per_sentence = 0, []
    rounds = 40
    for _ in range(rounds):
        coins = criterion.replacement_coins(gold, eps, generator)
        assert not (coins & ~real).any()
        replaced += int(coins.sum())
        per_sentence.append(coins.sum(1).float() / real.sum(1))
    n = rounds * int(real.sum())
    fraction = replaced / n
    assert abs(fraction - (1 - eps)) < 4 * math.sqrt(eps * (1 - eps) / n)
    # Independent coins mix gold and model tokens inside a sentence of L inputs
    # with probability 1 - eps^L - (1 - eps)^L; one coin per sentence never does.
    fractions = torch.stack(per_sentence)
    observed = ((fractions > 0) & (fractions < 1)).double().mean()
    lengths = real.sum(1).double()
    expected = (1 - eps**lengths - (1 - eps) ** lengths).mean()
    assert expected > 0.15 and abs(observed - expected) < 0.1, (observed, expected)

    torch.manual_seed(1)
    _, _, log = criterion(model, batch)
    mixed_positions = log["ss_replaced"]
    assert 0 < mixed_positions < log["ss_inputs"]


def test_stepwise_needs_an_incremental_decoder(toy_data_bin, batch):
    _, model, criterion = scheduled_sampling(
        toy_data_bin, "--ss-mode", "stepwise", "--ss-schedule", "constant", "--ss-k", "0.5"
    )

    class PlainDecoder(torch.nn.Module):
        def forward(self, *args, **kwargs):
            return model.decoder(*args, **kwargs)

    model.decoder = PlainDecoder()
    with pytest.raises(ValueError, match="--ss-mode stepwise needs an incremental decoder"):
        criterion(model, batch)


def eps_log(output):
    """(num_updates, ss_eps) of every train_inner record of a json log."""
    import json

    records = [json.loads(line.split("| train_inner | ", 1)[1])
               for line in output.splitlines() if "| train_inner | {" in line]
    return [(int(r["num_updates"]), float(r["ss_eps"])) for r in records]


@pytest.mark.parametrize("arch,mode", [(TINY_TRANSFORMER, "two_pass"), (TINY_LSTM, "stepwise")],
                         ids=["transformer-two_pass", "lstm-stepwise"])
def test_fairseq_train_schedule_continues_after_resume(toy_data_bin, tmp_path, arch, mode):
    def train(max_update):
        return run_cli(
            "fairseq-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation",
            *arch, "--criterion", "scheduled_sampling", "--ss-mode", mode,
            "--ss-schedule", "linear", "--ss-k", "1", "--ss-c", "0.01",
            "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "1500",
            "--max-update", max_update, "--save-dir", tmp_path, "--no-epoch-checkpoints",
            "--log-format", "json", "--log-interval", "1", "--seed", "1",
        )[1]

    first, resumed = eps_log(train(12)), eps_log(train(24))
    assert [n for n, _ in first] == list(range(1, 13))
    assert [n for n, _ in resumed] == list(range(13, 25))
    # the record of update n is trained with the count n - 1 the trainer passes
    for n, eps in first + resumed:
        assert math.isclose(eps, 1 - 0.01 * (n - 1), abs_tol=1e-4), (n, eps)


def test_sampled_predictions_follow_the_softmax_without_banned_tokens():
    from fairseq_ot.modules.token_prediction import predict_tokens

    torch.manual_seed(0)
    logits = torch.tensor([0.5, 2.0, -1.0, 1.0, 0.0])
    draws = predict_tokens(logits.expand(40000, 5), "sample", banned=(1,))
    probabilities = torch.softmax(logits.index_fill(0, torch.tensor([1]), float("-inf")), 0)
    frequencies = torch.bincount(draws, minlength=5).double() / draws.numel()
    assert frequencies[1] == 0
    # 5 standard errors of a frequency estimated from 40,000 draws
    assert torch.allclose(frequencies, probabilities.double(), atol=5 * 0.5 / 200)
    greedy = predict_tokens(logits.expand(3, 5), "argmax", banned=(1,))
    assert greedy.tolist() == [3, 3, 3]


ALL_REPLACED = ["--ss-schedule", "constant", "--ss-k", "0"]


def decoder_embeddings(model, batch, forward):
    """What the decoder's embedding lookup returned for its input tokens
    during `forward()` (the last such call)."""
    seen = []
    tokens = batch["net_input"]["prev_output_tokens"]
    handle = model.decoder.embed_tokens.register_forward_hook(
        lambda module, inputs, output: seen.append(output.detach().clone()) if inputs[0] is tokens else None)
    try:
        forward()
    finally:
        handle.remove()
    return seen[-1]


@pytest.mark.parametrize("mix", [["--ss-mix", "topk", "--ss-topk", "1"],
                                 ["--ss-mix", "softmax", "--ss-mix-temperature", "1e-6"]],
                         ids=["topk-1", "softmax-tau-0"])
def test_mixtures_at_their_hard_limit_equal_argmax(toy_data_bin, batch, mix):
    """Every input replaced: top-1 and softmax at tau -> 0 feed the argmax
    token's embedding, so the loss is the argmax two-pass loss."""
    _, model, argmax = scheduled_sampling(toy_data_bin, "--ss-prediction", "argmax", *ALL_REPLACED)
    _, _, mixture = scheduled_sampling(toy_data_bin, *mix, *ALL_REPLACED)
    expected, _, expected_log = argmax(model, batch)
    loss, _, log = mixture(model, batch)
    assert log["ss_replaced"] == expected_log["ss_replaced"] > 0
    assert torch.allclose(loss, expected, rtol=1e-6, atol=0)


def test_softmax_mixture_feeds_the_probability_weighted_embeddings_and_keeps_padding(toy_data_bin, batch):
    """A float64 transcription: replaced inputs are E^T softmax(z_{t-1} / tau)
    over the allowed symbols; the first input and padding are the plain lookup."""
    task, model, criterion = scheduled_sampling(toy_data_bin, "--ss-mix", "softmax", "--ss-mix-temperature",
                                                "0.7", *ALL_REPLACED)
    pad, bos = task.target_dictionary.pad(), task.target_dictionary.bos()
    net_input = batch["net_input"]
    gold = net_input["prev_output_tokens"]
    plain = decoder_embeddings(model, batch, lambda: model(**net_input))
    fed = decoder_embeddings(model, batch, lambda: criterion(model, batch))
    with torch.no_grad():
        logits = model(**net_input)[0].double()
    logits[..., [pad, bos]] = float("-inf")
    weights = torch.softmax(logits / 0.7, -1)
    expected = plain.double().clone()
    replaced = gold.ne(pad)
    replaced[:, 0] = False
    expected[:, 1:][replaced[:, 1:]] = (weights[:, :-1] @ model.decoder.embed_tokens.weight.double())[replaced[:, 1:]]
    assert torch.allclose(fed.double(), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(fed[~replaced], plain[~replaced])  # BOS and padding untouched


def test_gumbel_mixture_is_seeded_like_the_coins(toy_data_bin, batch):
    _, model, criterion = scheduled_sampling(toy_data_bin, "--ss-mix", "gumbel", "--ss-schedule", "constant",
                                             "--ss-k", "0.5", "--seed", "4")
    first, _, _ = criterion(model, batch)
    again, _, _ = criterion(model, batch)
    assert torch.equal(first, again)
    criterion.set_num_updates(3)
    later, _, _ = criterion(model, batch)
    assert not torch.equal(later, first)


def test_gumbel_weights_are_a_softmax_of_noised_logits():
    logits = torch.randn(6, 9)
    weights = mixture_weights(logits, "gumbel", temperature=0.5, banned=(1,),
                              generator=torch.Generator().manual_seed(5))
    uniforms = torch.rand((6, 9), generator=torch.Generator().manual_seed(5)).double()
    noised = logits.double() - torch.log(-torch.log(uniforms))
    noised[:, 1] = float("-inf")
    assert torch.allclose(weights.double(), torch.softmax(noised / 0.5, -1), atol=1e-6)
    assert (weights[:, 1] == 0).all()


@pytest.mark.parametrize("args,message", [
    (["--ss-mode", "stepwise", "--ss-mix", "softmax"], "--ss-mix softmax applies to --ss-mode two_pass only"),
    (["--ss-mix", "topk", "--ss-topk", "100000"], "--ss-topk must be at most the vocabulary size"),
    (["--ss-mix-temperature", "0"], "--ss-mix-temperature must be > 0"),
])
def test_mixture_flags_that_cannot_work_are_refused(toy_data_bin, args, message):
    with pytest.raises(ValueError, match=message):
        build(toy_data_bin, "--criterion", "scheduled_sampling", *args)

"""The lean incremental step against fairseq's own incremental decoding:
the same logits (within 1e-5, float32), the same sampled tokens and
generator state, on pre- and post-norm decoders, language models and
encoder-decoders, learned, sinusoidal and no positions; refusals of what it
does not reproduce; and its operator count on the benchmark's generator."""

import warnings

import pytest
import torch
from fairseq import options
from fairseq.data import Dictionary
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.models.lstm import LSTMDecoder
from fairseq.models.lstm_lm import LSTMLanguageModel
from fairseq.models.transformer import TransformerDecoder
from fairseq.tasks.language_modeling import LanguageModelingTask
from fairseq.tasks.translation import TranslationTask

from fairseq_ot.benchmarks.op_count import ops_per_step
from fairseq_ot.modules.lean_decoding import LeanTransformerStep, lean_refusal, lean_step
from fairseq_ot.modules.sampling import IncrementalStep, ancestral_sample, sample_steps

SMALL = ["--decoder-layers", "2", "--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64",
         "--decoder-attention-heads", "2"]
SMALL_ENCODER = ["--encoder-layers", "1", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                 "--encoder-attention-heads", "2"]
# name -> (task, flags, sampling temperature)
CONFIGS = {
    "post-norm, sinusoidal, shared embeddings": (
        "translation", ["--arch", "transformer", *SMALL, *SMALL_ENCODER, "--share-all-embeddings"], 1.0),
    "pre-norm, learned positions, gelu, head dim 12": (
        "translation", ["--arch", "transformer", *SMALL_ENCODER, "--decoder-layers", "2",
                        "--decoder-embed-dim", "48", "--decoder-ffn-embed-dim", "64",
                        "--decoder-attention-heads", "4", "--decoder-normalize-before",
                        "--encoder-normalize-before", "--decoder-learned-pos", "--activation-fn", "gelu"],
        0.7),
    "LM post-norm, learned, unscaled, layernorm_embedding": (
        "language_modeling", ["--arch", "transformer_lm", *SMALL, "--decoder-learned-pos",
                              "--no-scale-embedding", "--layernorm-embedding"], 1.3),
    "LM pre-norm, sinusoidal, project in and out, tied": (
        "language_modeling", ["--arch", "transformer_lm", *SMALL, "--decoder-normalize-before",
                              "--decoder-input-dim", "24", "--decoder-output-dim", "24",
                              "--share-decoder-input-output-embed"], 1.0),
    "LM pre-norm, no positions, no final norm": (
        "language_modeling", ["--arch", "transformer_lm", *SMALL, "--decoder-normalize-before",
                              "--no-token-positional-embeddings", "--no-decoder-final-norm"], 0.5),
}
BATCH, MAX_LEN = 12, 10


def dictionary_of(size):
    dictionary = Dictionary()
    for index in range(size - len(dictionary)):
        dictionary.add_symbol(f"w{index}")
    return dictionary


def build_model(task_name, flags, dictionary, seed=0):
    """A fairseq model in eval mode, as fairseq-train builds it from `flags`."""
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, ["in-memory", "--task", task_name, "--dropout", "0.1", *flags])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cfg = convert_namespace_to_omegaconf(args)
    if task_name == "translation":
        task = TranslationTask(cfg.task, dictionary, dictionary)
    else:
        task = LanguageModelingTask(cfg.task, dictionary, dictionary)
    torch.manual_seed(seed)
    return task.build_model(cfg.model).eval()


def source_batch(dictionary, batch_size, generator):
    """Left-padded sources of 2..8 tokens, EOS-terminated, as fairseq collates them."""
    lengths = torch.randint(2, 9, (batch_size,), generator=generator)
    tokens = torch.full((batch_size, int(lengths.max())), dictionary.pad())
    for row, length in enumerate(lengths.tolist()):
        words = torch.randint(dictionary.nspecial, len(dictionary), (length - 1,), generator=generator)
        tokens[row, -length:] = torch.cat([words, torch.tensor([dictionary.eos()])])
    return {"src_tokens": tokens, "src_lengths": lengths}


@pytest.fixture(scope="module", params=list(CONFIGS))
def setup(request):
    """(model, dictionary, encoder input or None, temperature) of a config."""
    task_name, flags, temperature = CONFIGS[request.param]
    dictionary = dictionary_of(30)
    model = build_model(task_name, flags, dictionary)
    encoder_input = None
    if task_name == "translation":
        encoder_input = source_batch(dictionary, BATCH, torch.Generator().manual_seed(1))
    return model, dictionary, encoder_input, temperature


def banned_of(dictionary):
    return (dictionary.pad(), dictionary.bos())


def encode(model, encoder_input):
    if encoder_input is None:
        return None
    return model.encoder(encoder_input["src_tokens"], src_lengths=encoder_input["src_lengths"])


@torch.no_grad()
def test_logits_match_fairseq_incremental_decoding(setup):
    model, dictionary, encoder_input, _ = setup
    assert lean_refusal(model.decoder, banned_of(dictionary)) is None
    encoder_out = encode(model, encoder_input)
    words = torch.randint(dictionary.nspecial, len(dictionary), (BATCH, MAX_LEN),
                          generator=torch.Generator().manual_seed(2))
    inputs = torch.cat([torch.full((BATCH, 1), dictionary.eos()), words[:, :-1]], dim=1)
    lean = LeanTransformerStep(model.decoder, encoder_out, BATCH, MAX_LEN)
    fairseq_step = IncrementalStep(model.decoder, encoder_out)
    for step in range(MAX_LEN):
        expected = fairseq_step(inputs[:, step], step)
        torch.testing.assert_close(lean(inputs[:, step], step), expected, rtol=0, atol=1e-5)


def test_samples_and_generator_state_match_fairseq_decoding(setup, monkeypatch):
    """Also while the lean step drops the samples that have ended (fairseq's
    decoding steps every row to the end)."""
    model, dictionary, encoder_input, temperature = setup
    limits = torch.randint(1, MAX_LEN + 1, (BATCH,), generator=torch.Generator().manual_seed(3))
    kept = []
    keep = LeanTransformerStep.keep
    monkeypatch.setattr(LeanTransformerStep, "keep", lambda step, rows: kept.append(len(rows)) or keep(step, rows))
    runs = []
    for lean in (True, False):
        generator = torch.Generator().manual_seed(4)
        tokens, forced = ancestral_sample(model, limits, dictionary.eos(), dictionary.pad(),
                                          banned_of(dictionary), encoder_input, generator, temperature,
                                          lean=lean)
        runs.append((tokens, forced, torch.rand(3, generator=generator)))
    (tokens, forced, after), (expected_tokens, expected_forced, expected_after) = runs
    assert torch.equal(tokens, expected_tokens)
    assert torch.equal(forced, expected_forced)
    assert torch.equal(after, expected_after)
    assert forced.any() and (tokens == dictionary.eos()).sum() > forced.sum()  # both ways of ending
    assert kept and kept == sorted(kept, reverse=True) and kept[-1] < BATCH


def test_spaced_stop_checks_undo_the_steps_past_the_end():
    """Checking every k steps whether all samples ended (a GPU's host sync)
    draws the same tokens and leaves the generator where a check at every
    step leaves it; most symbols banned, so that all samples end early."""
    dictionary = dictionary_of(30)
    model = build_model("language_modeling", ["--arch", "transformer_lm", *SMALL], dictionary)
    eos, pad = dictionary.eos(), dictionary.pad()
    banned = tuple(i for i in range(len(dictionary)) if i not in (eos, 10, 11))
    limits = torch.full((4,), 25)
    runs = {}
    for check_every in (1, 3, 4, 5):
        generator = torch.Generator().manual_seed(6)
        step = lean_step(model.decoder, None, 4, 25, banned)
        tokens, forced = sample_steps(step, limits, 25, eos, pad, banned, generator, 1.0, check_every)
        runs[check_every] = (tokens, forced, torch.rand(3, generator=generator))
    for check_every, run in runs.items():
        assert all(torch.equal(a, b) for a, b in zip(run, runs[1])), check_every
    length = runs[1][0].size(1)
    assert length < 25 and any(length % k for k in (3, 4, 5))  # some checks came after the end


class ReorderingDecoder(TransformerDecoder):
    """A subclass with forward math of its own."""

    def output_layer(self, features):
        return super().output_layer(features).flip(-1)


def lm_decoder(*flags):
    flags = ["--arch", "transformer_lm", *SMALL, *flags]
    return build_model("language_modeling", flags, dictionary_of(30)).decoder


def lstm_decoder():
    decoder = LSTMDecoder(dictionary_of(30), embed_dim=8, hidden_size=8, out_embed_dim=8, attention=False,
                          encoder_output_units=0)
    return LSTMLanguageModel(decoder).eval().decoder


def normformer_decoder():
    # fairseq 0.12's TransformerConfig drops --scale-attn: set the norm by hand
    decoder = lm_decoder()
    decoder.layers[1].attn_ln = torch.nn.LayerNorm(32).eval()
    return decoder


REFUSALS = {
    "LSTM": (lstm_decoder, "is not fairseq's TransformerDecoder"),
    "own forward math": (lambda: ReorderingDecoder(lm_decoder().args, dictionary_of(30),
                                                   torch.nn.Embedding(30, 32, padding_idx=1)).eval(),
                         "is not fairseq's TransformerDecoder"),
    "training mode": (lambda: lm_decoder().train(), "training mode"),
    "LayerDrop": (lambda: lm_decoder("--decoder-layerdrop", "0.2"), "LayerDrop"),
    "NormFormer": (normformer_decoder, "NormFormer scalings"),
    "adaptive softmax": (lambda: lm_decoder("--adaptive-softmax-cutoff", "10,20"), "adaptive softmax"),
    "cross-self-attention": (
        lambda: build_model("translation", ["--arch", "transformer", *SMALL, *SMALL_ENCODER,
                                            "--cross-self-attention"], dictionary_of(30)).decoder,
        "cross-self-attention"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refuses_what_it_does_not_reproduce(case):
    make, reason = REFUSALS[case]
    decoder = make()
    banned = (1,)  # the padding index of every dictionary here
    refusal = lean_refusal(decoder, banned)
    assert refusal is not None and reason in refusal
    assert lean_step(decoder, None, 2, 3, banned) is None


def test_refuses_when_padding_may_be_drawn():
    # fairseq masks a drawn padding symbol as a key of the later steps
    assert lean_refusal(lm_decoder(), banned=()) == "padding may be drawn"


def test_half_the_operators_of_fairseq_decoding_on_the_benchmark_generator():
    """Counted by a TorchDispatchMode over one extra step (deterministic),
    on bench_criterions' generator: 3+3 layers, dim 256, 4 heads, FFN 1024,
    8000 types, encoder-decoder, post-norm, sinusoidal positions."""
    dictionary = dictionary_of(8000)
    size = ["--share-all-embeddings"] + [
        flag for side in ("encoder", "decoder") for flag in (
            f"--{side}-layers", "3", f"--{side}-embed-dim", "256", f"--{side}-ffn-embed-dim", "1024",
            f"--{side}-attention-heads", "4")]
    model = build_model("translation", ["--arch", "transformer", *size], dictionary)
    encoder_input = source_batch(dictionary, 8, torch.Generator().manual_seed(1))
    # EOS banned too: no sample ends, every step runs
    banned = (dictionary.pad(), dictionary.bos(), dictionary.eos())

    def per_step(lean):
        def run(steps):
            ancestral_sample(model, torch.full((8,), steps), dictionary.eos(), dictionary.pad(), banned,
                             encoder_input, torch.Generator().manual_seed(0), lean=lean)
        return sum(ops_per_step(run, 4).values())

    lean, generic = per_step(True), per_step(False)
    assert lean <= 150 and generic >= 2 * lean, (lean, generic)

"""The synthetic Turing test's scores against independent computations on a
tiny random oracle: a fairseq lstm_lm given the oracle's weights must score
the oracle's own NLL and sample the oracle's distribution; any lstm_lm's
NLL_test must equal step-by-step teacher forcing of one sequence at a time,
at any softmax temperature."""

import math

import pytest
import torch
from fairseq.data import Dictionary, indexed_dataset
from fairseq.models.lstm import LSTMDecoder
from fairseq.models.lstm_lm import LSTMLanguageModel

from fairseq_ot.synthetic.evaluation import (
    load_split_words, nll_oracle, nll_test, sample_words,
)
from fairseq_ot.synthetic.lm_data import oracle_word
from fairseq_ot.synthetic.oracle import START_TOKEN, OracleLSTM

VOCAB, EMBED, HIDDEN = 4, 3, 5


def tiny_oracle():
    return OracleLSTM.random(7, vocab=VOCAB, emb=EMBED, hidden=HIDDEN)


def oracle_dictionary(vocab=VOCAB):
    dictionary = Dictionary()
    for oracle_id in range(vocab):
        dictionary.add_symbol(oracle_word(oracle_id))
    return dictionary


def word_indices(dictionary, vocab=VOCAB):
    return torch.tensor([dictionary.index(oracle_word(i)) for i in range(vocab)])


def tiny_lstm_lm(dictionary, embed=EMBED, hidden=HIDDEN):
    decoder = LSTMDecoder(dictionary, embed_dim=embed, hidden_size=hidden, out_embed_dim=hidden,
                          num_layers=1, dropout_in=0.0, dropout_out=0.0, attention=False,
                          encoder_output_units=0)
    return LSTMLanguageModel(decoder).eval()


@torch.no_grad()
def lstm_lm_copy_of(oracle, dictionary):
    """An lstm_lm whose distribution over words is the oracle's: nn.LSTMCell
    orders its gates (input, forget, candidate, output), fairseq's first input
    EOS plays the oracle's start token, special symbols get no probability."""
    model = tiny_lstm_lm(dictionary)
    decoder, words = model.decoder, word_indices(dictionary)
    decoder.embed_tokens.weight[words] = oracle.emb
    decoder.embed_tokens.weight[dictionary.eos()] = oracle.emb[START_TOKEN]
    cell = decoder.layers[0]
    cell.weight_ih.copy_(torch.cat([oracle.Wi, oracle.Wf, oracle.Wc, oracle.Wog], dim=1).T)
    cell.weight_hh.copy_(torch.cat([oracle.Ui, oracle.Uf, oracle.Uc, oracle.Uog], dim=1).T)
    cell.bias_ih.copy_(torch.cat([oracle.bi, oracle.bf, oracle.bc, oracle.bog]))
    cell.bias_hh.zero_()
    decoder.fc_out.weight.zero_()
    decoder.fc_out.weight[words] = oracle.Wo.T
    decoder.fc_out.bias.fill_(float("-inf"))
    decoder.fc_out.bias[words] = oracle.bo
    return model


def test_nll_test_of_the_oracle_copy_is_the_oracle_nll():
    oracle, dictionary = tiny_oracle(), oracle_dictionary()
    sequences = oracle.sample(50, seed=0)
    words = word_indices(dictionary)[sequences]
    model = lstm_lm_copy_of(oracle, dictionary)
    assert math.isclose(nll_test(model, dictionary, words, batch_size=7), oracle.nll(sequences),
                        rel_tol=1e-5)


@torch.no_grad()
def stepwise_mean_nll(model, dictionary, words, temperature=1.0):
    """Teacher forcing one sequence and one token at a time, through the
    decoder's incremental state, of softmax(logits / temperature)."""
    total = 0.0
    for sequence in words:
        state, previous = {}, torch.tensor([[dictionary.eos()]])
        for word in sequence:
            logits = model.decoder(previous, incremental_state=state)[0][0, -1]
            total -= torch.log_softmax(logits.double() / temperature, dim=0)[word].item()
            previous = torch.cat([previous, word.view(1, 1)], dim=1)
    return total / words.numel()


def random_lstm_lm(dictionary):
    torch.manual_seed(0)
    model = tiny_lstm_lm(dictionary)
    with torch.no_grad():  # fairseq's initialization is too small for inputs to matter much
        for parameter in model.parameters():
            parameter.normal_()
    return model


@pytest.mark.parametrize("temperature", [1.0, 0.5, 1.7])
def test_nll_test_equals_per_sequence_teacher_forcing(temperature):
    dictionary = oracle_dictionary()
    model = random_lstm_lm(dictionary)
    words = torch.randint(dictionary.nspecial, len(dictionary), (9, 20))
    expected = stepwise_mean_nll(model, dictionary, words, temperature)
    assert math.isclose(nll_test(model, dictionary, words, batch_size=4, temperature=temperature), expected,
                        rel_tol=1e-6)


def test_temperature_changes_nll_test_and_one_is_the_default_bit_for_bit():
    dictionary = oracle_dictionary()
    model = random_lstm_lm(dictionary)
    words = torch.randint(dictionary.nspecial, len(dictionary), (9, 20))
    assert nll_test(model, dictionary, words, temperature=1.0) == nll_test(model, dictionary, words)
    assert nll_test(model, dictionary, words, temperature=0.5) != nll_test(model, dictionary, words)


def exact_pair_probabilities(oracle, temperature=1.0):
    """p_T(first, second) of every two-word prefix, flattened [VOCAB * VOCAB]:
    each step's distribution raised to 1 / T and renormalized, which is
    softmax(logits / T)."""
    pairs = torch.cartesian_prod(torch.arange(VOCAB), torch.arange(VOCAB))
    log_p = -oracle.token_nll(pairs).double().view(VOCAB, VOCAB, 2) / temperature
    first = torch.log_softmax(log_p[:, 0, 0], dim=0)  # the first word's NLL is the same for every second
    second = torch.log_softmax(log_p[:, :, 1], dim=1)
    return torch.exp(first[:, None] + second).flatten()


@pytest.mark.parametrize("temperature", [1.0, 0.8, 1.5])
def test_samples_are_words_with_the_models_distribution(temperature):
    oracle, dictionary = tiny_oracle(), oracle_dictionary()
    model = lstm_lm_copy_of(oracle, dictionary)
    torch.manual_seed(0)
    n = 20000
    samples = sample_words(model, dictionary, n, length=2, batch_size=3000, temperature=temperature)
    assert samples.shape == (n, 2)
    assert samples.min() >= dictionary.nspecial  # never a special symbol
    oracle_ids = samples - dictionary.nspecial
    counts = torch.bincount(oracle_ids[:, 0] * VOCAB + oracle_ids[:, 1], minlength=VOCAB**2)
    expected = n * exact_pair_probabilities(oracle, temperature)
    assert expected.min() > 5  # the chi-square approximation holds
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    assert chi_square < 37.7  # the 0.999 quantile for 15 degrees of freedom


def test_nll_oracle_of_the_oracle_copy_is_the_entropy_rate():
    oracle, dictionary = tiny_oracle(), oracle_dictionary()
    model = lstm_lm_copy_of(oracle, dictionary)
    probabilities = exact_pair_probabilities(oracle)
    sequence_nll = -probabilities.log()
    entropy_per_token = (probabilities * sequence_nll).sum().item() / 2
    spread = ((probabilities * sequence_nll**2).sum().item() - (2 * entropy_per_token) ** 2) ** 0.5
    torch.manual_seed(1)
    n = 20000
    estimate = nll_oracle(model, dictionary, oracle, n, length=2, batch_size=3000)
    # the mean over n sequences of half their NLL: within 5 standard errors
    assert abs(estimate - entropy_per_token) < 5 * spread / 2 / n**0.5


def write_binarized_split(prefix, lines, dictionary):
    """What fairseq-preprocess writes, in-process: an mmap dataset of lines."""
    builder = indexed_dataset.make_builder(f"{prefix}.bin", "mmap", vocab_size=len(dictionary))
    for line in lines:
        builder.add_item(line)
    builder.finalize(f"{prefix}.idx")


def test_split_words_are_the_lines_without_eos(tmp_path):
    dictionary = oracle_dictionary()
    words = torch.randint(dictionary.nspecial, len(dictionary), (6, 20))
    eos = torch.full((6, 1), dictionary.eos())
    write_binarized_split(tmp_path / "test", torch.cat([words, eos], dim=1), dictionary)
    assert torch.equal(load_split_words(tmp_path, "test", dictionary), words)
    write_binarized_split(tmp_path / "short", [torch.cat([words[0, :19], eos[0]])], dictionary)
    with pytest.raises(ValueError):
        load_split_words(tmp_path, "short", dictionary)

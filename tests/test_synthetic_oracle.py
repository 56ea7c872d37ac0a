"""The synthetic Turing test's oracle LSTM: its likelihood against a numpy
transcription of the equations, its sampling against exact probabilities, and
the fairseq corpus made of its samples mapping back to oracle ids."""


import numpy as np
import pytest
import torch
from fairseq.data import Dictionary, data_utils

from fairseq_ot.synthetic.lm_data import (
    SPLITS, build_oracle_lm_data, fairseq_to_oracle_ids, oracle_id_table,
    read_sequences, sample_splits,
)
from fairseq_ot.synthetic.oracle import RANDOM_ORACLE_SEED, OracleLSTM

from conftest import SHARED_DATA

ORACLE_NPZ = SHARED_DATA / "oracle" / "seqgan_oracle_lstm.npz"


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_next_log_probabilities(p, x, h, c):
    """One step of the oracle, written straight from the equations (float64)."""
    i = sigmoid(x @ p["Wi"] + h @ p["Ui"] + p["bi"])
    f = sigmoid(x @ p["Wf"] + h @ p["Uf"] + p["bf"])
    o = sigmoid(x @ p["Wog"] + h @ p["Uog"] + p["bog"])
    g = np.tanh(x @ p["Wc"] + h @ p["Uc"] + p["bc"])
    c = f * c + i * g
    h = o * np.tanh(c)
    logits = h @ p["Wo"] + p["bo"]
    top = logits.max(axis=-1, keepdims=True)
    log_normalizer = top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
    return logits - log_normalizer, h, c


def numpy_token_nll(p, sequences):
    n, length = sequences.shape
    h = np.zeros((n, p["Ui"].shape[0]))
    c = np.zeros_like(h)
    previous = np.zeros(n, dtype=np.int64)  # the start token
    nll = np.zeros((n, length))
    for t in range(length):
        log_probabilities, h, c = numpy_next_log_probabilities(p, p["emb"][previous], h, c)
        nll[:, t] = -log_probabilities[np.arange(n), sequences[:, t]]
        previous = sequences[:, t]
    return nll


def float64_parameters(oracle):
    return {name: buffer.double().numpy() for name, buffer in oracle.named_buffers()}


def published_oracle():
    if not ORACLE_NPZ.exists():
        pytest.skip(f"published oracle absent ({ORACLE_NPZ})")
    return OracleLSTM.from_npz(ORACLE_NPZ)


ORACLES = {
    "published": published_oracle,
    "random": lambda: OracleLSTM.random(RANDOM_ORACLE_SEED),
}


@pytest.mark.parametrize("which", ORACLES)
def test_nll_matches_numpy_transcription(which):
    oracle = ORACLES[which]()
    if which == "published":  # the file's own arrays, not the module's copy of them
        with np.load(ORACLE_NPZ) as arrays:
            parameters = {name: arrays[name].astype(np.float64) for name in arrays.files}
    else:
        parameters = float64_parameters(oracle)
    rng = np.random.default_rng(0)
    # uniformly random sequences reach unlikely tokens; the oracle's own are typical
    sequences = np.concatenate([
        rng.integers(0, oracle.vocab_size, size=(24, 20)),
        oracle.sample(24, seed=0).numpy(),
    ])
    expected = numpy_token_nll(parameters, sequences)
    token_nll = oracle.token_nll(torch.from_numpy(sequences), batch_size=10)
    np.testing.assert_allclose(token_nll.numpy(), expected, rtol=1e-5, atol=1e-4)
    assert oracle.nll(torch.from_numpy(sequences)) == pytest.approx(expected.mean(), abs=1e-5)


def test_load_default_falls_back_to_the_seeded_random_oracle(tmp_path):
    oracle = OracleLSTM.load_default(data_dir=tmp_path)
    random_oracle = OracleLSTM.random(RANDOM_ORACLE_SEED)
    for name, buffer in random_oracle.named_buffers():
        assert torch.equal(getattr(oracle, name), buffer)


def test_scoring_rejects_ids_outside_the_vocabulary():
    oracle = OracleLSTM.random(0, vocab=4, emb=3, hidden=3)
    with pytest.raises(ValueError):
        oracle.nll(torch.tensor([[1, -1]]))  # e.g. an unmapped fairseq symbol
    with pytest.raises(ValueError):
        oracle.nll(torch.tensor([[1, 4]]))


def exact_pair_probabilities(parameters):
    """p(first, second) for every pair of a tiny oracle, [vocab, vocab]."""
    hidden = parameters["Ui"].shape[0]
    h = c = np.zeros((1, hidden))
    first_log_p, h, c = numpy_next_log_probabilities(parameters, parameters["emb"][[0]], h, c)
    vocab = first_log_p.shape[1]
    h, c = np.repeat(h, vocab, axis=0), np.repeat(c, vocab, axis=0)
    second_log_p, _, _ = numpy_next_log_probabilities(parameters, parameters["emb"], h, c)
    return np.exp(first_log_p.T + second_log_p)


def test_samples_follow_the_oracle_distribution():
    oracle = OracleLSTM.random(3, vocab=4, emb=4, hidden=4)
    probabilities = exact_pair_probabilities(float64_parameters(oracle)).ravel()
    n = 40000
    samples = oracle.sample(n, length=2, seed=0, batch_size=7000)
    counts = np.bincount((samples[:, 0] * 4 + samples[:, 1]).numpy(), minlength=16)
    expected = n * probabilities
    assert expected.min() > 5  # the chi-square approximation holds
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 37.7  # the 0.999 quantile for 15 degrees of freedom
    assert torch.equal(samples, oracle.sample(n, length=2, seed=0, batch_size=7000))


def test_fairseq_corpus_maps_back_to_the_oracle_samples(tmp_path):
    oracle = OracleLSTM.random(5)
    sizes = dict(n_train=9, n_valid=3, n_test=6, seed=11)
    data_bin = build_oracle_lm_data(oracle, tmp_path, **sizes)
    samples = sample_splits(oracle, **sizes)

    dictionary = Dictionary.load(str(data_bin / "dict.txt"))
    assert len(dictionary) == dictionary.nspecial + oracle.vocab_size
    id_table = oracle_id_table(dictionary)
    for split in SPLITS:
        assert torch.equal(read_sequences(tmp_path / "text" / f"{split}.txt"), samples[split])
        dataset = data_utils.load_indexed_dataset(str(data_bin / split), dictionary)
        assert len(dataset) == len(samples[split])
        for line, expected in zip(dataset, samples[split]):
            assert line[-1] == dictionary.eos()
            assert torch.equal(fairseq_to_oracle_ids(line[:-1], id_table), expected)
        with pytest.raises(ValueError):
            fairseq_to_oracle_ids(dataset[0], id_table)  # eos left in

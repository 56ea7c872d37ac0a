"""The oracle LSTM of the synthetic Turing test (SeqGAN, Yu et al. 2017; CoT,
Lu et al. 2019): a fixed, randomly initialised LSTM language model whose
samples are the "real" data and whose likelihood scores a model's samples.

With x_t the embedding of the previous token (the start token at t=0) and
h_0 = c_0 = 0:

    i = sigmoid(x Wi + h Ui + bi)     f = sigmoid(x Wf + h Uf + bf)
    o = sigmoid(x Wog + h Uog + bog)  g = tanh(x Wc + h Uc + bc)
    c = f * c + i * g                 h = o * tanh(c)
    p(next token) = softmax(h Wo + bo)

The parameters keep these names, which are also the array names of the
published oracle's npz file."""

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

START_TOKEN = 0
SEQUENCE_LENGTH = 20
# the input and recurrent weight and the bias of each gate, in the fused order
GATE_PARAMETERS = (
    ("Wi", "Ui", "bi"),
    ("Wf", "Uf", "bf"),
    ("Wog", "Uog", "bog"),
    ("Wc", "Uc", "bc"),
)
PARAMETER_NAMES = ("emb",) + sum(GATE_PARAMETERS, ()) + ("Wo", "bo")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
ORACLE_FILE = Path("oracle") / "seqgan_oracle_lstm.npz"
RANDOM_ORACLE_SEED = 88  # SeqGAN's seed, for the stand-in when the file is absent


def parameter_shapes(vocab, emb, hidden):
    """The shape of every oracle parameter, by name."""
    shapes = {"emb": (vocab, emb), "Wo": (hidden, vocab), "bo": (vocab,)}
    for input_weight, recurrent_weight, bias in GATE_PARAMETERS:
        shapes[input_weight] = (emb, hidden)
        shapes[recurrent_weight] = (hidden, hidden)
        shapes[bias] = (hidden,)
    return shapes


def draw_from_logits(logits, generator=None):
    """One token per row of logits [batch, vocab], drawn from their softmax
    by inverting the cumulative distribution: about ten times as fast as
    torch.multinomial with a generator on CPU."""
    cumulative = torch.softmax(logits, dim=1).cumsum_(dim=1)
    # scaled by the float32 total, which is 1 only up to rounding
    thresholds = torch.rand(len(logits), 1, generator=generator) * cumulative[:, -1:]
    # token k is drawn iff cumulative[k-1] <= threshold < cumulative[k]; the
    # clamp only catches a threshold rounded up to the total
    tokens = torch.searchsorted(cumulative, thresholds, right=True)
    return tokens.squeeze(1).clamp_(max=logits.shape[1] - 1)


class OracleLSTM(nn.Module):
    """The oracle, float32 on CPU. Its parameters are buffers: it is never
    trained, only sampled from and used to score."""

    def __init__(self, parameters):
        super().__init__()
        vocab, emb = parameters["emb"].shape
        hidden = parameters["Ui"].shape[0]
        expected = parameter_shapes(vocab, emb, hidden)
        if set(parameters) != set(expected):
            raise ValueError(
                f"oracle parameters {sorted(parameters)}, expected {sorted(expected)}"
            )
        for name, shape in expected.items():
            value = torch.as_tensor(parameters[name], dtype=torch.float32)
            if tuple(value.shape) != shape:
                raise ValueError(f"oracle parameter {name}: shape {tuple(value.shape)}, expected {shape}")
            self.register_buffer(name, value.clone())
        self.vocab_size, self.embed_dim, self.hidden_dim = vocab, emb, hidden

    @classmethod
    def from_npz(cls, path):
        """The oracle whose arrays are stored in an npz file (SeqGAN's names)."""
        with np.load(path) as arrays:
            return cls({name: arrays[name] for name in arrays.files})

    @classmethod
    def random(cls, seed, vocab=5000, emb=32, hidden=32):
        """A seeded random oracle initialised as SeqGAN's: every parameter,
        biases included, drawn from a standard normal."""
        generator = torch.Generator().manual_seed(seed)
        shapes = parameter_shapes(vocab, emb, hidden)
        return cls({
            name: torch.randn(shapes[name], generator=generator)
            for name in PARAMETER_NAMES
        })

    @classmethod
    def load_default(cls, data_dir=None):
        """The published oracle from <data_dir>/oracle/ (default: ../shared/data
        relative to the repository root) or, when that file is absent, the
        seeded random oracle of the same shape."""
        path = Path(data_dir or DEFAULT_DATA_DIR) / ORACLE_FILE
        if path.exists():
            logger.info("oracle LSTM: loaded from %s", path)
            return cls.from_npz(path)
        logger.info("oracle LSTM: %s absent, using the random oracle of seed %d",
                    path, RANDOM_ORACLE_SEED)
        return cls.random(RANDOM_ORACLE_SEED)

    def _fused_weights(self):
        """The gates' weights side by side, with the input part precomputed for
        every token: one lookup and one matmul per step instead of eight."""
        input_weights = torch.cat([getattr(self, w) for w, _, _ in GATE_PARAMETERS], dim=1)
        recurrent_weights = torch.cat([getattr(self, u) for _, u, _ in GATE_PARAMETERS], dim=1)
        biases = torch.cat([getattr(self, b) for _, _, b in GATE_PARAMETERS])
        token_gate_inputs = self.emb @ input_weights + biases
        return token_gate_inputs, recurrent_weights

    def _next_logits(self, previous_tokens, state, fused_weights):
        """One LSTM step: the new (h, c) and the logits of the next token."""
        token_gate_inputs, recurrent_weights = fused_weights
        h, c = state
        gates = token_gate_inputs[previous_tokens] + h @ recurrent_weights
        input_gate, forget_gate, output_gate, candidate = gates.chunk(4, dim=1)
        c = torch.sigmoid(forget_gate) * c + torch.sigmoid(input_gate) * torch.tanh(candidate)
        h = torch.sigmoid(output_gate) * torch.tanh(c)
        return (h, c), torch.addmm(self.bo, h, self.Wo)

    def _initial(self, batch):
        zeros = torch.zeros(batch, self.hidden_dim)
        start = torch.full((batch,), START_TOKEN, dtype=torch.long)
        return start, (zeros, zeros)

    def _sample_batch(self, batch, length, generator, fused_weights):
        tokens, state = self._initial(batch)
        sampled = []
        for _ in range(length):
            state, logits = self._next_logits(tokens, state, fused_weights)
            tokens = draw_from_logits(logits, generator)
            sampled.append(tokens)
        return torch.stack(sampled, dim=1)

    @torch.no_grad()
    def sample(self, n, length=SEQUENCE_LENGTH, seed=None, generator=None, batch_size=1000):
        """n sequences drawn ancestrally from the oracle, LongTensor [n, length].

        Randomness comes from `generator`, else from a generator seeded with
        `seed`, else from torch's global one. The draws depend on batch_size."""
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        fused_weights = self._fused_weights()
        batches = [
            self._sample_batch(min(batch_size, n - start), length, generator, fused_weights)
            for start in range(0, n, batch_size)
        ]
        return torch.cat(batches)

    def _check_tokens(self, sequences):
        sequences = torch.as_tensor(sequences, dtype=torch.long)
        if sequences.dim() != 2:
            raise ValueError(f"sequences must be [n, length], got shape {tuple(sequences.shape)}")
        # a negative id (e.g. an unmapped fairseq symbol) would index from the end silently
        if sequences.min() < 0 or sequences.max() >= self.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size})")
        return sequences

    def _token_nll_batch(self, sequences, fused_weights):
        tokens, state = self._initial(sequences.shape[0])
        losses = []
        for targets in sequences.unbind(dim=1):
            state, logits = self._next_logits(tokens, state, fused_weights)
            log_probabilities = torch.log_softmax(logits, dim=1)
            losses.append(-log_probabilities.gather(1, targets[:, None]).squeeze(1))
            tokens = targets  # teacher forcing
        return torch.stack(losses, dim=1)

    @torch.no_grad()
    def token_nll(self, sequences, batch_size=1000):
        """The oracle's negative log-likelihood (nats) of every token of every
        sequence, FloatTensor [n, length]; sum over dim 1 for per-sequence NLL."""
        sequences = self._check_tokens(sequences)
        fused_weights = self._fused_weights()
        return torch.cat([
            self._token_nll_batch(batch, fused_weights)
            for batch in sequences.split(batch_size)
        ])

    def nll(self, sequences, batch_size=1000):
        """Mean per-token negative log-likelihood (nats) of the sequences under
        the oracle: NLL_oracle when they are a model's samples."""
        # float64 so that the mean of 200,000 tokens loses nothing to rounding
        return self.token_nll(sequences, batch_size).double().mean().item()

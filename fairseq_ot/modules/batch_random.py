"""Random draws that are a function of the batch, not of the process.

fairseq reseeds torch with seed + update number before every update on every
rank. One process with --update-freq 2 then continues that stream into its
second micro-batch, while with two processes rank 1 starts the stream afresh
for the same batch: draws from the global generator depend on how batches are
spread over processes. A generator seeded from (seed, update number, the
batch's sample ids) gives every batch the same draws wherever it runs, and
again after resuming from a checkpoint (which restores the update number)."""

import hashlib

import numpy as np
import torch
from torch import Tensor


def batch_generator(seed: int, num_updates: int, sample_ids: Tensor) -> torch.Generator:
    """A torch.Generator on the ids' device, seeded from a 63-bit hash of the
    fairseq seed, the update number and the sample ids (in batch order)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.array([seed, num_updates], dtype=np.int64).tobytes())
    digest.update(sample_ids.detach().cpu().numpy().astype(np.int64).tobytes())
    generator = torch.Generator(device=sample_ids.device)
    generator.manual_seed(int.from_bytes(digest.digest(), "little") >> 1)
    return generator


def sentence_uniforms(seed: int, num_updates: int, sample_ids: Tensor) -> Tensor:
    """One uniform in [0, 1) per sentence, float64 on the ids' device, a
    function of (seed, update number, that sentence's id) alone: the same
    whatever else is in its batch, on any rank, after a resume."""
    ids = sample_ids.detach().cpu().numpy().astype(np.uint64)
    # splitmix64 (Steele et al. 2014) of the three words, mixed in turn
    state = np.full(ids.shape, np.uint64(seed & (2**64 - 1)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for word in (np.uint64(num_updates & (2**64 - 1)), ids):
            state = _splitmix64(state ^ word)
    return torch.from_numpy((state >> np.uint64(11)).astype(np.float64) / 2.0**53).to(sample_ids.device)


def _splitmix64(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))

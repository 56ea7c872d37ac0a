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

"""The model's own tokens, drawn from its logits, for feeding back as inputs."""

import torch
from torch import Tensor

PREDICTIONS = ("sample", "argmax")


def predict_tokens(logits: Tensor, mode: str, banned=()) -> Tensor:
    """[..., V] logits -> [...] token indices, never one of `banned` (pad,
    BOS: symbols that must not enter a prefix). `sample` draws from
    softmax(logits) by the Gumbel-max trick; `argmax` is greedy."""
    scores = logits.detach().float()
    if banned:
        scores = scores.index_fill(-1, torch.tensor(list(banned), device=scores.device), float("-inf"))
    if mode == "sample":
        uniform = torch.rand_like(scores).clamp_(min=torch.finfo(scores.dtype).tiny)
        scores = scores - torch.log(-torch.log(uniform))
    elif mode != "argmax":
        raise ValueError(f"prediction mode must be one of {PREDICTIONS}, got {mode!r}")
    return scores.argmax(-1)

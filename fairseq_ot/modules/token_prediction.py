"""The model's own tokens, drawn from its logits, for feeding back as inputs."""

import torch
from torch import Tensor

PREDICTIONS = ("sample", "argmax")


def predict_tokens(logits: Tensor, mode: str, banned=()) -> Tensor:
    """[..., V] logits -> [...] token indices, never one of `banned` (pad,
    BOS: symbols that must not enter a prefix). `sample` draws from
    softmax(logits) as the argmax of logits - log E with E ~ Exp(1) (the
    exponential race, one pass fewer than Gumbel noise); `argmax` is greedy.
    Neither copies the logits more than once: over a [B, T, V] batch each
    full pass costs as much as a small layer."""
    logits = logits.detach()
    if mode == "sample":
        race = torch.empty(logits.shape, dtype=torch.float32, device=logits.device).exponential_()
        scores = logits.float() - race.log_()
        if banned:
            scores[..., list(banned)] = float("-inf")
        return scores.argmax(-1)
    if mode != "argmax":
        raise ValueError(f"prediction mode must be one of {PREDICTIONS}, got {mode!r}")
    # the best token that is not banned is among the top len(banned) + 1
    top = logits.topk(len(banned) + 1, dim=-1).indices
    allowed = ~torch.isin(top, torch.tensor(list(banned), device=top.device))
    return top.gather(-1, allowed.float().argmax(-1, keepdim=True)).squeeze(-1)

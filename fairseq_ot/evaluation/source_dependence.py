"""How much an encoder-decoder's predictions depend on its source.

A model that ignores its source still lowers the validation loss (its decoder
becomes a language model of the targets) but generates one output for every
input. Two measures tell it apart from a model that reads the source:

- the rise in NLL (bits per target token) when every target is scored against
  the source of the next example instead of its own: zero when the decoder
  ignores the encoder;
- the spread of the encoder's outputs: the standard deviation of each
  channel over all non-padding source positions, averaged over channels;
  zero when the encoder maps every source to one constant vector.
"""

import math
from dataclasses import dataclass

import torch


@dataclass
class SourceDependence:
    nll_bits: float  # per target token, own sources
    shifted_nll_bits: float  # per target token, each target with the next example's source
    encoder_spread: float
    examples: int

    @property
    def nll_gap_bits(self):
        return self.shifted_nll_bits - self.nll_bits


def _nll_and_spread(model, dataset, items, batch_size):
    """Summed target NLL (nats), target tokens, per-batch encoder spreads."""
    pad = model.decoder.dictionary.pad()
    total_nll, tokens, spreads = 0.0, 0, []
    for start in range(0, len(items), batch_size):
        batch = dataset.collater(items[start:start + batch_size])
        net_input = batch["net_input"]
        encoder_out = model.encoder(net_input["src_tokens"], src_lengths=net_input["src_lengths"])
        states = encoder_out["encoder_out"][0]  # T x B x C
        padding = encoder_out["encoder_padding_mask"]
        keep = ~padding[0].t() if padding else torch.ones(states.shape[:2], dtype=torch.bool)
        spreads.append(states[keep].std(dim=0).mean().item())
        decoder_out = model.decoder(net_input["prev_output_tokens"], encoder_out=encoder_out)
        log_probs = model.get_normalized_probs(decoder_out, log_probs=True)
        target = batch["target"]
        token_nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        mask = target.ne(pad)
        total_nll += token_nll[mask].sum().item()
        tokens += int(mask.sum())
    return total_nll, tokens, spreads


@torch.no_grad()
def measure_source_dependence(model, dataset, examples=256, batch_size=64):
    """SourceDependence of ``model`` (eval mode) on the first ``examples`` items
    of a dataset whose items have a "source" (LanguagePairDataset, CaptionDataset)."""
    count = min(examples, len(dataset))
    if count < 2:
        raise ValueError("source dependence needs at least 2 examples")
    was_training = model.training
    model.eval()
    try:
        items = [dataset[i] for i in range(count)]
        shifted = [dict(item, source=items[(k + 1) % count]["source"]) for k, item in enumerate(items)]
        nll, tokens, spreads = _nll_and_spread(model, dataset, items, batch_size)
        shifted_nll, _, _ = _nll_and_spread(model, dataset, shifted, batch_size)
    finally:
        model.train(was_training)
    return SourceDependence(
        nll_bits=nll / tokens / math.log(2),
        shifted_nll_bits=shifted_nll / tokens / math.log(2),
        encoder_spread=sum(spreads) / len(spreads),
        examples=count,
    )

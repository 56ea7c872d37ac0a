"""An LSTM language model that runs one fused `nn.LSTM` call over the sequence.

fairseq's `lstm_lm` steps an `nn.LSTMCell` per time step and layer in Python
(`LSTMDecoder`), so a training step pays Python and autograd-node overhead
for every position; `fused_lstm_lm` computes the same function with one
`nn.LSTM` call over all positions and layers, its time loop in C++.

Hyper-parameters keep `lstm_lm`'s names (`--decoder-embed-dim`,
`--decoder-hidden-size`, `--decoder-layers`, `--decoder-out-embed-dim`,
`--dropout`, `--share-decoder-input-output-embed`), its initialisation
(uniform in [-0.1, 0.1]) and its dropout placement (on the embeddings,
between layers, on the output). lstm_lm's options beyond those are left out:
--residuals, --adaptive-softmax-cutoff (with adaptive_loss), separate input
and output dropout, --decoder-embed-path.

Incremental decoding (sampling, scheduled sampling, fairseq's sequence
generator) keeps the last (h, c) of every layer in `incremental_state` and
reads only the newest token of the prefix. An `lstm_lm`'s weights load as
they are (`upgrade_state_dict_named` renames its per-layer cells' tensors to
`nn.LSTM`'s, whose gates are in the same order) and give the same function,
except for an lstm_lm trained with --residuals, which its state dict does
not record."""

import re

import torch.nn.functional as F
from fairseq.models import (
    FairseqIncrementalDecoder,
    FairseqLanguageModel,
    register_model,
    register_model_architecture,
)
from fairseq.models.lstm import LSTM, Embedding, Linear
from fairseq.modules import FairseqDropout

from fairseq_ot.errors import FlagError

DEFAULT_MAX_TARGET_POSITIONS = int(1e5)
# lstm_lm's cell of layer i: decoder.layers.{i}.{weight_ih,...}; nn.LSTM's: lstm.{weight_ih}_l{i}
LSTM_CELL_KEY = re.compile(r"layers\.(\d+)\.((?:weight|bias)_(?:ih|hh))")


class FusedLSTMDecoder(FairseqIncrementalDecoder):
    """Embedding -> nn.LSTM (all layers, all positions in one call) ->
    optional projection to `out_embed_dim` -> output layer."""

    def __init__(self, dictionary, embed_dim, hidden_size, out_embed_dim, num_layers, dropout,
                 share_input_output_embed, max_target_positions):
        super().__init__(dictionary)
        self.embed_tokens = Embedding(len(dictionary), embed_dim, dictionary.pad())
        self.dropout_module = FairseqDropout(dropout, module_name=self.__class__.__name__)
        # nn.LSTM's own dropout acts between layers, where lstm_lm's dropout_out does
        self.lstm = LSTM(embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0)
        self.additional_fc = Linear(hidden_size, out_embed_dim) if hidden_size != out_embed_dim else None
        self.share_input_output_embed = share_input_output_embed
        self.fc_out = None if share_input_output_embed else Linear(out_embed_dim, len(dictionary))
        self.max_target_positions = max_target_positions

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None, **kwargs):
        """Logits [B, T, V] of the next token after every prefix of
        `prev_output_tokens` [B, T] (only after the last one's newest token
        when `incremental_state` holds the state of the tokens before), and None
        (no attention)."""
        x, extra = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        return self.output_layer(x), extra

    def extract_features(self, prev_output_tokens, encoder_out=None, incremental_state=None, **kwargs):
        state = None
        if incremental_state is not None:
            cached = self.get_incremental_state(incremental_state, "cached_state")
            if cached is not None:
                prev_output_tokens = prev_output_tokens[:, -1:]
                state = (cached["hidden"], cached["cell"])
        x = self.dropout_module(self.embed_tokens(prev_output_tokens))
        x, (hidden, cell) = self.lstm(x, state)
        if incremental_state is not None:
            self.set_incremental_state(incremental_state, "cached_state", {"hidden": hidden, "cell": cell})
        x = self.dropout_module(x)
        if self.additional_fc is not None:
            x = self.dropout_module(self.additional_fc(x))
        return x, None

    def output_layer(self, features, **kwargs):
        if self.share_input_output_embed:
            return F.linear(features, self.embed_tokens.weight)
        return self.fc_out(features)

    def reorder_incremental_state(self, incremental_state, new_order):
        """Beam search: the states follow their hypotheses (batch is dim 1)."""
        cached = self.get_incremental_state(incremental_state, "cached_state")
        if cached is None:
            return
        reordered = {key: value.index_select(1, new_order) for key, value in cached.items()}
        self.set_incremental_state(incremental_state, "cached_state", reordered)

    def max_positions(self):
        return self.max_target_positions

    def upgrade_state_dict_named(self, state_dict, name):
        """An lstm_lm's per-layer LSTMCell tensors under nn.LSTM's names."""
        prefix = f"{name}." if name else ""
        for key in list(state_dict):
            match = LSTM_CELL_KEY.fullmatch(key[len(prefix):]) if key.startswith(prefix) else None
            if match:
                layer, tensor = match.groups()
                state_dict[f"{prefix}lstm.{tensor}_l{layer}"] = state_dict.pop(key)
        return state_dict


@register_model("fused_lstm_lm")
class FusedLSTMLanguageModel(FairseqLanguageModel):
    @staticmethod
    def add_args(parser):
        """lstm_lm's flags that this model has, under lstm_lm's names."""
        parser.add_argument("--dropout", type=float, metavar="D",
                            help="dropout on the embeddings, between layers and on the output")
        parser.add_argument("--decoder-embed-dim", type=int, metavar="N", help="embedding dimension")
        parser.add_argument("--decoder-hidden-size", type=int, metavar="N", help="LSTM hidden size")
        parser.add_argument("--decoder-layers", type=int, metavar="N", help="LSTM layers")
        parser.add_argument("--decoder-out-embed-dim", type=int, metavar="N",
                            help="output embedding dimension (a projection when not the hidden size)")
        parser.add_argument("--share-decoder-input-output-embed", action="store_true",
                            help="share the input and output embeddings")

    @classmethod
    def build_model(cls, args, task):
        base_architecture(args)
        if args.share_decoder_input_output_embed and args.decoder_embed_dim != args.decoder_out_embed_dim:
            raise FlagError(f"--share-decoder-input-output-embed needs --decoder-embed-dim "
                            f"({args.decoder_embed_dim}) = --decoder-out-embed-dim "
                            f"({args.decoder_out_embed_dim})")
        # as lstm_lm: the longest sample the data gives, unless set
        max_positions = getattr(args, "max_target_positions", None) or getattr(
            args, "tokens_per_sample", DEFAULT_MAX_TARGET_POSITIONS)
        decoder = FusedLSTMDecoder(
            task.target_dictionary, args.decoder_embed_dim, args.decoder_hidden_size,
            args.decoder_out_embed_dim, args.decoder_layers, args.dropout,
            args.share_decoder_input_output_embed, max_positions,
        )
        return cls(decoder)


@register_model_architecture("fused_lstm_lm", "fused_lstm_lm")
def base_architecture(args):
    """lstm_lm's defaults."""
    args.dropout = getattr(args, "dropout", 0.1)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 512)
    args.decoder_hidden_size = getattr(args, "decoder_hidden_size", args.decoder_embed_dim)
    args.decoder_layers = getattr(args, "decoder_layers", 1)
    args.decoder_out_embed_dim = getattr(args, "decoder_out_embed_dim", 512)
    args.share_decoder_input_output_embed = getattr(args, "share_decoder_input_output_embed", False)

"""Captioning model: image features projected into the memory of fairseq's
Transformer decoder.

The encoder is a linear projection of each region vector (a pooled image is
one region), layer norm, an optional learned embedding of the region's
position in a grid, and dropout. Its output follows fairseq's encoder_out
dict, so fairseq's TransformerDecoder attends to it and fairseq's
SequenceGenerator reorders it during beam search."""

import torch
from torch import nn
from fairseq.models import (
    FairseqEncoder,
    FairseqEncoderDecoderModel,
    register_model,
    register_model_architecture,
)
from fairseq.models.transformer import Embedding, TransformerDecoder, TransformerModel
from fairseq.models.transformer.transformer_legacy import base_architecture
from fairseq.modules import FairseqDropout, LayerNorm

from fairseq_ot.errors import FlagError


def encoder_out_dict(memory, padding, src_lengths):
    """fairseq's encoder_out layout; an image encoder has no token embeddings,
    intermediate states or source tokens to pass on."""
    return {"encoder_out": [memory], "encoder_padding_mask": [padding], "encoder_embedding": [],
            "encoder_states": [], "src_tokens": [], "src_lengths": src_lengths}


class ImageFeatureEncoder(FairseqEncoder):
    def __init__(self, feature_dim, embed_dim, dropout, max_regions):
        super().__init__(dictionary=None)
        self.project = nn.Linear(feature_dim, embed_dim)
        self.layer_norm = LayerNorm(embed_dim)
        self.dropout = FairseqDropout(dropout, module_name=self.__class__.__name__)
        self.max_regions = max_regions
        self.region_positions = nn.Embedding(max_regions, embed_dim) if max_regions else None

    def forward(self, src_tokens, src_lengths=None, **kwargs):
        """``src_tokens``: features [B, R, D]; ``src_lengths``: the number of
        real regions of each image (the rest is padding)."""
        features = src_tokens
        if features.dim() != 3 or not features.is_floating_point():
            raise ValueError(f"{type(self).__name__} takes float image features [batch, regions, "
                             f"dim], got {features.dtype} {tuple(features.shape)}")
        n_regions = features.size(1)
        x = self.project(features)
        if self.region_positions is not None:
            if n_regions > self.max_regions:
                raise FlagError(f"{n_regions} regions per image, more than "
                                 f"--caption-region-positions {self.max_regions}")
            x = x + self.region_positions.weight[:n_regions]
        x = self.dropout(self.layer_norm(x))
        if src_lengths is None:
            padding = torch.zeros(features.shape[:2], dtype=torch.bool, device=features.device)
        else:
            positions = torch.arange(n_regions, device=features.device)
            padding = positions[None, :] >= src_lengths.to(features.device)[:, None]
        x = x.masked_fill(padding.unsqueeze(-1), 0.0)
        # T x B x C, as fairseq's decoders expect
        return encoder_out_dict(x.transpose(0, 1), padding, [] if src_lengths is None else [src_lengths])

    def reorder_encoder_out(self, encoder_out, new_order):
        return encoder_out_dict(
            encoder_out["encoder_out"][0].index_select(1, new_order),
            encoder_out["encoder_padding_mask"][0].index_select(0, new_order),
            [lengths.index_select(0, new_order) for lengths in encoder_out["src_lengths"]],
        )

    def max_positions(self):
        return self.max_regions or int(1e6)


@register_model("captioning_transformer")
class CaptioningTransformerModel(FairseqEncoderDecoderModel):
    @staticmethod
    def add_args(parser):
        # fairseq's Transformer flags (of which the decoder's and
        # --encoder-embed-dim, the memory size, apply)
        TransformerModel.add_args(parser)
        parser.add_argument("--caption-region-positions", type=int, metavar="N",
                            help="learned position embeddings for grids of up to N regions "
                                 "(0: none, for pooled features or unordered regions)")

    @classmethod
    def build_model(cls, args, task):
        captioning_transformer(args)
        if getattr(task, "feature_dim", None) is None:
            raise FlagError(f"--arch {args.arch} needs image features: use --task captioning")
        if args.caption_region_positions < 0:
            raise FlagError(f"--caption-region-positions must be >= 0, got {args.caption_region_positions}")
        dictionary = task.target_dictionary
        embed_tokens = Embedding(len(dictionary), args.decoder_embed_dim, dictionary.pad())
        encoder = ImageFeatureEncoder(task.feature_dim, args.encoder_embed_dim, args.dropout,
                                      args.caption_region_positions)
        decoder = TransformerDecoder(args, dictionary, embed_tokens)
        return cls(encoder, decoder)

    def max_positions(self):
        # items are filtered by caption length alone (CaptionDataset.sizes);
        # the encoder checks the number of regions itself
        return self.decoder.max_positions()


@register_model_architecture("captioning_transformer", "captioning_transformer")
def captioning_transformer(args):
    """A small default: 3 decoder layers of size 256."""
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 256)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", args.decoder_embed_dim)
    args.decoder_ffn_embed_dim = getattr(args, "decoder_ffn_embed_dim", 1024)
    args.decoder_layers = getattr(args, "decoder_layers", 3)
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", 4)
    args.dropout = getattr(args, "dropout", 0.3)
    args.share_decoder_input_output_embed = getattr(args, "share_decoder_input_output_embed", True)
    args.caption_region_positions = getattr(args, "caption_region_positions", 0)
    base_architecture(args)

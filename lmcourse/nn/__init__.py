"""Neural building blocks: attention, positional encodings, Transformer blocks (chapter 6).

Later chapters build GPT, BERT and T5-style models from these blocks.
"""
# rnn: see lmcourse.nn.rnn
from lmcourse.nn.attention import (MaskError, MultiHeadAttention, causal_mask, combine_masks, padding_mask,
                                   scaled_dot_product_attention)
from lmcourse.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_encoding
from lmcourse.nn.transformer import (ACTIVATIONS, Decoder, DecoderBlock, Encoder, EncoderBlock, FeedForward,
                                     Seq2SeqTransformer, get_activation)

__all__ = ["ACTIVATIONS", "Decoder", "DecoderBlock", "Encoder", "EncoderBlock", "FeedForward",
           "LearnedPositionalEmbedding", "MaskError", "MultiHeadAttention", "Seq2SeqTransformer",
           "SinusoidalPositionalEncoding", "causal_mask", "combine_masks", "padding_mask",
           "scaled_dot_product_attention", "sinusoidal_encoding", "get_activation"]

"""Neural building blocks: RNN/GRU/LSTM (chapter 4), attention, positional encodings and
Transformer blocks (chapter 6).

Later chapters build GPT, BERT and T5-style models from these blocks.
"""
from lmcourse.nn.attention import (MaskError, MultiHeadAttention, causal_mask, combine_masks, padding_mask,
                                   scaled_dot_product_attention)
from lmcourse.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, RNNLanguageModel, RNNShapeError
from lmcourse.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_encoding
from lmcourse.nn.transformer import (ACTIVATIONS, Decoder, DecoderBlock, Encoder, EncoderBlock, FeedForward,
                                     Seq2SeqTransformer, get_activation)

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "RNNLanguageModel", "RNNShapeError", "ACTIVATIONS", "Decoder", "DecoderBlock", "Encoder", "EncoderBlock", "FeedForward",
           "LearnedPositionalEmbedding", "MaskError", "MultiHeadAttention", "Seq2SeqTransformer",
           "SinusoidalPositionalEncoding", "causal_mask", "combine_masks", "padding_mask",
           "scaled_dot_product_attention", "sinusoidal_encoding", "get_activation"]

"""Models built from ``lmcourse.nn`` blocks.

seq2seq with attention (chapter 5); GPT, BERT, a T5-style encoder-decoder and MoE
(chapters 7 and 8); Hugging Face interop (``lmcourse.models.hf``) and the offline
pretrained models (``lmcourse.models.pretrained``).
"""
from lmcourse.models.bert import (BERT, BertClassifier, BertConfig, BertForPreTraining, bert_pretraining_loss,
                                  mask_tokens, mean_pool)
from lmcourse.models.gpt import GPT, GPTConfig, TokenError
from lmcourse.models.moe import MoEFeedForward, load_balancing_loss, moe_balance_loss, moe_gpt
from lmcourse.models.seq2seq import DotAttention, Seq2Seq
from lmcourse.models.t5 import T5, T5Config

__all__ = ["BERT", "BertClassifier", "BertConfig", "BertForPreTraining", "DotAttention", "GPT", "GPTConfig",
           "MoEFeedForward", "Seq2Seq", "T5", "T5Config", "TokenError", "bert_pretraining_loss",
           "load_balancing_loss", "mask_tokens", "mean_pool", "moe_balance_loss", "moe_gpt"]

"""Interop with Hugging Face ``transformers``: copy weights between its models and lmcourse's.

Taught in chapter 7 (Pretrained language models). The lmcourse models keep the
layer names of chapter 6 (``self_attn.q_proj``, ``ffn.fc1``, ``norm1``); these
functions rename (and where needed transpose or split) the tensors:

* GPT-2 stores its linear layers as ``Conv1D`` with the weight transposed (in, out),
  and q, k, v in one matrix ``c_attn`` (C, 3C): split it in three and transpose;
* BERT's names map one to one (``attention.self.query`` -> ``self_attn.q_proj``, ...);
* T5 has no 1/sqrt(d_head) in its attention: W_q is multiplied by sqrt(d_head).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from lmcourse.models.bert import BERT, BertConfig, BertForPreTraining
from lmcourse.models.gpt import GPT, GPTConfig
from lmcourse.models.t5 import T5, T5Config

_GPT2_ACT = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}


def _act(name: str) -> str:
    if name not in _GPT2_ACT:
        raise ValueError(f"activation {name!r} has no lmcourse equivalent; supported: {', '.join(_GPT2_ACT)}")
    return _GPT2_ACT[name]


# --------------------------------------------------------------------------- GPT-2


def gpt_config_from_hf(hf_config) -> GPTConfig:
    return GPTConfig(vocab_size=hf_config.vocab_size, block_size=hf_config.n_positions, n_layer=hf_config.n_layer,
                     n_head=hf_config.n_head, n_embd=hf_config.n_embd, dropout=0.0, bias=True,
                     activation=_act(hf_config.activation_function), layer_norm_eps=hf_config.layer_norm_epsilon)


def gpt_from_hf(hf_model) -> GPT:
    """lmcourse ``GPT`` with the weights of a ``transformers.GPT2LMHeadModel``.

    Taught in chapter 7 (Pretrained language models).
    """
    cfg = gpt_config_from_hf(hf_model.config)
    sd = {k.removeprefix("transformer."): v for k, v in hf_model.state_dict().items()}
    c = cfg.n_embd
    out = {"wte.weight": sd["wte.weight"], "wpe.embedding.weight": sd["wpe.weight"],
           "ln_f.weight": sd["ln_f.weight"], "ln_f.bias": sd["ln_f.bias"], "lm_head.weight": sd["wte.weight"]}
    for i in range(cfg.n_layer):
        h, b = f"h.{i}.", f"blocks.{i}."
        w, bias = sd[h + "attn.c_attn.weight"], sd[h + "attn.c_attn.bias"]           # (C, 3C), (3C,)
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[b + f"self_attn.{name}.weight"] = w[:, j * c:(j + 1) * c].t()
            out[b + f"self_attn.{name}.bias"] = bias[j * c:(j + 1) * c]
        pairs = {"attn.c_proj": "self_attn.out_proj", "mlp.c_fc": "ffn.fc1", "mlp.c_proj": "ffn.fc2"}
        for src, dst in pairs.items():
            out[b + dst + ".weight"] = sd[h + src + ".weight"].t()                       # Conv1D is (in, out)
            out[b + dst + ".bias"] = sd[h + src + ".bias"]
        for src, dst in (("ln_1", "norm1"), ("ln_2", "norm2")):
            out[b + dst + ".weight"], out[b + dst + ".bias"] = sd[h + src + ".weight"], sd[h + src + ".bias"]
    model = GPT(cfg)
    model.load_state_dict({k: v.detach().clone() for k, v in out.items()})
    return model.eval()


def gpt_to_hf(model: GPT):
    """A ``transformers.GPT2LMHeadModel`` with the weights of an lmcourse ``GPT`` (same config).

    Taught in chapter 7 (Pretrained language models).
    """
    from transformers import GPT2Config, GPT2LMHeadModel
    c = model.config
    if not c.bias:
        raise ValueError("GPT-2 has biases everywhere: only a GPT built with bias=True converts")
    act = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}[c.activation]
    hf_cfg = GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                        n_head=c.n_head, activation_function=act, layer_norm_epsilon=c.layer_norm_eps,
                        resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
                        bos_token_id=c.vocab_size - 1, eos_token_id=c.vocab_size - 1)
    hf = GPT2LMHeadModel(hf_cfg)
    sd = model.state_dict()
    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.embedding.weight"],
           "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": sd["ln_f.bias"],
           "lm_head.weight": sd["wte.weight"]}
    for i in range(c.n_layer):
        h, b = f"transformer.h.{i}.", f"blocks.{i}."
        out[h + "attn.c_attn.weight"] = torch.cat([sd[b + f"self_attn.{n}.weight"].t()
                                                   for n in ("q_proj", "k_proj", "v_proj")], dim=1)
        out[h + "attn.c_attn.bias"] = torch.cat([sd[b + f"self_attn.{n}.bias"] for n in ("q_proj", "k_proj", "v_proj")])
        for dst, src in {"attn.c_proj": "self_attn.out_proj", "mlp.c_fc": "ffn.fc1", "mlp.c_proj": "ffn.fc2"}.items():
            out[h + dst + ".weight"] = sd[b + src + ".weight"].t()
            out[h + dst + ".bias"] = sd[b + src + ".bias"]
        for dst, src in (("ln_1", "norm1"), ("ln_2", "norm2")):
            out[h + dst + ".weight"], out[h + dst + ".bias"] = sd[b + src + ".weight"], sd[b + src + ".bias"]
    missing, unexpected = hf.load_state_dict({k: v.detach().clone().contiguous() for k, v in out.items()},
                                             strict=False)
    missing = [k for k in missing if not k.endswith(".attn.bias") and not k.endswith("masked_bias")]
    if missing or unexpected:
        raise RuntimeError(f"GPT -> GPT2LMHeadModel: missing {missing}, unexpected {unexpected}")
    return hf.eval()


# --------------------------------------------------------------------------- BERT

_BERT_LAYER = {"attention.self.query": "self_attn.q_proj", "attention.self.key": "self_attn.k_proj",
               "attention.self.value": "self_attn.v_proj", "attention.output.dense": "self_attn.out_proj",
               "attention.output.LayerNorm": "norm1", "intermediate.dense": "ffn.fc1", "output.dense": "ffn.fc2",
               "output.LayerNorm": "norm2"}
_BERT_TOP = {"embeddings.word_embeddings": "embeddings.word_embeddings",
             "embeddings.position_embeddings": "embeddings.position_embeddings",
             "embeddings.token_type_embeddings": "embeddings.token_type_embeddings",
             "embeddings.LayerNorm": "embeddings.norm", "pooler.dense": "pooler"}
_BERT_HEADS = {"cls.predictions.transform.dense": "mlm_transform", "cls.predictions.transform.LayerNorm": "mlm_norm",
               "cls.seq_relationship": "nsp"}


def bert_state_dict_from_hf(sd: dict[str, Tensor], heads: bool = False) -> dict[str, Tensor]:
    """Rename a Hugging Face BERT state dict (``BertModel`` / ``BertFor...``) to lmcourse ``BERT`` names.

    With ``heads=True`` the keys are for ``BertForPreTraining`` (``bert.`` prefix, MLM and NSP heads).
    Taught in chapter 7 (Pretrained language models).
    """
    out: dict[str, Tensor] = {}
    prefix = "bert." if heads else ""
    for k, v in sd.items():
        k = k.removeprefix("bert.")
        if k.endswith("position_ids") or k.startswith("cls.predictions.decoder.weight"):
            continue                                                   # a buffer; the tied decoder weight
        base, _, leaf = k.rpartition(".")
        if base.startswith("encoder.layer."):
            _, _, i, rest = base.split(".", 3)
            out[f"{prefix}encoder.layers.{i}.{_BERT_LAYER[rest]}.{leaf}"] = v
        elif base in _BERT_TOP:
            out[f"{prefix}{_BERT_TOP[base]}.{leaf}"] = v
        elif heads and base in _BERT_HEADS:
            out[f"{_BERT_HEADS[base]}.{leaf}"] = v
        elif heads and k in ("cls.predictions.bias", "cls.predictions.decoder.bias"):
            out["mlm_decoder.bias"] = v
        elif base.startswith("cls."):
            continue                                                   # heads are dropped for a bare BERT
        else:
            raise KeyError(f"unknown BERT weight {k!r}")
    return out


def bert_config_from_hf(hf_config) -> BertConfig:
    if getattr(hf_config, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are supported")
    return BertConfig(vocab_size=hf_config.vocab_size, hidden_size=hf_config.hidden_size,
                      num_hidden_layers=hf_config.num_hidden_layers,
                      num_attention_heads=hf_config.num_attention_heads,
                      intermediate_size=hf_config.intermediate_size,
                      max_position_embeddings=hf_config.max_position_embeddings,
                      type_vocab_size=hf_config.type_vocab_size, dropout=hf_config.hidden_dropout_prob,
                      layer_norm_eps=hf_config.layer_norm_eps, activation=_act(hf_config.hidden_act),
                      pad_token_id=hf_config.pad_token_id or 0)


def bert_from_hf(hf_model, heads: bool = False):
    """lmcourse ``BERT`` (or ``BertForPreTraining`` with ``heads=True``) with the weights of a transformers BERT.

    A ``BertModel`` has no pooler weights when built with ``add_pooling_layer=False``; the
    pooler then keeps its initial weights. Taught in chapter 7 (Pretrained language models).
    """
    cfg = bert_config_from_hf(hf_model.config)
    model = BertForPreTraining(cfg) if heads else BERT(cfg)
    sd = bert_state_dict_from_hf(hf_model.state_dict(), heads=heads)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    allowed = {"pooler.weight", "pooler.bias", "bert.pooler.weight", "bert.pooler.bias", "nsp.weight", "nsp.bias",
               "mlm_decoder.weight"}
    if set(missing) - allowed or unexpected:
        raise RuntimeError(f"BERT weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.eval()


# --------------------------------------------------------------------------- T5


def t5_from_hf(hf_model) -> T5:
    """lmcourse ``T5`` with the weights of a ``transformers.T5ForConditionalGeneration`` (original T5 layout:
    ReLU FFN, tied embeddings, n_heads * d_kv = d_model).

    Taught in chapter 8 (Scaling up).
    """
    hc = hf_model.config
    if hc.feed_forward_proj != "relu" or not hc.tie_word_embeddings or hc.num_heads * hc.d_kv != hc.d_model:
        raise ValueError("only the original T5 layout converts: feed_forward_proj='relu', tied embeddings and "
                         f"num_heads * d_kv = d_model (got {hc.feed_forward_proj!r}, tie={hc.tie_word_embeddings}, "
                         f"{hc.num_heads}*{hc.d_kv} vs {hc.d_model})")
    cfg = T5Config(vocab_size=hc.vocab_size, d_model=hc.d_model, n_heads=hc.num_heads, n_layers=hc.num_layers,
                   n_decoder_layers=hc.num_decoder_layers, d_ff=hc.d_ff, dropout=0.0,
                   num_buckets=hc.relative_attention_num_buckets, max_distance=hc.relative_attention_max_distance,
                   layer_norm_eps=hc.layer_norm_epsilon, pad_id=hc.pad_token_id, eos_id=hc.eos_token_id,
                   decoder_start_id=hc.decoder_start_token_id)
    sd = hf_model.state_dict()
    root = math.sqrt(hc.d_kv)
    out = {"shared.weight": sd["shared.weight"],
           "encoder_bias.embedding.weight": sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"],
           "decoder_bias.embedding.weight": sd["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"],
           "encoder.norm.weight": sd["encoder.final_layer_norm.weight"],
           "decoder.norm.weight": sd["decoder.final_layer_norm.weight"]}

    def attn(src: str, dst: str) -> None:
        for a, b in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj")):
            w = sd[f"{src}.{a}.weight"]
            out[f"{dst}.{b}.weight"] = w * root if a == "q" else w     # undo the blocks' 1/sqrt(d_head)

    for side, n in (("encoder", cfg.n_layers), ("decoder", hc.num_decoder_layers)):
        for i in range(n):
            s, d = f"{side}.block.{i}.layer.", f"{side}.layers.{i}."
            attn(s + "0.SelfAttention", d + "self_attn")
            out[d + "norm1.weight"] = sd[s + "0.layer_norm.weight"]
            ff = 1
            if side == "decoder":
                attn(s + "1.EncDecAttention", d + "cross_attn")
                out[d + "norm2.weight"] = sd[s + "1.layer_norm.weight"]
                ff = 2
            out[d + "ffn.fc1.weight"] = sd[s + f"{ff}.DenseReluDense.wi.weight"]
            out[d + "ffn.fc2.weight"] = sd[s + f"{ff}.DenseReluDense.wo.weight"]
            out[d + f"norm{ff + 1}.weight"] = sd[s + f"{ff}.layer_norm.weight"]
    model = T5(cfg)
    model.load_state_dict({k: v.detach().clone() for k, v in out.items()})
    return model.eval()


def from_hf(hf_model):
    """Any supported transformers model -> the lmcourse model with its weights."""
    kind = type(hf_model).__name__
    if kind == "GPT2LMHeadModel":
        return gpt_from_hf(hf_model)
    if kind in ("BertModel", "BertForMaskedLM"):
        return bert_from_hf(hf_model)
    if kind == "BertForPreTraining":
        return bert_from_hf(hf_model, heads=True)
    if kind == "T5ForConditionalGeneration":
        return t5_from_hf(hf_model)
    raise ValueError(f"no lmcourse model for {kind}; supported: GPT2LMHeadModel, BertModel, BertForMaskedLM, "
                     "BertForPreTraining, T5ForConditionalGeneration")


__all__ = ["bert_config_from_hf", "bert_from_hf", "bert_state_dict_from_hf", "from_hf", "gpt_config_from_hf",
           "gpt_from_hf", "gpt_to_hf", "t5_from_hf"]

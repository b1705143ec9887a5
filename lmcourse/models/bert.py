"""BERT: a bidirectional Transformer encoder pretrained with masked language modelling (MLM) and NSP.

Taught in chapter 7 (Pretrained language models). Built from the post-LN
``lmcourse.nn.Encoder`` of chapter 6 (as the original BERT):

    input representation  E = LN(E_token[x] + E_segment[s] + E_position[0..T-1])
    encoder               H = Encoder(E)              every position sees every position
    [CLS]                 pooled = tanh(W H[:, 0] + b)  the summary vector used by NSP and classifiers
    MLM head              logits = LN(gelu(W H)) E_token^T + b   (tied to the token embeddings)
    NSP head              IsNext / NotNext = W_nsp pooled

``mask_tokens`` applies the 15% / 80-10-10 masking rule. Parameter names follow
chapter 6's blocks; ``lmcourse.models.hf`` copies weights from ``transformers.BertModel``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.models.gpt import TokenError, check_ids
from lmcourse.nn import Encoder, get_activation


@dataclass
class BertConfig:
    """Sizes of a BERT. BERT-base: (30522, 768, 12 layers, 12 heads, 3072, 512 positions); MiniLM-L6: 384/6/12/1536."""
    vocab_size: int = 30522
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 128
    type_vocab_size: int = 2
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    activation: str = "gelu"
    pad_token_id: int = 0


class BertEmbeddings(nn.Module):
    """Token + segment (token type) + position embeddings, summed, then LayerNorm and dropout.

    Taught in chapter 7 (Pretrained language models).
    """

    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.drop = nn.Dropout(c.dropout)

    def parts(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> dict[str, Tensor]:
        """The three embeddings separately, each (B, T, C) (the chapter plots them)."""
        b, t = input_ids.shape
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(t, device=input_ids.device).expand(b, t)
        return {"token": self.word_embeddings(input_ids), "segment": self.token_type_embeddings(token_type_ids),
                "position": self.position_embeddings(positions)}

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        p = self.parts(input_ids, token_type_ids)
        return self.drop(self.norm(p["token"] + p["segment"] + p["position"]))  # (B, T, C)


class BERT(nn.Module):
    """The BERT encoder: embeddings, a post-LN Transformer encoder, and the [CLS] pooler.

    ``forward(input_ids, token_type_ids=None, attention_mask=None)`` -> (last hidden states
    (B, T, C), pooled [CLS] vector (B, C)). ``attention_mask`` is 1 for real tokens, 0 for padding.

    Taught in chapter 7 (Pretrained language models).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = c = config
        self.embeddings = BertEmbeddings(c)
        self.encoder = Encoder(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size,
                               norm_first=False, dropout=c.dropout, activation=c.activation,
                               layer_norm_eps=c.layer_norm_eps)
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size)
        self.apply(_init_weights)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        c = self.config
        check_ids(input_ids, c.vocab_size, c.max_position_embeddings)
        if token_type_ids is not None:
            if token_type_ids.shape != input_ids.shape:
                raise TokenError(f"token_type_ids {tuple(token_type_ids.shape)} must have the shape of input_ids "
                                 f"{tuple(input_ids.shape)}")
            check_ids(token_type_ids, c.type_vocab_size, what="token_type_ids (segment ids)")
        key_mask = None
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise TokenError(f"attention_mask {tuple(attention_mask.shape)} must have the shape of input_ids "
                                 f"{tuple(input_ids.shape)}")
            key_mask = attention_mask.bool()
        h = self.encoder(self.embeddings(input_ids, token_type_ids), key_mask=key_mask)  # (B, T, C)
        pooled = torch.tanh(self.pooler(h[:, 0]))                                         # [CLS]: (B, C)
        return h, pooled


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


class BertForPreTraining(nn.Module):
    """BERT with its two pretraining heads: masked LM (tied to the token embeddings) and next sentence prediction.

    ``forward(...)`` -> (MLM logits (B, T, V), NSP logits (B, 2)). ``loss(batch)`` is the sum of
    the MLM loss (only on the masked positions, label -100 elsewhere) and the NSP loss.

    Taught in chapter 7 (Pretrained language models).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = c = config
        self.bert = BERT(c)
        self.mlm_transform = nn.Linear(c.hidden_size, c.hidden_size)
        self.mlm_act = get_activation(c.activation)
        self.mlm_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlm_decoder = nn.Linear(c.hidden_size, c.vocab_size)
        self.mlm_decoder.weight = self.bert.embeddings.word_embeddings.weight   # tied
        self.nsp = nn.Linear(c.hidden_size, 2)
        for m in (self.mlm_transform, self.nsp):
            _init_weights(m)
        nn.init.zeros_(self.mlm_decoder.bias)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        return self.mlm_head(h), self.nsp(pooled)                                          # (B, T, V), (B, 2)

    def mlm_head(self, h: Tensor) -> Tensor:
        """Hidden states (..., C) -> vocabulary logits (..., V)."""
        return self.mlm_decoder(self.mlm_norm(self.mlm_act(self.mlm_transform(h))))


def bert_pretraining_loss(model: BertForPreTraining, batch: dict) -> Tensor:
    """MLM cross-entropy over the masked positions (+ NSP cross-entropy if the batch has ``next_sentence_label``).

    Taught in chapter 7 (Pretrained language models); a ``loss_fn`` for ``lmcourse.train``.
    """
    h, pooled = model.bert(batch["input_ids"], batch.get("token_type_ids"), batch.get("attention_mask"))
    chosen = batch["labels"] != -100                                 # only ~15% of the positions give a loss,
    logits = model.mlm_head(h[chosen])                               # so only they go through the output layer
    loss = F.cross_entropy(logits, batch["labels"][chosen])
    if "next_sentence_label" in batch:
        loss = loss + F.cross_entropy(model.nsp(pooled), batch["next_sentence_label"])
    return loss


def mean_pool(h: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """Mean of the token vectors (B, T, C) -> (B, C), padding left out (the sentence vector of all-MiniLM).

    Taught in chapter 7 (Pretrained language models).
    """
    if attention_mask is None:
        return h.mean(1)
    m = attention_mask[..., None].to(h.dtype)                                      # (B, T, 1)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


class BertClassifier(nn.Module):
    """A BERT with a linear classifier on its sentence vector: the [CLS] pooled output or the mean of the tokens.

    Fine-tuning trains everything; ``freeze_encoder()`` turns it into the feature-based setting
    (only the linear layer learns). Taught in chapter 7 (Pretrained language models).
    """

    def __init__(self, bert: BERT, n_classes: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', not {pooling!r}")
        self.bert, self.pooling = bert, pooling
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(bert.config.hidden_size, n_classes)

    def features(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                 attention_mask: Tensor | None = None) -> Tensor:
        h, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        return pooled if self.pooling == "cls" else mean_pool(h, attention_mask)   # (B, C)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                attention_mask: Tensor | None = None) -> Tensor:
        return self.head(self.drop(self.features(input_ids, token_type_ids, attention_mask)))  # (B, n_classes)

    def freeze_encoder(self) -> "BertClassifier":
        for p in self.bert.parameters():
            p.requires_grad_(False)
        return self


def mask_tokens(input_ids: Tensor, mask_id: int, vocab_size: int, special_mask: Tensor | None = None,
                mlm_probability: float = 0.15, generator: torch.Generator | None = None,
                first_normal_id: int = 0) -> tuple[Tensor, Tensor]:
    """BERT's masking rule: choose 15% of the (non-special) tokens as prediction targets; of those,
    replace 80% by [MASK], 10% by a random token, and keep 10% unchanged.

    Returns (corrupted input_ids, labels) with labels = the original id at the chosen
    positions and -100 (ignored by the loss) elsewhere. ``special_mask`` (B, T) is True
    for [CLS], [SEP], [PAD], which are never chosen. Random replacements are drawn from
    ids in ``[first_normal_id, vocab_size)``.

    Taught in chapter 7 (Pretrained language models).
    """
    if not 0.0 <= mlm_probability <= 1.0:
        raise ValueError(f"mlm_probability must be in [0, 1], got {mlm_probability}")
    if not 0 <= mask_id < vocab_size:
        raise TokenError(f"mask_id {mask_id} is outside the vocabulary [0, {vocab_size})")
    g = generator
    dev = input_ids.device
    labels = input_ids.clone()
    prob = torch.full(input_ids.shape, mlm_probability, device=dev)
    if special_mask is not None:
        prob = prob.masked_fill(special_mask, 0.0)
    chosen = torch.bernoulli(prob, generator=g).bool()                            # the 15% that give loss
    labels[~chosen] = -100
    u = torch.rand(input_ids.shape, generator=g, device=dev)
    to_mask = chosen & (u < 0.8)                                                  # 80% -> [MASK]
    to_random = chosen & (u >= 0.8) & (u < 0.9)                                   # 10% -> a random token
    corrupted = input_ids.clone()
    corrupted[to_mask] = mask_id
    random_ids = torch.randint(first_normal_id, vocab_size, input_ids.shape, generator=g, device=dev)
    corrupted[to_random] = random_ids[to_random]                                  # the other 10% stay as they are
    return corrupted, labels


__all__ = ["BERT", "BertClassifier", "BertConfig", "BertEmbeddings", "BertForPreTraining", "bert_pretraining_loss", "mask_tokens", "mean_pool"]

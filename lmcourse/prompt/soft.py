"""Continuous (soft) prompts: prompt tuning, P-tuning v1 and P-tuning v2, on a frozen model.

Taught in chapter 10 (Templates: P-tuning v1/v2) and chapter 11 (prompt tuning).

A soft prompt is a template whose tokens are not words: ``n_virtual`` vectors in the
model's input-embedding space, prepended to every input, trained by gradient descent
while the model stays frozen.

* :class:`PromptTuning` (Lester et al. 2021): the vectors are the parameters.
* :class:`PTuning` (P-tuning v1, Liu et al. 2021): the vectors come out of a small
  prompt encoder (a bidirectional LSTM + MLP, or an MLP) applied to a trainable table;
  the encoder couples the virtual tokens and makes optimisation easier.
* :class:`DeepPromptTuning` (P-tuning v2, Liu et al. 2022): prompts at *every* layer,
  as keys and values, i.e. prefix-tuning (:mod:`lmcourse.delta.prefix`) without the
  reparameterisation by default.

The wrappers work on Hugging Face models (``LlamaForCausalLM`` such as SmolLM2,
``BertModel`` such as MiniLM, ...) the way ``peft`` does (virtual-token embeddings go in
through ``inputs_embeds``, the attention mask is extended with ones), and
:class:`PromptTuning` / :class:`PTuning` also on lmcourse's own :class:`~lmcourse.models.GPT`.
Unlike ``peft``, ``forward`` returns outputs aligned with ``input_ids``: the virtual
positions are removed from ``logits`` / ``last_hidden_state``, so a wrapped model can be
used wherever the plain model is (e.g. by :mod:`lmcourse.prompt.scoring`).

Mixed templates (words and soft tokens, P-tuning's ``[P1] x [P2] ... [MASK]``): give
``soft_token`` (a string the tokenizer encodes to ONE id, e.g. a special token; with
``tokenizer=``) or ``soft_token_id``. The wrapper's ``soft_token`` attribute is what a
``Template`` renders for each ``{soft}`` (the scorers read it); the i-th placeholder of
every input is replaced by the i-th virtual vector instead of prepending them.
Trainable-parameter counts and, with copied values, logits equal ``peft``'s
(``PromptTuningConfig``, ``PromptEncoderConfig``, ``PrefixTuningConfig``); see
``tests/test_prompt_soft.py``.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import Tensor, nn

from lmcourse.delta.prefix import PrefixError, PrefixTuning
from lmcourse.errors import LMCourseError


class SoftPromptError(LMCourseError, ValueError):
    """A model or an argument the soft-prompt wrappers cannot work with."""


def _is_lmcourse_gpt(model: nn.Module) -> bool:
    from lmcourse.models.gpt import GPT
    return isinstance(model, GPT)


def input_embedding(model: nn.Module) -> nn.Embedding:
    """The token-embedding table of a Hugging Face model or of lmcourse's GPT. Taught in chapter 10."""
    if _is_lmcourse_gpt(model):
        return model.wte
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if get is not None else None
    if not isinstance(emb, nn.Embedding):
        raise SoftPromptError(f"cannot find the input embeddings of {type(model).__name__}: soft prompts need a "
                              "Hugging Face model (get_input_embeddings) or lmcourse's GPT")
    return emb


class _SoftPromptModel(nn.Module):
    """Shared forward pass: prepend ``virtual_embeddings()`` (n, C) to the input embeddings of a frozen model."""

    def __init__(self, model: nn.Module, n_virtual: int, soft_token_id: int | None = None,
                 soft_token: str | None = None, tokenizer=None):
        super().__init__()
        if n_virtual < 1:
            raise SoftPromptError(f"n_virtual must be >= 1, got {n_virtual}")
        if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            raise SoftPromptError(f"{type(model).__name__} is an encoder-decoder model; soft prompts here support "
                                  "decoder-only and encoder models")
        self.model = model
        for p in model.parameters():                             # the model stays frozen
            p.requires_grad_(False)
        self.n_virtual = n_virtual
        self.__dict__["embed"] = input_embedding(model)         # the model's own table, not registered twice
        self.dim = self.embed.embedding_dim
        self.is_gpt = _is_lmcourse_gpt(model)
        if soft_token is not None:                               # the placeholder string -> its single id
            if tokenizer is None:
                raise SoftPromptError("soft_token needs the model's tokenizer (tokenizer=...)")
            from lmcourse.prompt.scoring import TokenizerAdapter
            ids = TokenizerAdapter(tokenizer).encode(soft_token, special=False)
            if len(ids) != 1:
                raise SoftPromptError(f"the soft token {soft_token!r} must encode to exactly one token, got ids {ids}")
            if soft_token_id is not None and soft_token_id != ids[0]:
                raise SoftPromptError(f"soft_token {soft_token!r} is id {ids[0]}, not soft_token_id {soft_token_id}")
            soft_token_id = ids[0]
        self.soft_token = soft_token or ""                      # what a Template renders for each {soft}
        if soft_token_id is not None and not 0 <= soft_token_id < self.embed.num_embeddings:
            raise SoftPromptError(f"soft_token_id {soft_token_id} is not in the vocabulary "
                                  f"(0..{self.embed.num_embeddings - 1})")
        self.soft_token_id = soft_token_id                      # None: prepend; else: fill these positions

    def virtual_embeddings(self) -> Tensor:                     # (n_virtual, C)
        raise NotImplementedError

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None,
                token_type_ids: Tensor | None = None, **kw):
        """Run the frozen model on [virtual tokens; input]; outputs aligned with ``input_ids`` (B, T)."""
        if input_ids.dim() != 2 or input_ids.shape[1] < 1:
            raise SoftPromptError(f"input_ids must be (B, T) with T >= 1, got shape {tuple(input_ids.shape)}")
        if "position_ids" in kw or "inputs_embeds" in kw:
            raise SoftPromptError("soft-prompt models take input_ids; position_ids / inputs_embeds are set here")
        B, n = input_ids.shape[0], self.n_virtual
        tokens = self.embed(input_ids)                                          # (B, T, C)
        prompt = self.virtual_embeddings().to(tokens.dtype)                     # (n, C)
        if self.soft_token_id is not None:                                      # mixed template: soft tokens in place
            return self._in_place_forward(input_ids, tokens, prompt, attention_mask, labels, token_type_ids, kw)
        x = torch.cat([prompt.unsqueeze(0).expand(B, -1, -1), tokens], dim=1)   # (B, n + T, C)
        if self.is_gpt:
            return self._gpt_forward(x, attention_mask, labels, kw)
        if attention_mask is not None:                                          # virtual tokens always visible
            ones = torch.ones(B, n, dtype=attention_mask.dtype, device=attention_mask.device)
            attention_mask = torch.cat([ones, attention_mask], dim=1)           # (B, n + T)
        if labels is not None:                                                  # no loss on virtual positions
            labels = torch.cat([labels.new_full((B, n), -100), labels], dim=1)
            kw["labels"] = labels
        if token_type_ids is not None:                                          # segment A for the prompt
            kw["token_type_ids"] = torch.cat([token_type_ids.new_zeros(B, n), token_type_ids], dim=1)
        out = self.model(inputs_embeds=x, attention_mask=attention_mask, **kw)
        for key in ("logits", "last_hidden_state"):                             # drop the virtual positions
            if out.get(key) is not None:
                out[key] = out[key][:, n:]
        return out

    def _in_place_forward(self, input_ids, tokens, prompt, attention_mask, labels, token_type_ids, kw):
        """Mixed template: the i-th ``soft_token_id`` of each row becomes the i-th virtual vector."""
        B, n = input_ids.shape[0], self.n_virtual
        where = input_ids == self.soft_token_id                                 # (B, T)
        counts = where.sum(1)
        if not bool((counts == n).all()):
            raise SoftPromptError(f"each input must hold exactly {n} soft tokens (id {self.soft_token_id}); "
                                  f"found {counts.tolist()}")
        x = tokens.masked_scatter(where.unsqueeze(-1), prompt.unsqueeze(0).expand(B, -1, -1))  # (B, T, C)
        if self.is_gpt:
            return self._gpt_forward(x, attention_mask, labels, kw, n_virtual=0)
        if labels is not None:
            kw["labels"] = labels
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        return self.model(inputs_embeds=x, attention_mask=attention_mask, **kw)

    def _gpt_forward(self, x: Tensor, attention_mask, labels, kw, n_virtual: int | None = None) -> SimpleNamespace:
        """lmcourse GPT: its blocks read embeddings directly (no padding mask: pad on the right)."""
        if kw:
            raise SoftPromptError(f"lmcourse GPT takes no extra arguments, got {sorted(kw)}")
        n = self.n_virtual if n_virtual is None else n_virtual
        g = self.model
        if x.shape[1] > g.config.block_size:
            raise SoftPromptError(f"{x.shape[1]} positions (with {n} virtual) exceed the GPT's "
                                  f"block_size {g.config.block_size}")
        h = g.drop(g.wpe(x))                                                    # (B, n + T, C)
        for block in g.blocks:
            h = block(h, causal=g.config.causal)
        logits = g.lm_head(g.ln_f(h))[:, n:]                                   # (B, T, V)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(),
                                               ignore_index=-100)
        return SimpleNamespace(logits=logits, loss=loss)


class PromptTuning(_SoftPromptModel):
    """Prompt tuning (Lester et al. 2021): ``n_virtual`` trainable input vectors, model frozen.

    Initialised from the embeddings of ``init_text`` (tokenised with ``tokenizer``,
    cut or repeated to ``n_virtual`` tokens, as ``peft``'s ``PromptTuningInit.TEXT``), or
    else from the embeddings of ``n_virtual`` random vocabulary tokens (``SAMPLE_VOCAB``);
    Lester et al. found both far better than random vectors.

    Taught in chapter 11 (prompt tuning); used in chapter 10.
    """

    def __init__(self, model: nn.Module, n_virtual: int, init_text: str | None = None, tokenizer=None,
                 soft_token: str | None = None, soft_token_id: int | None = None):
        super().__init__(model, n_virtual, soft_token_id, soft_token, tokenizer)
        W = self.embed.weight
        if init_text is not None:
            if tokenizer is None:
                raise SoftPromptError("init_text needs the model's tokenizer (tokenizer=...)")
            ids = tokenizer(init_text)["input_ids"]
            if not ids:
                raise SoftPromptError(f"init_text {init_text!r} encodes to no tokens")
            ids = (ids * math.ceil(n_virtual / len(ids)))[:n_virtual]         # cut or repeat, like peft
            ids = torch.tensor(ids, device=W.device)
        else:
            ids = torch.randint(0, W.shape[0], (n_virtual,), device=W.device)
        self.prompt = nn.Parameter(W[ids].detach().clone().float())            # (n, C)

    def virtual_embeddings(self) -> Tensor:
        return self.prompt


class PromptEncoder(nn.Module):
    """P-tuning v1's prompt encoder: a table (n, C) -> bidirectional LSTM + MLP, or a 3-layer MLP -> (n, C).

    Same layers as ``peft``'s ``PromptEncoder``. Taught in chapter 10 (Templates).
    """

    def __init__(self, n_virtual: int, dim: int, encoder: str = "mlp", hidden: int = 128, lstm_layers: int = 2):
        super().__init__()
        if encoder not in ("mlp", "lstm"):
            raise SoftPromptError(f"encoder must be 'mlp' or 'lstm', got {encoder!r}")
        self.kind = encoder
        self.embedding = nn.Embedding(n_virtual, dim)
        if encoder == "lstm":
            self.lstm = nn.LSTM(dim, hidden, num_layers=lstm_layers, bidirectional=True, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(2 * hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, dim))
        else:
            self.lstm = None
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, dim))

    def forward(self) -> Tensor:
        h = self.embedding.weight.unsqueeze(0)                  # (1, n, C)
        if self.lstm is not None:
            h = self.lstm(h)[0]                                 # (1, n, 2 * hidden): each token sees all others
        return self.mlp(h)[0]                                   # (n, C)


class PTuning(_SoftPromptModel):
    """P-tuning v1 (Liu et al. 2021, "GPT understands, too"): virtual tokens from a prompt encoder.

    ``encoder`` is ``"lstm"`` (the paper's) or ``"mlp"`` (``peft``'s recommended default);
    ``hidden`` its width. :meth:`to_prompt_tuning` computes the prompts once and returns a
    plain :class:`PromptTuning` (the encoder is needed only while training).

    Taught in chapter 10 (Templates).
    """

    def __init__(self, model: nn.Module, n_virtual: int, encoder: str = "mlp", hidden: int = 128,
                 lstm_layers: int = 2, soft_token: str | None = None, soft_token_id: int | None = None,
                 tokenizer=None):
        super().__init__(model, n_virtual, soft_token_id, soft_token, tokenizer)
        self.encoder = PromptEncoder(n_virtual, self.dim, encoder, hidden, lstm_layers)
        self.encoder.to(self.embed.weight.device)

    def virtual_embeddings(self) -> Tensor:
        return self.encoder()

    @torch.no_grad()
    def to_prompt_tuning(self) -> PromptTuning:
        """The same prompts as a :class:`PromptTuning` (encoder dropped); outputs unchanged."""
        pt = PromptTuning(self.model, self.n_virtual, soft_token_id=self.soft_token_id)
        pt.soft_token = self.soft_token
        pt.prompt.copy_(self.virtual_embeddings())
        return pt


class DeepPromptTuning(PrefixTuning):
    """P-tuning v2 (Liu et al. 2022): ``n_virtual`` trainable prompts at every layer, model frozen.

    Deep prompts are prefix-tuning's keys and values (:class:`lmcourse.delta.prefix.PrefixTuning`);
    P-tuning v2 trains them directly by default (``reparam_hidden=None``; the paper
    found the MLP reparameterisation helps on some tasks only). Same layout as
    ``peft.PrefixTuningConfig``.

    Taught in chapter 10 (Templates).
    """

    def __init__(self, model: nn.Module, n_virtual: int, reparam_hidden: int | None = None):
        try:
            super().__init__(model, n_virtual, reparam_hidden=reparam_hidden)
        except PrefixError as e:
            raise SoftPromptError(f"P-tuning v2: {e}") from None
        self.n_virtual = n_virtual


def trainable_parameters(module: nn.Module) -> int:
    """Number of parameters that receive gradients. Taught in chapter 10."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

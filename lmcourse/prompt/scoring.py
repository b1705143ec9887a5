"""The three model kinds behind one interface: ``word_logprobs(prompts, words)`` = log P(word | prompt).

Taught in chapter 9 (Adapting large PLMs): a template with an answer slot turns
classification into the pretraining task, and each model kind fills the slot its own way.

* causal (GPT, SmolLM2): the slot must be the END of the prompt; the word's tokens are
  teacher-forced after the prompt and their log-probabilities summed (exact chain rule):
  log P(w | x) = sum_j log P(w_j | x, w_<j).
  Leading spaces: a BPE tokenizer has different tokens for "great" and " great". The text
  before the slot is stripped of its trailing spaces and the word gets one leading space if
  there was one (``"It was {mask}"`` scores " great", the token a text continuation would
  use); with no space before the slot (``"Answer:{mask}"``) the word is scored as written.
* masked (BERT): the slot becomes as many mask tokens as the word has pieces and the
  per-position log-probabilities of the pieces are summed. For a one-piece word this is
  exact; for longer words it is the usual approximation (PET, Schick & Schuetze 2021): the
  pieces are predicted independently, each without seeing the others.
* seq2seq (T5): the encoder reads the prompt with the slot replaced by the model's sentinel
  (``<extra_id_0>`` for T5); the decoder is teacher-forced on [sentinel] + word pieces and the
  pieces' log-probabilities are summed (exact, like the causal case).

Nothing here runs under ``torch.no_grad``: gradients flow to soft prompts, prototypes and
any unfrozen weights. ``model`` is anything whose forward takes ``input_ids=``,
``attention_mask=`` (and ``decoder_input_ids=`` for seq2seq) and returns logits (B, T, V)
aligned with the input: a Hugging Face model, a wrapper from ``lmcourse.prompt.soft``, or an
lmcourse model (a returned tuple's first element, or a bare tensor, is taken as the logits).
"""
from __future__ import annotations

import os
from collections import defaultdict

import torch
from torch import Tensor, nn

from lmcourse.errors import LMCourseError
from lmcourse.prompt.templates import TemplateError


class LabelWordError(LMCourseError, ValueError):
    """A label word the tokenizer cannot encode (empty, or only unknown pieces)."""


# --------------------------------------------------------------------------- tokenizers


class TokenizerAdapter:
    """One view of a Hugging Face tokenizer or a ``tokenizers.Tokenizer``: ids, and the special ids we need."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.is_hf = hasattr(tokenizer, "convert_tokens_to_ids")
        if self.is_hf:
            ids = lambda t: None if t is None else tokenizer.convert_tokens_to_ids(t)  # noqa: E731
            self.mask_token = tokenizer.mask_token
            self.mask_id = ids(self.mask_token)
            self.unk_id = tokenizer.unk_token_id
            self.pad_id = tokenizer.pad_token_id
            if self.pad_id is None:
                self.pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
            self.sentinel_id = ids("<extra_id_0>") if "<extra_id_0>" in tokenizer.get_vocab() else None
        else:                                                    # tokenizers.Tokenizer (e.g. MiniLM's)
            get = tokenizer.token_to_id
            self.mask_token = "[MASK]" if get("[MASK]") is not None else None
            self.mask_id = get("[MASK]")
            self.unk_id = get("[UNK]")
            self.pad_id = get("[PAD]") if get("[PAD]") is not None else 0
            self.sentinel_id = get("<extra_id_0>")

    def encode(self, text: str, special: bool) -> list[int]:
        if self.is_hf:
            return list(self.tok.encode(text, add_special_tokens=special))
        return list(self.tok.encode(text, add_special_tokens=special).ids)


def word_ids(tokenizer, word: str) -> list[int]:
    """Token ids of a label word (no special tokens); ``LabelWordError`` if it is empty or only unknown pieces.

    Taught in chapter 9 (Adapting large PLMs).
    """
    tok = tokenizer if isinstance(tokenizer, TokenizerAdapter) else TokenizerAdapter(tokenizer)
    if not isinstance(word, str) or not word.strip():
        raise LabelWordError(f"a label word must be a non-empty string, not {word!r}")
    ids = tok.encode(word, special=False)
    if not ids:
        raise LabelWordError(f"the tokenizer encodes the label word {word!r} to no tokens")
    if tok.unk_id is not None and tok.unk_id in ids:
        raise LabelWordError(f"the tokenizer cannot encode the label word {word!r}: it gives the unknown token "
                             f"(ids {ids}); choose a word in its vocabulary")
    return ids


def _logits(out) -> Tensor:
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def _pad(seqs: list[list[int]], pad_id: int, device) -> tuple[Tensor, Tensor]:
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), t, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids.to(device), mask.to(device)


class _Targets:
    """(row, position, target id, output cell) quadruples: gathered in one go from the logits."""

    def __init__(self):
        self.row, self.pos, self.tgt, self.cell = [], [], [], []

    def add(self, row: int, pos: int, tgt: int, cell: int) -> None:
        self.row.append(row), self.pos.append(pos), self.tgt.append(tgt), self.cell.append(cell)

    def gather(self, logits: Tensor, rows: list[int]) -> tuple[Tensor, list[int]]:
        """Log-probs of the targets whose row is in ``rows`` (logits hold exactly those rows, in order)."""
        dev = logits.device
        local = {r: i for i, r in enumerate(rows)}
        pick = [k for k, r in enumerate(self.row) if r in local]
        sel = logits[torch.tensor([local[self.row[k]] for k in pick], device=dev),
                     torch.tensor([self.pos[k] for k in pick], device=dev)]                  # (N, V)
        lp = torch.log_softmax(sel.float(), dim=-1)
        lp = lp.gather(1, torch.tensor([self.tgt[k] for k in pick], device=dev)[:, None])[:, 0]  # (N,)
        return lp, [self.cell[k] for k in pick]


# --------------------------------------------------------------------------- scorers


class Scorer(nn.Module):
    """log P(word | prompt) for a batch of prompts (each with one answer slot) and label words.

    ``kind`` is "causal", "masked" or "seq2seq"; ``mask_token`` is the string that marks the slot
    in a rendered prompt (``Template.render(example, scorer.mask_token)``); ``soft_token`` the
    string a wrapper model expects for each soft token ("" if none). ``word_logprobs(prompts,
    words)`` -> (B, W), differentiable. Taught in chapter 9 (Adapting large PLMs).
    """

    kind = "base"

    def __init__(self, model: nn.Module, tokenizer, mask_token: str, max_batch: int = 64):
        super().__init__()
        self.model, self.tokenizer, self.mask_token = model, tokenizer, mask_token
        self.soft_token = getattr(model, "soft_token", "")
        self.tok = TokenizerAdapter(tokenizer)
        self.max_batch = max_batch
        self._word_cache: dict[str, list[int]] = {}

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def ids_of(self, word: str) -> list[int]:
        """The word's token ids as this scorer scores them (cached)."""
        if word not in self._word_cache:
            self._word_cache[word] = word_ids(self.tok, word)
        return self._word_cache[word]

    def _check(self, prompts: list[str], words: list[str]) -> None:
        if isinstance(prompts, str) or isinstance(words, str):
            raise TypeError("prompts and words are lists of strings")
        if not prompts or not words:
            raise ValueError(f"need at least one prompt and one word (got {len(prompts)} prompts, {len(words)} words)")
        for p in prompts:
            n = p.count(self.mask_token)
            if n != 1:
                raise TemplateError(f"a prompt must hold the answer slot {self.mask_token!r} exactly once, found {n} "
                                    f"in {p[:80]!r}; render the template with mask_token=scorer.mask_token")

    def _forward(self, **batch) -> Tensor:
        return _logits(self.model(**batch))

    def _run(self, jobs: list[list[int]], targets: _Targets, shape: tuple[int, int],
             dec_jobs: list[list[int]] | None = None) -> Tensor:
        """Forward the token sequences in chunks of ``max_batch``; sum each cell's target log-probs -> (B, W)."""
        out = torch.zeros(shape[0] * shape[1], device=self.device)
        for start in range(0, len(jobs), self.max_batch):
            rows = list(range(start, min(start + self.max_batch, len(jobs))))
            ids, mask = _pad([jobs[r] for r in rows], self.tok.pad_id, self.device)  # right padding
            batch = dict(input_ids=ids, attention_mask=mask)
            if dec_jobs is not None:
                batch["decoder_input_ids"] = _pad([dec_jobs[r] for r in rows], self.tok.pad_id, self.device)[0]
            lp, cells = targets.gather(self._forward(**batch), rows)
            out = out.index_add(0, torch.tensor(cells, device=out.device), lp.to(out.dtype))  # sums a word's pieces
        return out.view(*shape)

    def word_logprobs(self, prompts: list[str], words: list[str]) -> Tensor:
        raise NotImplementedError

    def forward(self, prompts: list[str], words: list[str]) -> Tensor:
        return self.word_logprobs(prompts, words)


class CausalScorer(Scorer):
    """Answer slot at the end; the word teacher-forced after the prompt. Taught in chapter 9."""

    kind = "causal"

    def split(self, prompt: str) -> tuple[str, str]:
        """(text before the slot, the word's prefix: " " if a space preceded the slot, else "")."""
        head, _, tail = prompt.partition(self.mask_token)
        if tail.strip():
            raise TemplateError(f"a causal LM reads left to right, so the answer slot must end the prompt; "
                                f"{tail.strip()[:40]!r} follows it in {prompt[:80]!r}")
        stripped = head.rstrip()
        if not stripped:
            raise TemplateError("a causal LM needs some text before the answer slot to predict it from")
        return stripped, (" " if stripped != head else "")

    def word_logprobs(self, prompts: list[str], words: list[str]) -> Tensor:
        self._check(prompts, words)
        jobs, targets = [], _Targets()
        for b, prompt in enumerate(prompts):
            head, space = self.split(prompt)
            ctx = self.tok.encode(head, special=True)
            # one job for the prompt alone: every word's FIRST token is read at its last position
            first_job = len(jobs)
            jobs.append(ctx)
            for w, word in enumerate(words):
                ids = self.ids_of(space + word)
                targets.add(first_job, len(ctx) - 1, ids[0], b * len(words) + w)
                if len(ids) > 1:                       # later tokens: teacher-force the word after the prompt
                    jobs.append(ctx + ids[:-1])
                    for j in range(1, len(ids)):
                        targets.add(len(jobs) - 1, len(ctx) - 1 + j, ids[j], b * len(words) + w)
        return self._run(jobs, targets, (len(prompts), len(words)))


class MaskedScorer(Scorer):
    """The slot becomes one mask token per word piece; pieces scored independently. Taught in chapter 9."""

    kind = "masked"

    def word_logprobs(self, prompts: list[str], words: list[str]) -> Tensor:
        self._check(prompts, words)
        if self.tok.mask_id is None:
            raise LabelWordError("this tokenizer has no mask token: a masked scorer needs one ([MASK])")
        by_len: dict[int, list[int]] = defaultdict(list)
        for w, word in enumerate(words):
            by_len[len(self.ids_of(word))].append(w)
        jobs, targets = [], _Targets()
        for b, prompt in enumerate(prompts):
            for n, ws in sorted(by_len.items()):
                seq = self.tok.encode(prompt.replace(self.mask_token, " ".join([self.mask_token] * n)), special=True)
                where = [i for i, t in enumerate(seq) if t == self.tok.mask_id]
                if len(where) != n:
                    raise TemplateError(f"expected {n} mask tokens in the encoded prompt, found {len(where)}: does "
                                        f"the prompt itself contain {self.mask_token!r}?")
                jobs.append(seq)
                for w in ws:
                    for pos, tgt in zip(where, self.ids_of(words[w])):
                        targets.add(len(jobs) - 1, pos, tgt, b * len(words) + w)
        return self._run(jobs, targets, (len(prompts), len(words)))


class Seq2SeqScorer(Scorer):
    """Encoder reads the prompt (slot = sentinel); decoder teacher-forced on [sentinel] + word. Taught in chapter 9."""

    kind = "seq2seq"

    def __init__(self, model, tokenizer, mask_token: str, max_batch: int = 64, decoder_start_id: int | None = None):
        super().__init__(model, tokenizer, mask_token, max_batch)
        cfg = getattr(model, "config", None)
        if decoder_start_id is None:
            decoder_start_id = getattr(cfg, "decoder_start_token_id", None)
        if decoder_start_id is None:
            decoder_start_id = getattr(cfg, "decoder_start_id", None)
        if decoder_start_id is None:
            raise ValueError("cannot tell the decoder's start token: pass decoder_start_id=")
        self.decoder_start_id = int(decoder_start_id)
        sid = TokenizerAdapter(tokenizer).encode(mask_token, special=False)
        self.slot_ids = sid if len(sid) == 1 else []          # T5: the sentinel opens the target

    def word_logprobs(self, prompts: list[str], words: list[str]) -> Tensor:
        self._check(prompts, words)
        enc, dec, targets = [], [], _Targets()
        for b, prompt in enumerate(prompts):
            src = self.tok.encode(prompt, special=True)
            for w, word in enumerate(words):
                tgt = self.slot_ids + self.ids_of(word)
                enc.append(src)
                dec.append([self.decoder_start_id] + tgt[:-1])
                for j in range(len(self.slot_ids), len(tgt)):
                    targets.add(len(dec) - 1, j, tgt[j], b * len(words) + w)
        return self._run(enc, targets, (len(prompts), len(words)), dec_jobs=dec)


def causal_scorer(model, tokenizer, mask_token: str = "<mask>") -> CausalScorer:
    """A scorer for a causal LM; the slot (``mask_token`` in the prompt) must end the prompt.

    The default slot marker ``"<mask>"`` is only a placeholder string (causal LMs have no mask
    token); it must not occur in the inputs. Taught in chapter 9 (Adapting large PLMs).
    """
    return CausalScorer(model, tokenizer, mask_token)


def masked_scorer(model, tokenizer) -> MaskedScorer:
    """A scorer for a masked LM (the model returns vocabulary logits at every position). Taught in chapter 9."""
    tok = TokenizerAdapter(tokenizer)
    if tok.mask_token is None:
        raise LabelWordError("a masked scorer needs a tokenizer with a mask token ([MASK])")
    return MaskedScorer(model, tokenizer, tok.mask_token)


def seq2seq_scorer(model, tokenizer, mask_token: str | None = None,
                   decoder_start_id: int | None = None) -> Seq2SeqScorer:
    """A scorer for an encoder-decoder; the slot is T5's ``<extra_id_0>`` unless ``mask_token`` says otherwise.

    Taught in chapter 9 (Adapting large PLMs).
    """
    tok = TokenizerAdapter(tokenizer)
    if mask_token is None:
        mask_token = "<extra_id_0>" if tok.sentinel_id is not None else tok.mask_token
    if mask_token is None:
        raise LabelWordError("the tokenizer has neither <extra_id_0> nor a mask token: pass mask_token=")
    return Seq2SeqScorer(model, tokenizer, mask_token, decoder_start_id=decoder_start_id)


# --------------------------------------------------------------------------- an offline masked LM


class MiniLMForMaskedLM(nn.Module):
    """MiniLM-L6's frozen encoder (the real weights) + a masked-LM head trained here for a few minutes.

    MiniLM ships without its MLM head (its package is a sentence encoder), so there is no
    pretrained masked LM offline. This puts BERT's head on it: logits = LN(gelu(W h)) E^T + b,
    decoder tied to MiniLM's (frozen) word embeddings; only W, the LayerNorm and b (about 0.18M
    numbers) are trained, on masked wiki text (``minilm_mlm``). It predicts about 7% of held-out
    masked wiki tokens (top-1; a real BERT-base MLM reaches several times that): a weak but honest
    masked LM. ``forward(input_ids, attention_mask=None, token_type_ids=None)`` -> object with ``.logits``
    (B, T, V). Taught in chapter 9 (Adapting large PLMs).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder                                           # lmcourse BERT with the MiniLM weights
        c = encoder.config.hidden_size
        self.transform, self.act = nn.Linear(c, c), nn.GELU()
        self.norm = nn.LayerNorm(c, eps=encoder.config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(encoder.config.vocab_size))
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    def head(self, h: Tensor) -> Tensor:
        """Hidden states (..., C) -> vocabulary logits (..., V)."""
        emb = self.encoder.embeddings.word_embeddings.weight                  # (V, C), tied and frozen
        return self.norm(self.act(self.transform(h))) @ emb.T + self.bias

    def head_state_dict(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None):
        h, _ = self.encoder(input_ids, token_type_ids, attention_mask)   # (B, T, C)
        return _Output(self.head(h))


class _Output:
    def __init__(self, logits: Tensor):
        self.logits = logits


def minilm_tokenizer_hf():
    """MiniLM's WordPiece tokenizer as a ``transformers.BertTokenizerFast`` (has ``[MASK]``)."""
    from transformers import BertTokenizerFast

    from lmcourse.models.pretrained import asset_dir
    return BertTokenizerFast.from_pretrained(str(asset_dir("minilm") / "model"))


MLM_RECIPE = dict(lines=1500, valid_lines=200, max_length=64, steps=300, batch=256, lr=4e-3, seed=0)


def _mlm_batches(tok, lines: list[str], max_length: int, seed: int):
    """BERT-style masking of 15% of the real tokens (all replaced by [MASK]): (ids, attention, labels) per 32 lines."""
    g = torch.Generator().manual_seed(seed)
    for s in range(0, len(lines), 32):
        enc = tok(lines[s:s + 32], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        ids = enc["input_ids"].clone()
        special = (ids == tok.cls_token_id) | (ids == tok.sep_token_id) | (ids == tok.pad_token_id)
        pick = (torch.rand(ids.shape, generator=g) < 0.15) & ~special
        labels = torch.where(pick, ids, torch.full_like(ids, -100))
        yield ids.masked_fill(pick, tok.mask_token_id), enc["attention_mask"], labels


def build_minilm_mlm(recipe: dict | None = None) -> tuple[MiniLMForMaskedLM, dict]:
    """Train the MLM head on frozen MiniLM: encode masked wiki lines once, then fit the head on the
    masked positions' hidden states. Returns (model, {"valid_top1": ..., "train_positions": ...}).

    About 1-2 minutes on one CPU thread. Taught in chapter 9 (Adapting large PLMs).
    """
    from lmcourse.data import load_corpus
    from lmcourse.models.pretrained import load
    from lmcourse.train import train
    r = {**MLM_RECIPE, **(recipe or {})}
    encoder, _ = load("minilm")
    tok = minilm_tokenizer_hf()
    model = MiniLMForMaskedLM(encoder.eval())
    torch.manual_seed(r["seed"])
    model.transform.reset_parameters()
    corpus = load_corpus("wiki")
    keep = lambda split: [ln for ln in corpus.lines(split) if len(ln.split()) > 8]  # noqa: E731
    train_lines, valid_lines = keep("train")[:r["lines"]], keep("valid")[:r["valid_lines"]]
    hs, ys = [], []
    with torch.no_grad():
        for ids, att, lab in _mlm_batches(tok, train_lines, r["max_length"], r["seed"]):
            h, _ = encoder(ids, None, att)
            hs.append(h[lab != -100]), ys.append(lab[lab != -100])
    H, Y = torch.cat(hs), torch.cat(ys)                                  # (N, C), (N,)
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(r["seed"])
    draws = (torch.randint(0, len(H), (r["batch"],), generator=g) for _ in range(r["steps"]))  # rows of H
    train(model, draws, lambda m, i: nn.functional.cross_entropy(m.head(H[i]), Y[i]),
          torch.optim.AdamW(params, lr=r["lr"]), r["steps"])
    model.eval()                                                         # train() left the encoder in train mode
    with torch.no_grad():
        hits = []
        for ids, att, lab in _mlm_batches(tok, valid_lines, r["max_length"], r["seed"] + 1):
            h, _ = encoder(ids, None, att)
            hits.append(model.head(h[lab != -100]).argmax(-1) == lab[lab != -100])
    hits = torch.cat(hits)
    return model.eval(), {"valid_top1": hits.float().mean().item(), "valid_positions": len(hits),
                          "train_positions": len(Y)}


def minilm_mlm(rebuild: bool = False):
    """(MiniLMForMaskedLM, BertTokenizerFast): MiniLM + its trained MLM head, cached and checksummed.

    The head is built once by ``build_minilm_mlm`` (1-2 minutes on a CPU) and saved as safetensors
    under the lmcourse cache dir with its sha256 and validation accuracy; a cache whose checksum
    fails is rebuilt, never loaded. ``model.build_info`` holds {"valid_top1", ...}.
    Taught in chapter 9 (Adapting large PLMs).
    """
    import hashlib
    import json

    from safetensors.torch import load_file, save_file

    from lmcourse.data.assets import cache_dir
    from lmcourse.models.pretrained import MINILM, load, sha256_file
    key = hashlib.sha256((json.dumps(MLM_RECIPE, sort_keys=True) + MINILM.files["model/model.safetensors"]).encode())
    path = cache_dir() / f"minilm-mlm-head-{key.hexdigest()[:16]}.safetensors"
    meta = path.with_suffix(".json")
    ok = False
    if path.is_file() and meta.is_file() and not rebuild:
        try:
            info = json.loads(meta.read_text())
            ok = sha256_file(path) == info["sha256"]
        except (ValueError, KeyError, OSError):
            ok = False
    if ok:
        encoder, _ = load("minilm")
        model = MiniLMForMaskedLM(encoder.eval())
        model.load_state_dict(load_file(str(path)), strict=False)
        model.eval()
    else:
        model, info = build_minilm_mlm()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")             # two processes may build at once
        save_file({k: v.contiguous() for k, v in model.head_state_dict().items()}, str(tmp))
        info["sha256"] = sha256_file(tmp)
        tmp.replace(path)
        meta.write_text(json.dumps(info, indent=1))
    model.build_info = {k: v for k, v in info.items() if k != "sha256"}
    return model, minilm_tokenizer_hf()


def load_scorer(name: str) -> Scorer:
    """A scorer for a model by name: the offline ones, or a Hugging Face hub name (needs internet).

    * ``"smollm2"``: causal, SmolLM2-135M-Instruct (real pretrained weights);
    * ``"minilm-mlm"``: masked, frozen MiniLM + an MLM head trained here (``minilm_mlm``; weak);
    * ``"random-t5"``: seq2seq, an UNTRAINED lmcourse T5 on MiniLM's vocabulary (no pretrained
      encoder-decoder is available offline: it shows the mechanics only, at chance level);
    * a hub name: ``AutoModelForSeq2SeqLM`` for encoder-decoders (t5, bart, ...), ``AutoModelForMaskedLM``
      for BERT-like models, ``AutoModelForCausalLM`` otherwise.

    Taught in chapter 9 (Adapting large PLMs).
    """
    if name == "smollm2":
        from lmcourse.models.pretrained import load
        return causal_scorer(*load("smollm2"))
    if name == "minilm-mlm":
        return masked_scorer(*minilm_mlm())
    if name == "random-t5":
        from lmcourse.models.t5 import T5, T5Config
        tok = minilm_tokenizer_hf()
        g = torch.random.fork_rng()
        with g:
            torch.manual_seed(0)
            model = T5(T5Config(vocab_size=tok.vocab_size, d_model=64, n_heads=4, n_layers=2, d_ff=256)).eval()
        return seq2seq_scorer(model, tok, mask_token=tok.mask_token, decoder_start_id=0)
    from lmcourse.errors import AssetError
    if "/" not in name and "-" not in name:
        raise AssetError(f"unknown model {name!r}: offline choices are 'smollm2', 'minilm-mlm', 'random-t5'; "
                         "hub names (e.g. 't5-base', 'bert-base-uncased') need internet")
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM,
                              AutoTokenizer)
    try:
        cfg = AutoConfig.from_pretrained(name)
        tok = AutoTokenizer.from_pretrained(name)
        if cfg.is_encoder_decoder:
            return seq2seq_scorer(AutoModelForSeq2SeqLM.from_pretrained(name).eval(), tok)
        if tok.mask_token is not None and not any("CausalLM" in a for a in (cfg.architectures or [])):
            return masked_scorer(AutoModelForMaskedLM.from_pretrained(name).eval(), tok)
        return causal_scorer(AutoModelForCausalLM.from_pretrained(name).eval(), tok)
    except (OSError, ValueError) as e:
        raise AssetError(f"could not load {name!r} from the Hugging Face hub (offline? misspelt?): {e}") from None


__all__ = ["CausalScorer", "LabelWordError", "MLM_RECIPE", "MiniLMForMaskedLM", "build_minilm_mlm", "minilm_mlm",
           "minilm_tokenizer_hf", "MaskedScorer", "Scorer", "Seq2SeqScorer", "TokenizerAdapter",
           "causal_scorer", "load_scorer", "masked_scorer", "seq2seq_scorer", "word_ids"]

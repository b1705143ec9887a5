"""Word2Vec: CBOW and skip-gram, with negative sampling or the full softmax.

Taught in chapter 3 (Word2Vec).

    vocab, stream = prepare(sentences, min_count=5)
    model, history = train_word2vec(vocab, stream, Word2VecConfig(mode="skipgram"))

The pieces, in the order of the notes:

* ``Word2Vec.loss``: CBOW predicts a word from the mean of its context vectors;
  skip-gram predicts each context word from the centre word. With
  ``loss="softmax"`` the prediction is a softmax over the whole vocabulary (fine
  for a small one); ``loss="neg"`` replaces it with negative sampling: one true
  pair against ``negatives`` words drawn from the unigram distribution to the
  power 0.75 (``noise_distribution``).
* ``discard_probability``: sub-sampling drops a frequent word w with probability
  ``1 - sqrt(t / f(w))`` (Mikolov et al. 2013, eq. 5).
* soft sliding window: nearer words weigh more, either as word2vec does it
  (each centre draws its window size uniformly from 1..window, so offset d is
  used with probability (window + 1 - d) / window) or with those weights written
  out (``window_weights="linear"``).
* ``PairBatches`` builds each epoch's batches with NumPy, all at once: the loop in
  ``train_word2vec`` is one ``lmcourse.train.train`` call per epoch, on CPU or GPU.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmcourse.embeddings.cooccurrence import flatten
from lmcourse.embeddings.evaluate import WordVectors
from lmcourse.errors import LMCourseError
from lmcourse.train import History, train
from lmcourse.text.vocab import Vocabulary

MODES = ("skipgram", "cbow")
LOSSES = ("neg", "softmax")
WINDOW_WEIGHTS = ("shrink", "linear", "uniform")


@dataclass(frozen=True)
class Word2VecConfig:
    """Settings, named as in word2vec/gensim. Taught in chapter 3."""

    mode: str = "skipgram"  # "skipgram" or "cbow"
    loss: str = "neg"  # "neg" (negative sampling) or "softmax" (full softmax; small vocabularies)
    dim: int = 100
    window: int = 5  # words on each side of the centre
    window_weights: str = "shrink"  # "shrink" (word2vec's random window), "linear" ((window+1-d)/window), "uniform"
    negatives: int = 5
    power: float = 0.75  # noise distribution: unigram ** power
    sample: float = 1e-3  # sub-sampling threshold t; 0 turns sub-sampling off
    sample_formula: str = "paper"  # "paper": 1 - sqrt(t/f) (the notes); "word2vec": the C code's and gensim's
    epochs: int = 1
    lr: float = 0.025  # per pair (skip-gram) or per centre word (CBOW), as in word2vec
    min_lr: float = 1e-4
    # Pairs (skip-gram) or centre words (CBOW) per step. A batch sums the updates of a
    # frequent noise word drawn many times; keep batch_size * negatives near 20k or lower.
    batch_size: int = 4096
    seed: int = 0

    def check(self, vocab_size: int | None = None) -> None:
        if self.mode not in MODES:
            raise LMCourseError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.loss not in LOSSES:
            raise LMCourseError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.window_weights not in WINDOW_WEIGHTS:
            raise LMCourseError(f"window_weights must be one of {WINDOW_WEIGHTS}, not {self.window_weights!r}")
        if not isinstance(self.window, int) or self.window < 1:
            raise LMCourseError(f"window must be a whole number >= 1, not {self.window!r}")
        if self.dim < 1 or self.epochs < 1 or self.batch_size < 1:
            raise LMCourseError("dim, epochs and batch_size must all be at least 1")
        if self.loss == "neg" and self.negatives < 1:
            raise LMCourseError(f"negative sampling needs negatives >= 1, not {self.negatives}")
        if self.sample_formula not in ("paper", "word2vec"):
            raise LMCourseError(f"sample_formula must be 'paper' or 'word2vec', not {self.sample_formula!r}")
        if self.sample < 0:
            raise LMCourseError(f"sample must be >= 0, not {self.sample}")
        if vocab_size is not None and self.loss == "neg" and vocab_size <= self.negatives:
            raise LMCourseError(f"the vocabulary has {vocab_size} words, not more than negatives={self.negatives}: "
                                f"use fewer negatives, a bigger corpus, or loss='softmax'")


# --- the corpus as one array of ids ------------------------------------------------------

@dataclass(frozen=True)
class Stream:
    """The training corpus as ids (words below ``min_count`` removed, as word2vec does)."""

    ids: np.ndarray  # (N,) word ids
    sentence: np.ndarray  # (N,) sentence index of each token

    def __len__(self) -> int:
        return len(self.ids)


def prepare(sentences: Sequence[Sequence[str]], min_count: int = 5) -> tuple[Vocabulary, Stream]:
    """Vocabulary of words seen ``min_count`` times, and the corpus as a ``Stream`` of ids."""
    if not sentences or not any(len(s) for s in sentences):
        raise LMCourseError("the corpus is empty: give at least one sentence with words")
    vocab = Vocabulary(sentences, min_count=min_count)
    encoded = [vocab.encode(s) for s in sentences]
    ids, sent = flatten(encoded)
    keep = ids >= len(Vocabulary.specials)  # drop <unk>: rare words are skipped, not replaced
    if not keep.any():
        raise LMCourseError(f"no word occurs min_count={min_count} times: lower min_count or use more text")
    return vocab, Stream(ids[keep], sent[keep])


def word_counts(vocab: Vocabulary) -> np.ndarray:
    """Count of each vocabulary id (0 for the special tokens)."""
    return np.array([vocab.counts.get(w, 0) if i >= len(Vocabulary.specials) else 0
                     for i, w in enumerate(vocab.itos)], dtype=np.float64)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Negative-sampling distribution ``P_n(w) = c(w)**power / sum_v c(v)**power``. Taught in chapter 3."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = counts**power * (counts > 0)
    if weights.sum() == 0:
        raise LMCourseError("all counts are zero: no distribution to sample negatives from")
    return weights / weights.sum()


def noise_table(counts: np.ndarray, power: float = 0.75, size: int = 1 << 22) -> torch.Tensor:
    """word2vec's unigram table: word ids repeated in proportion to ``noise_distribution``.

    A uniform draw from the table is a draw from the noise distribution (to within
    1/size), and costs one random integer. Taught in chapter 3.
    """
    p = noise_distribution(counts, power)
    ends = np.round(np.cumsum(p) * size).astype(np.int64)  # cumulative slots: no word loses a share
    reps = np.diff(np.concatenate([[0], ends]))
    return torch.from_numpy(np.repeat(np.arange(len(p)), reps))


def discard_probability(counts: np.ndarray, t: float = 1e-3, formula: str = "paper") -> np.ndarray:
    """Sub-sampling: drop each occurrence of w with probability ``max(0, 1 - sqrt(t / f(w)))``.

    ``f(w)`` is w's relative frequency. Taught in chapter 3 (the notes' formula,
    Mikolov et al. 2013 eq. 5; word2vec's C code and gensim use a slightly
    different keep probability, ``(sqrt(f/t) + 1) t / f``: ``formula="word2vec"``).
    """
    if formula not in ("paper", "word2vec"):
        raise LMCourseError(f"formula must be 'paper' or 'word2vec', not {formula!r}")
    counts = np.asarray(counts, dtype=np.float64)
    if t <= 0:
        return np.zeros_like(counts)
    f = counts / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 1.0 - np.sqrt(t / f) if formula == "paper" else 1.0 - (np.sqrt(f / t) + 1) * t / f
    return np.clip(np.nan_to_num(p, nan=0.0, neginf=0.0), 0.0, 1.0)


def offset_weights(window: int, scheme: str = "shrink") -> np.ndarray:
    """Expected weight of a context word at distance d = 1..window (the soft sliding window)."""
    d = np.arange(1, window + 1)
    if scheme == "uniform":
        return np.ones(window)
    return (window + 1 - d) / window  # "shrink" in expectation; "linear" exactly


# --- batches ------------------------------------------------------------------------

class PairBatches:
    """One epoch of training examples, built at once with NumPy and cut into batches.

    Skip-gram: each batch is ``(centre (B,), context (B,), weight (B,), negatives (B, K))``.
    CBOW: ``(centre (B,), context (B, 2W), weight (B, 2W), negatives (B, K))``; empty
    context slots have weight 0. Negatives are ``None`` with the full softmax.
    """

    def __init__(self, stream: Stream, counts: np.ndarray, cfg: Word2VecConfig, epoch: int = 0,
                 device: torch.device | str = "cpu"):
        rng = np.random.default_rng([cfg.seed, epoch])
        self.cfg, self.device = cfg, torch.device(device)
        keep = rng.random(len(stream)) >= discard_probability(counts, cfg.sample, cfg.sample_formula)[stream.ids]
        ids, sent = stream.ids[keep], stream.sentence[keep]
        n, W = len(ids), cfg.window
        self.words_kept = n
        if cfg.window_weights == "shrink":
            reach = rng.integers(1, W + 1, size=n)  # each centre's window size b in 1..W
        else:
            reach = np.full(n, W)
        scale = offset_weights(W, "linear" if cfg.window_weights == "linear" else "uniform")
        offsets = [d for d in range(-W, W + 1) if d != 0]
        pos = np.arange(n)
        ctx = np.zeros((n, 2 * W), dtype=np.int64)
        wgt = np.zeros((n, 2 * W), dtype=np.float32)
        for k, d in enumerate(offsets):
            j = np.clip(pos + d, 0, max(n - 1, 0))
            ok = (pos + d >= 0) & (pos + d < n) & (sent[j] == sent) & (abs(d) <= reach)
            ctx[:, k] = np.where(ok, ids[j], 0)
            wgt[:, k] = ok * scale[abs(d) - 1]
        if cfg.mode == "skipgram":
            c, k = np.nonzero(wgt)  # one example per (centre, context) pair
            self.centre, self.context, self.weight = ids[c], ctx[c, k], wgt[c, k]
        else:
            has = wgt.sum(axis=1) > 0
            self.centre, self.context, self.weight = ids[has], ctx[has], wgt[has]
        order = rng.permutation(len(self.centre))
        self.centre, self.context, self.weight = self.centre[order], self.context[order], self.weight[order]
        self.table = noise_table(counts, cfg.power).to(self.device)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1000 + epoch)

    def __len__(self) -> int:
        return len(self.centre) // self.cfg.batch_size  # full batches only: a fixed step size

    def __iter__(self):
        B, K = self.cfg.batch_size, self.cfg.negatives
        to = lambda a: torch.from_numpy(a).to(self.device, non_blocking=True)
        for i in range(len(self)):
            s = slice(i * B, (i + 1) * B)
            neg = None
            if self.cfg.loss == "neg":
                pick = torch.randint(len(self.table), (B * K,), generator=self.gen, device=self.device)
                neg = self.table[pick].view(B, K)  # (B, K) draws from the noise distribution
            yield to(self.centre[s]), to(self.context[s]), to(self.weight[s]), neg


# --- the model ------------------------------------------------------------------------

class Word2Vec(nn.Module):
    """Two embedding tables: ``inp`` (the word vectors we keep) and ``out`` (output / context vectors).

    Initialised as word2vec does: ``inp`` uniform in ±0.5/dim, ``out`` zeros.
    Taught in chapter 3.
    """

    def __init__(self, vocab_size: int, cfg: Word2VecConfig = Word2VecConfig()):
        super().__init__()
        cfg.check(vocab_size)
        self.cfg = cfg
        self.inp = nn.Embedding(vocab_size, cfg.dim, sparse=True)
        self.out = nn.Embedding(vocab_size, cfg.dim, sparse=cfg.loss == "neg")
        with torch.no_grad():
            self.inp.weight.uniform_(-0.5 / cfg.dim, 0.5 / cfg.dim)
            self.out.weight.zero_()

    def hidden(self, centre: torch.Tensor, context: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The input vector h and the word(s) to predict from it.

        Skip-gram: h = inp[centre] (B, d), target = context (B,).
        CBOW: h = weighted mean of inp[context] (B, d), target = centre (B,).
        """
        if self.cfg.mode == "skipgram":
            return self.inp(centre), context
        vecs = self.inp(context)  # (B, 2W, d)
        total = (weight.unsqueeze(-1) * vecs).sum(1)  # (B, d)
        mean = total / weight.sum(1, keepdim=True)
        # Forward: the mean. Backward: every context word gets the whole gradient of h
        # (times its weight), not 1/|C| of it, as in word2vec's and gensim's CBOW.
        h = mean.detach() + total - total.detach()
        return h, centre

    def loss(self, batch) -> torch.Tensor:
        """Mean loss per example (per pair for skip-gram, per centre word for CBOW)."""
        centre, context, weight, negatives = batch
        h, target = self.hidden(centre, context, weight)  # (B, d), (B,)
        w = weight if self.cfg.mode == "skipgram" else torch.ones_like(h[:, 0])
        if self.cfg.loss == "softmax":
            logits = h @ self.out.weight.T  # (B, V): every word of the vocabulary
            return (w * F.cross_entropy(logits, target, reduction="none")).mean()
        u = self.out(torch.cat([target.unsqueeze(1), negatives], 1))  # (B, 1 + K, d): one look-up, one sparse grad
        return (w * neg_sampling_loss(h, u[:, 0], u[:, 1:])).mean()

    def vectors(self, vocab: Vocabulary) -> WordVectors:
        """The trained input vectors as ``WordVectors`` (cosine look-ups, evaluation)."""
        return WordVectors(vocab.itos, self.inp.weight.detach().float().cpu().numpy())


def neg_sampling_loss(h: torch.Tensor, u_pos: torch.Tensor, u_neg: torch.Tensor) -> torch.Tensor:
    """``-log s(u_o . h) - sum_k log s(-u_k . h)`` per example. h, u_pos: (B, d); u_neg: (B, K, d)."""
    pos = (u_pos * h).sum(-1)  # (B,)
    neg = (u_neg * h.unsqueeze(1)).sum(-1)  # (B, K)
    return -F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1)


def neg_sampling_grads(h: torch.Tensor, u_pos: torch.Tensor, u_neg: torch.Tensor):
    """The gradients of ``neg_sampling_loss`` (summed over the batch), by hand.

    With s the sigmoid: dL/dh = (s(u_o.h) - 1) u_o + sum_k s(u_k.h) u_k,
    dL/du_o = (s(u_o.h) - 1) h, dL/du_k = s(u_k.h) h. Taught in chapter 3.
    """
    g_pos = torch.sigmoid((u_pos * h).sum(-1)) - 1  # (B,)
    g_neg = torch.sigmoid(torch.bmm(u_neg, h.unsqueeze(-1)).squeeze(-1))  # (B, K)
    d_h = g_pos.unsqueeze(-1) * u_pos + (g_neg.unsqueeze(-1) * u_neg).sum(1)  # (B, d)
    d_pos = g_pos.unsqueeze(-1) * h  # (B, d)
    d_neg = g_neg.unsqueeze(-1) * h.unsqueeze(1)  # (B, K, d)
    return d_h, d_pos, d_neg


# --- training -------------------------------------------------------------------------

def train_word2vec(vocab: Vocabulary, stream: Stream, cfg: Word2VecConfig = Word2VecConfig(),
                   device: torch.device | str = "cpu", eval_fn=None, evals_per_epoch: int = 0):
    """Train with ``lmcourse.train.train``, one call per epoch; return ``(model, history)``.

    Plain SGD on sparse gradients. The loss is a mean over the batch, so the step
    size is ``cfg.lr * batch_size``: each pair moves the vectors as much as one
    word2vec update, and the rate decays linearly to ``min_lr`` over training.
    ``history`` also logs ``words`` (corpus words processed) after each epoch.
    """
    if len(stream) == 0:
        raise LMCourseError("the corpus is empty: nothing to train on")
    cfg.check(len(vocab))
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    counts = word_counts(vocab)
    model = Word2Vec(len(vocab), cfg).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr * cfg.batch_size)
    history, total = History(), None
    for epoch in range(cfg.epochs):
        batches = PairBatches(stream, counts, cfg, epoch, device)
        if len(batches) == 0:
            raise LMCourseError(f"the corpus gives fewer than batch_size={cfg.batch_size} examples: "
                                f"lower batch_size or use more text")
        if total is None:  # linear decay over the (estimated) number of steps of all epochs
            total = len(batches) * cfg.epochs
            floor = cfg.min_lr / cfg.lr
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(floor, 1 - s / total))
        every = max(1, len(batches) // evals_per_epoch) if evals_per_epoch else 0
        train(model, batches, lambda m, b: m.loss(b), opt, steps=len(batches), scheduler=sched,
              eval_fn=eval_fn, eval_every=every, history=history, log_every=max(1, len(batches) // 50))
        history.log(history.steps("loss")[-1], words=len(stream) * (epoch + 1), epoch=epoch + 1)
    return model, history


def gensim_word2vec(sentences: Sequence[Sequence[str]], cfg: Word2VecConfig, min_count: int = 5, workers: int = 1):
    """gensim's ``Word2Vec`` with the same settings (the reference in chapter 3 and the benchmark)."""
    from gensim.models import Word2Vec as GensimWord2Vec

    if cfg.loss != "neg" or cfg.window_weights != "shrink":
        raise LMCourseError("gensim supports negative sampling with word2vec's shrinking window only here")
    return GensimWord2Vec(sentences, vector_size=cfg.dim, window=cfg.window, min_count=min_count,
                          sg=int(cfg.mode == "skipgram"), hs=0, negative=cfg.negatives, ns_exponent=cfg.power,
                          sample=cfg.sample, epochs=cfg.epochs, alpha=cfg.lr, min_alpha=cfg.min_lr,
                          seed=cfg.seed, workers=workers, cbow_mean=1)

"""N-gram language models: MLE, add-k (Laplace, Lidstone) and interpolated Kneser-Ney.

Taught in chapter 2 (N-gram language models).

The Markov assumption of the notes:

    P(w_1 ... w_n) = prod_i P(w_i | w_{i-k} ... w_{i-1})

An ``order``-N model conditions each word on at most N - 1 previous tokens; at the
start of a sentence the context is ``<s>`` and the words so far (see ``counts``).
Every model gives a probability distribution over the whole vocabulary for any
context (``distribution``): the tests assert that it sums to 1.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lmcourse.errors import LMCourseError
from lmcourse.lm.counts import NGramCounts, build_vocab_and_encode, pad_and_encode, target_positions
from lmcourse.text.vocab import Vocabulary


class ZeroProbabilityError(LMCourseError, ValueError):
    """An n-gram with probability 0: its perplexity is infinite."""


class NGramLM:
    """Base class: counting, scoring, perplexity, sampling. Subclasses define ``_prob``."""

    def __init__(self, order: int):
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            raise ValueError(f"the n-gram order must be a whole number >= 1, not {order!r}")
        self.order = order
        self.vocab: Vocabulary | None = None
        self.counts: NGramCounts | None = None

    def fit(self, sentences: Sequence[Sequence[str]], vocab: Vocabulary | None = None) -> NGramLM:
        """Count n-grams of tokenised sentences (a list of lists of words)."""
        if isinstance(sentences, str) or (len(sentences) and isinstance(sentences[0], str)):
            raise TypeError("fit() takes tokenised sentences, a list of lists of words (see lmcourse.text.words)")
        if not any(len(s) for s in sentences):
            raise ValueError("cannot fit an n-gram model on empty text: no sentence has a word")
        if vocab is None:
            vocab, flat, starts = build_vocab_and_encode(sentences)
            encoded = (flat, starts)
        else:
            encoded = None
        self.vocab = vocab
        self.counts = NGramCounts(sentences, self.order, vocab, encoded=encoded)
        self._prepare()
        return self

    def _prepare(self) -> None:
        """Precompute per-level tables after counting."""

    def _check_fitted(self) -> None:
        if self.counts is None:
            raise LMCourseError(f"{type(self).__name__} is not fitted: call .fit(sentences) first")

    # -- probabilities ----------------------------------------------------------------

    def _prob(self, k: int, ctx: np.ndarray, words: np.ndarray) -> np.ndarray:
        """P(word | ctx) at level k (ctx has k - 1 tokens), for a batch. Shapes (B, k-1), (B,) -> (B,)."""
        raise NotImplementedError

    def _context(self, context: Sequence[str]) -> np.ndarray:
        """The last N - 1 tokens of a context, cut after the last <s>; as ids."""
        ctx = list(context)[-(self.order - 1):] if self.order > 1 else []
        if "<s>" in ctx:
            ctx = ctx[len(ctx) - 1 - ctx[::-1].index("<s>"):]
        return self.vocab.encode(ctx)

    def prob(self, word: str, context: Sequence[str] = ()) -> float:
        """P(word | context). Contexts are tuples of words; start a sentence with ``("<s>",)``."""
        self._check_fitted()
        ctx = self._context(context)
        k = len(ctx) + 1
        w = self.vocab.encode([word])
        return float(self._prob(k, ctx[None, :], w)[0])

    def distribution(self, context: Sequence[str] = ()) -> np.ndarray:
        """P(w | context) for every word w of the vocabulary, shape (V,)."""
        self._check_fitted()
        ctx = self._context(context)
        V = len(self.vocab)
        return self._prob(len(ctx) + 1, np.repeat(ctx[None, :], V, axis=0), np.arange(V))

    def token_logprobs(self, sentences: Sequence[Sequence[str]], eos: bool = True) -> np.ndarray:
        """Natural-log probability of every predicted token, in order (a flat array)."""
        self._check_fitted()
        flat, starts = pad_and_encode(sentences, self.vocab)
        idx, pos = target_positions(flat, starts, eos=eos)
        out = np.empty(len(idx))
        for L in range(self.order):  # context length L: full (N-1) or cut at the sentence start
            sel = np.nonzero(pos >= L if L == self.order - 1 else pos == L)[0]
            if len(sel) == 0:
                continue
            at = idx[sel]
            ctx = flat[at[:, None] + np.arange(-L, 0)] if L else np.zeros((len(at), 0), dtype=np.int64)
            out[sel] = self._prob(L + 1, ctx, flat[at])
        if (out <= 0).any():
            i = int(np.argmax(out <= 0))
            at, L = idx[i], min(int(pos[i]), self.order - 1)
            sent_no = int(np.searchsorted(starts, at, side="right")) - 1
            padded = ["<s>", *sentences[sent_no], "</s>"]
            p = int(pos[i])
            word, ctx = padded[p], " ".join(padded[p - L:p]) or "(no context)"
            unk = "" if word in self.vocab else f" ({word!r} is not in the vocabulary: it is read as <unk>)"
            raise ZeroProbabilityError(
                f"{type(self).__name__} gives probability 0 to {word!r} after {ctx!r}{unk}, so the perplexity "
                f"is infinite: an unseen n-gram needs a smoothed model (AddK, KneserNey).")
        return np.log(out)

    def sentence_logprob(self, sentence: Sequence[str], eos: bool = True, base: float = math.e) -> float:
        """log P(sentence) = sum of the log probabilities of its words (and of </s> when ``eos``)."""
        return float(self.token_logprobs([sentence], eos=eos).sum() / math.log(base))

    def perplexity(self, sentences: Sequence[Sequence[str]], eos: bool = False) -> float:
        """The notes' PPL over a text: ``PP = (prod_i 1 / P(w_i | w_0 ... w_{i-1}))^(1/N)``.

        ``w_0`` is the start symbol ``<s>``; N counts the predicted words. With ``eos=True``
        the end symbol ``</s>`` is predicted too (the convention of KenLM and SRILM).
        """
        if not any(len(s) for s in sentences):
            raise ValueError("perplexity of empty text is undefined: no word to predict")
        lp = self.token_logprobs(sentences, eos=eos)
        return float(np.exp(-lp.mean()))

    def generate(self, rng: np.random.Generator, max_words: int = 30, context: Sequence[str] = ()) -> list[str]:
        """Sample a sentence word by word until ``</s>`` (or ``max_words``)."""
        self._check_fitted()
        history, out = ["<s>", *context], []
        for _ in range(max_words):
            p = self.distribution(history)
            w = self.vocab.itos[int(rng.choice(len(p), p=p / p.sum()))]
            if w == "</s>":
                break
            out.append(w)
            history.append(w)
        return out

    def __repr__(self) -> str:
        fitted = f", V={len(self.vocab)}, tokens={self.counts.n_tokens}" if self.counts else ""
        return f"{type(self).__name__}(order={self.order}{fitted})"


class MLE(NGramLM):
    """Maximum likelihood: ``P(w | ctx) = c(ctx w) / c(ctx)``; zero for anything unseen."""

    def _prepare(self) -> None:
        c = self.counts
        self._ctx_total = {k: np.bincount(c.keys[k] // c.V, weights=c.counts[k], minlength=c.n_contexts(k))
                           for k in range(1, self.order + 1)}

    def _prob(self, k, ctx, words):
        c = self.counts
        ci = c.context_index(k, ctx)
        total = np.where(ci >= 0, self._ctx_total[k][np.maximum(ci, 0)], 0.0)
        num = c.count(k, np.column_stack([ctx, words]))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, num / np.where(total > 0, total, 1), 0.0)


class AddK(MLE):
    """Add-k smoothing: ``P(w | ctx) = (c(ctx w) + k) / (c(ctx) + k V)``.

    ``k = 1`` is Laplace smoothing; any other ``k > 0`` is Lidstone smoothing.
    """

    def __init__(self, order: int, k: float = 1.0):
        super().__init__(order)
        if not k > 0:
            raise ValueError(f"add-k smoothing needs k > 0, not {k}")
        self.k = float(k)

    def _prob(self, k, ctx, words):
        c = self.counts
        ci = c.context_index(k, ctx)
        total = np.where(ci >= 0, self._ctx_total[k][np.maximum(ci, 0)], 0.0)
        num = c.count(k, np.column_stack([ctx, words]))
        return (num + self.k) / (total + self.k * c.V)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", k={self.k:g})"


def Laplace(order: int) -> AddK:
    """Add-one smoothing."""
    return AddK(order, k=1.0)


class KneserNey(NGramLM):
    """Interpolated Kneser-Ney smoothing (Chen and Goodman 1999; Jurafsky and Martin ch. 3).

    At the highest level (and for contexts that start with ``<s>``, which cannot be
    extended to the left) the counts are raw counts; at lower levels a k-gram's count is
    its continuation count N1+(. g), the number of different words seen before it.

        P_k(w | ctx) = max(a(ctx w) - d, 0) / a(ctx .)  +  d N1+(ctx .) / a(ctx .) * P_{k-1}(w | ctx[1:])
        P_0(w)       = 1 / V

    A context never seen hands all its mass to the lower level. ``interpolation_terms``
    exposes the two terms (alpha, gamma) of each level.
    """

    def __init__(self, order: int, discount: float = 0.75):
        super().__init__(order)
        if not 0 < discount < 1:
            raise ValueError(f"the Kneser-Ney discount must be between 0 and 1, not {discount}")
        self.discount = float(discount)

    def _prepare(self) -> None:
        c, n, bos = self.counts, self.order, self.vocab.bos_id
        self._adj: dict[int, np.ndarray] = {}
        for k in range(1, n + 1):
            if k == n:
                adj = c.counts[k].astype(np.float64)
            else:
                longer = c.grams[k + 1]  # every distinct (k+1)-gram adds 1 to its suffix's count
                cont = np.bincount(c.index(k, longer[:, 1:]), minlength=len(c.keys[k])).astype(np.float64)
                adj = np.where(c.grams[k][:, 0] == bos, c.counts[k], cont)
            self._adj[k] = adj
        self._ctx_total = {k: np.bincount(c.keys[k] // c.V, weights=self._adj[k], minlength=c.n_contexts(k))
                           for k in range(1, n + 1)}
        self._ctx_types = {k: np.bincount(c.keys[k] // c.V, weights=(self._adj[k] > 0).astype(np.float64), minlength=c.n_contexts(k))
                           for k in range(1, n + 1)}

    def interpolation_terms(self, k: int, ctx: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, gamma) of level k: ``P_k = alpha + gamma * P_{k-1}``."""
        c, d = self.counts, self.discount
        ci = c.context_index(k, ctx)
        seen = ci >= 0
        total = np.where(seen, self._ctx_total[k][np.maximum(ci, 0)], 0.0)
        types = np.where(seen, self._ctx_types[k][np.maximum(ci, 0)], 0.0)
        row = c.index(k, np.column_stack([ctx, words]))
        a = np.where(row >= 0, self._adj[k][np.maximum(row, 0)], 0.0)
        has = total > 0
        safe = np.where(has, total, 1.0)
        alpha = np.where(has, np.maximum(a - d, 0.0) / safe, 0.0)
        gamma = np.where(has, d * types / safe, 1.0)
        return alpha, gamma

    def _prob(self, k, ctx, words):
        p = np.full(len(words), 1.0 / self.counts.V)  # level 0: uniform
        for level in range(1, k + 1):
            sub = ctx[:, ctx.shape[1] - (level - 1):] if level > 1 else ctx[:, :0]
            alpha, gamma = self.interpolation_terms(level, sub, words)
            p = alpha + gamma * p
        return p

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", discount={self.discount:g})"

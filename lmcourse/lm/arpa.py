"""Export a Kneser-Ney model to the ARPA back-off format that KenLM and SRILM read.

Taught in chapter 2 (N-gram language models).

An ARPA file lists, for every seen k-gram, ``log10 P(w | ctx)`` and a back-off weight
``log10 b(ctx w)``; for an unseen ``ctx w`` a reader computes
``P(w | ctx) = b(ctx) * P(w | ctx[1:])``. Interpolated Kneser-Ney has exactly this
form: for an unseen n-gram alpha is 0, so ``P_k = gamma(ctx) * P_{k-1}`` and the
back-off weight of a context is its gamma. Add-k smoothing has no such form (its
mass for unseen words does not follow the lower order), so it cannot be exported.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lmcourse.lm.ngram import KneserNey, NGramLM


def _log10(x: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(x, 1e-99))


def to_arpa(model: NGramLM, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``model`` as an ARPA file; refuses to replace an existing file unless ``overwrite``."""
    if not isinstance(model, KneserNey):
        raise TypeError(f"ARPA stores back-off models; {type(model).__name__} is not one (use KneserNey)")
    model._check_fitted()
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    c, n, V, itos = model.counts, model.order, model.counts.V, model.vocab.itos
    sections = []
    for k in range(1, n + 1):
        grams = np.arange(V)[:, None] if k == 1 else c.grams[k]
        logp = _log10(model._prob(k, grams[:, :-1], grams[:, -1]))
        if k < n:  # back-off weight of each k-gram as a context of level k + 1
            ci = c.context_index(k + 1, grams)
            seen = ci >= 0
            total = np.where(seen, model._ctx_total[k + 1][np.maximum(ci, 0)], 0.0)
            types = np.where(seen, model._ctx_types[k + 1][np.maximum(ci, 0)], 0.0)
            backoff = np.where(total > 0, model.discount * types / np.where(total > 0, total, 1.0), 1.0)
            logb = _log10(backoff)
        else:
            logb = None
        lines = []
        for i, g in enumerate(grams):
            words = " ".join(itos[t] for t in g)
            line = f"{logp[i]:.7f}\t{words}"
            if logb is not None and logb[i] != 0.0:
                line += f"\t{logb[i]:.7f}"
            lines.append(line)
        sections.append(lines)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for k, lines in enumerate(sections, start=1):
            f.write(f"ngram {k}={len(lines)}\n")
        for k, lines in enumerate(sections, start=1):
            f.write(f"\n\\{k}-grams:\n")
            f.write("\n".join(lines) + "\n")
        f.write("\n\\end\\\n")
    assert math.isclose(sum(10 ** float(l.split("\t")[0]) for l in sections[0]), 1.0, rel_tol=1e-4), \
        "the unigram distribution of an ARPA file sums to 1"
    return path

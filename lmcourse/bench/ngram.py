"""``lmcourse bench ngram``: n-gram models against nltk.lm (fit + perplexity) and KenLM (scoring).

Taught in chapter 2 (N-gram language models); collected in the Performance appendix.

Same corpus, same vocabulary, same n-grams on both sides, in one run:

* fit + perplexity of trigram Laplace and Kneser-Ney models, lmcourse vs ``nltk.lm``
  (target: lmcourse at least 100x faster), with both perplexities printed;
* scoring throughput (n-grams per second) of lmcourse vs KenLM querying the ARPA file
  lmcourse exported: KenLM is C++, the practical limit, so the ratio is reported
  without a target.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from lmcourse.bench import Row
from lmcourse.bench.timing import best_time
from lmcourse.data import load_corpus
from lmcourse.lm import AddK, KneserNey, to_arpa


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C-level writes to file descriptor 2 (KenLM's loading messages) for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _nltk_side(cls, train, test, n, **kw) -> tuple[float, float]:
    from nltk.lm import Laplace as NLTKLaplace  # noqa: F401 - imported for the error message below

    def everygrams(sent):
        padded = ["<s>", *sent, "</s>"]
        return [tuple(padded[j - k + 1:j + 1]) for j in range(1, len(padded)) for k in range(1, n + 1) if j >= k - 1]

    def scored(sent):
        padded = ["<s>", *sent, "</s>"]
        return [tuple(padded[max(0, j - n + 1):j + 1]) for j in range(1, len(padded))]

    t = time.perf_counter()
    model = cls(order=n, **kw)
    model.fit([everygrams(s) for s in train], vocabulary_text=[w for s in train for w in ["<s>", *s, "</s>"]])
    ngrams = [g for s in test for g in scored(s) if len(g) == n or cls.__name__ != "KneserNeyInterpolated"]
    ppl = model.perplexity(ngrams)
    return time.perf_counter() - t, ppl


def run(profile: str = "smoke") -> list[Row]:
    try:
        import nltk.lm as nltk_lm
    except ImportError:
        raise ImportError("the n-gram benchmark compares with nltk: pip install nltk (the 'test' extra)") from None
    corpus = load_corpus("shakespeare")
    smoke = profile == "smoke"
    train = corpus.sentences("train", max_tokens=20_000 if smoke else 200_000)
    test_laplace = corpus.sentences("test", max_tokens=3_000 if smoke else 20_000)
    test_kn = corpus.sentences("test", max_tokens=300 if smoke else 2_000)  # nltk's KN scores ~30 ms a trigram
    n = 3
    rows = []
    for label, ours_factory, nltk_cls, kw, test in [
        ("trigram Laplace fit+ppl", lambda: AddK(n, 1.0), nltk_lm.Laplace, {}, test_laplace),
        ("trigram Kneser-Ney fit+ppl", lambda: KneserNey(n, 0.75), nltk_lm.KneserNeyInterpolated,
         {"discount": 0.75}, test_kn),
    ]:
        t_ref, ppl_ref = _nltk_side(nltk_cls, train, test, n, **kw)
        t_ours, ppl_ours = best_time(lambda: ours_factory().fit(train).perplexity(test, eos=True))
        rows.append(Row("ngram", label, t_ours, t_ref, "s", t_ref / t_ours, ">= 100x faster",
                        t_ref / t_ours >= 100, f"perplexity lmcourse {ppl_ours:.4g}, nltk {ppl_ref:.4g}"))

    try:
        import kenlm
    except ImportError:
        return rows
    big_train = corpus.sentences("train", max_tokens=200_000 if smoke else None)
    big_test = corpus.sentences("test")
    model = KneserNey(n).fit(big_train)
    with tempfile.TemporaryDirectory() as tmp:
        with _quiet_stderr():  # KenLM prints a progress bar while it reads an ARPA file
            ref = kenlm.Model(str(to_arpa(model, Path(tmp) / "bench.arpa")))
    lines = [" ".join(s) for s in big_test]
    n_grams = sum(len(s) + 1 for s in big_test)
    t_ref, _ = best_time(lambda: sum(ref.score(s, bos=True, eos=True) for s in lines))
    t_ours, _ = best_time(lambda: model.token_logprobs(big_test, eos=True))
    rows.append(Row("ngram", "trigram KN scoring throughput", n_grams / t_ours, n_grams / t_ref, "n-grams/s",
                    t_ref / t_ours, "(KenLM, C++: the limit)", None, f"{n_grams} n-grams"))
    return rows

"""The text the word-vector chapters train on: every shipped corpus, words only.

Taught in chapter 1 (Word representations) and chapter 3 (Word2Vec).
"""
from __future__ import annotations

from collections.abc import Sequence

from lmcourse.errors import LMCourseError

ALL_CORPORA = ("shakespeare", "wiki", "lee")


def is_word(token: str) -> bool:
    """Letters, digits and inner apostrophes: punctuation marks are not words here."""
    return token[0].isalnum()


def word_sentences(names: Sequence[str] = ALL_CORPORA, max_tokens: int | None = None) -> list[list[str]]:
    """Lower-cased sentences of words (no punctuation) from the named corpora, in order.

    With ``max_tokens`` each corpus contributes the same share of the budget, so a
    smoke-sized run still sees news, encyclopedia and drama.
    """
    from lmcourse.data import load_corpus

    if not names:
        raise LMCourseError("give at least one corpus name")
    share = None if max_tokens is None else max_tokens // len(names)
    out = []
    for name in names:
        total = 0
        for sent in load_corpus(name).sentences("all"):
            sent = [t for t in sent if is_word(t)]
            if not sent:
                continue
            if share is not None and total + len(sent) > share:
                break
            out.append(sent)
            total += len(sent)
    return out

"""Word and sentence tokenizers: simple, deterministic, Unicode-aware.

Taught in chapter 2 (N-gram language models), where a word is a run of letters or
digits (with inner apostrophes: "o'er", "don't") or a single punctuation mark.
"""
from __future__ import annotations

import re

_ELISION = r"['’](?:tis|twas|twere|twill|twould|twixt|tween|gainst|em|scape)\b"  # 'tis, 'gainst
_WORD = re.compile(_ELISION + r"|\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE | re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def words(text: str, lower: bool = True) -> list[str]:
    """Split text into words and punctuation marks: ``words("Who's there?") == ["who's", "there", "?"]``.

    A leading apostrophe stays on the common elisions of early modern English ('tis, 'gainst).
    """
    if not isinstance(text, str):
        raise TypeError(f"words() takes a string, not {type(text).__name__}")
    return _WORD.findall(text.lower() if lower else text)


def sentences(paragraph: str) -> list[str]:
    """Split a paragraph after ., ! or ? followed by a capital letter or digit."""
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]

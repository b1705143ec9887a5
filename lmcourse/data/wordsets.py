"""Word-vector evaluation sets: WordSim353, SimLex-999 and the Google analogy questions.

Taught in chapter 1 (Word representations) and chapter 3 (Word2Vec).

The files come from the ``gensim`` wheel's test data (sha256-checked by
``lmcourse.data.assets``). A vocabulary never covers every word of a test set, so
``in_vocabulary`` splits a set into the items a model can score and the items it
cannot, and says so: a score means little without its coverage.
"""
from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from functools import lru_cache

from lmcourse.data.assets import asset_path
from lmcourse.errors import LMCourseError


@dataclass(frozen=True)
class WordPair:
    """Two words and the mean human similarity judgement."""

    a: str
    b: str
    score: float


@dataclass(frozen=True)
class Analogy:
    """``a : b :: c : d`` ("athens : greece :: berlin : germany"), in a named section."""

    a: str
    b: str
    c: str
    d: str
    section: str

    @property
    def words(self) -> tuple[str, str, str, str]:
        return (self.a, self.b, self.c, self.d)


@dataclass(frozen=True)
class Coverage:
    """What part of an evaluation set a vocabulary covers: kept items and those left out."""

    kept: tuple
    missing: tuple
    oov_words: tuple[str, ...]  # sorted words of the set not in the vocabulary

    @property
    def total(self) -> int:
        return len(self.kept) + len(self.missing)

    @property
    def fraction(self) -> float:
        """Share of the set's items whose words are all in the vocabulary."""
        return len(self.kept) / self.total if self.total else 0.0

    def __repr__(self) -> str:
        return (f"Coverage({len(self.kept)}/{self.total} items = {self.fraction:.1%}, "
                f"{len(self.oov_words)} words out of vocabulary)")


def _read_pairs(name: str) -> tuple[WordPair, ...]:
    pairs = []
    for line in asset_path(name).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        a, b, score = line.split("\t")[:3]
        pairs.append(WordPair(a.lower(), b.lower(), float(score)))
    return tuple(pairs)


@lru_cache(maxsize=None)
def wordsim353() -> tuple[WordPair, ...]:
    """The 353 WordSim353 pairs (relatedness, 0-10), lower-cased."""
    return _read_pairs("wordsim353")


@lru_cache(maxsize=None)
def simlex999() -> tuple[WordPair, ...]:
    """The 999 SimLex-999 pairs (similarity proper, 0-10), lower-cased."""
    return _read_pairs("simlex999")


@lru_cache(maxsize=None)
def analogies() -> tuple[Analogy, ...]:
    """The 19,544 Google analogy questions, lower-cased, with their section names."""
    out, section = [], ""
    for line in asset_path("analogies").read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            a, b, c, d = line.lower().split()
            out.append(Analogy(a, b, c, d, section))
    return tuple(out)


WORD_SETS = {"wordsim353": wordsim353, "simlex999": simlex999, "analogies": analogies}


def load_word_set(name: str) -> tuple:
    """An evaluation set by name: ``wordsim353``, ``simlex999`` or ``analogies``."""
    if name not in WORD_SETS:
        raise LMCourseError(f"unknown word set {name!r}; known: {', '.join(WORD_SETS)}")
    return WORD_SETS[name]()


def _item_words(item) -> tuple[str, ...]:
    return item.words if isinstance(item, Analogy) else (item.a, item.b)


def in_vocabulary(items, vocab: Container[str]) -> Coverage:
    """Split pairs or analogies into those whose words are all in ``vocab`` and the rest.

    Nothing is dropped silently: the returned ``Coverage`` holds both lists and the
    out-of-vocabulary words.
    """
    kept, missing, oov = [], [], set()
    for item in items:
        absent = [w for w in _item_words(item) if w not in vocab]
        if absent:
            missing.append(item)
            oov.update(absent)
        else:
            kept.append(item)
    return Coverage(tuple(kept), tuple(missing), tuple(sorted(oov)))

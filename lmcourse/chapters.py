"""The book's chapters and how ``lmcourse run`` executes them with papermill.

Taught in the Setup appendix (running chapters).

Chapters are the notebooks listed in ``_toc.yml``. A run executes each with
papermill, passing ``profile`` and ``device`` as parameters:

* ``--profile smoke`` on the CPU writes the outputs back into the chapter notebook
  (these are the stored outputs that nbval checks), after asking, or with ``--yes``;
* any other profile or device writes an executed copy under
  ``_build/executed/<profile>-<device>/`` and leaves the chapter untouched.

A notebook is written only when its run succeeded; a failure names the chapter and
the failing cell.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from lmcourse.errors import LMCourseError

#: Cell metadata written by papermill and nbclient that changes on every run.
VOLATILE_CELL_KEYS = ("papermill", "execution")


class ChapterError(LMCourseError):
    """An unknown chapter name, or a chapter whose run failed."""


@dataclass(frozen=True)
class Chapter:
    path: Path  # the .ipynb, absolute

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def number(self) -> int | None:
        m = re.match(r"(\d+)", self.name)
        return int(m.group(1)) if m else None


def repo_root(start: Path | None = None) -> Path:
    """The folder holding ``_toc.yml``: the current folder or one above it."""
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "_toc.yml").is_file():
            return folder
    raise ChapterError(f"no _toc.yml in {here} or above: run lmcourse from the course's folder")


def _toc_files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                out.extend(_toc_files(child))
    return out


def chapters(root: Path | None = None) -> list[Chapter]:
    """Every notebook listed in ``_toc.yml``, in book order."""
    import yaml

    root = root or repo_root()
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    found = []
    for f in _toc_files(toc):
        path = root / (f if f.endswith(".ipynb") else f + ".ipynb")
        if path.is_file():
            found.append(Chapter(path))
    return found


def select(names: list[str], root: Path | None = None) -> list[Chapter]:
    """Chapters by number (``2``), file name (``02_ngram_models``) or a unique part of it."""
    every = chapters(root)
    if not names or names == ["all"]:
        return every
    picked = []
    for name in names:
        if name.endswith(".ipynb"):  # a notebook by path, listed in the book or not (yet)
            path = Path(name).resolve()
            if not path.is_file():
                raise ChapterError(f"no notebook at {name!r}")
            picked.append(Chapter(path))
            continue
        hits = [c for c in every if name == c.name or (name.isdigit() and c.number == int(name))]
        if not hits:
            hits = [c for c in every if name.lower() in c.name.lower()]
        if len(hits) != 1:
            known = ", ".join(c.name for c in every)
            what = "matches no chapter" if not hits else f"matches {len(hits)} chapters"
            raise ChapterError(f"chapter {name!r} {what}; the chapters are: {known}")
        picked.extend(h for h in hits if h not in picked)
    return picked


def clean_notebook(nb) -> None:
    """Drop the run-to-run noise papermill and nbclient add, in place.

    Cell metadata that changes every run goes, and consecutive stream outputs of a cell
    are merged (how a cell's prints are cut into chunks depends on timing).
    """
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        tags = cell.metadata.get("tags")
        if tags is not None and not tags:
            del cell.metadata["tags"]
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)


def _merge_streams(outputs: list) -> list:
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None and prev.get("output_type") == "stream"
                and prev.get("name") == out.get("name")):
            prev["text"] = "".join(prev["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


def writes_back(profile: str, device: str) -> bool:
    """Smoke runs on the CPU refresh the chapters' stored outputs."""
    return profile == "smoke" and device in ("cpu", "auto") and not _has_cuda(device)


def _has_cuda(device: str) -> bool:
    if device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def output_path(chapter: Chapter, profile: str, device: str, root: Path) -> Path:
    if writes_back(profile, device):
        return chapter.path
    rel = chapter.path.relative_to(root)
    return root / "_build" / "executed" / f"{profile}-{device}" / rel


def execute(chapter: Chapter, profile: str, device: str, root: Path, timeout: int = 900) -> float:
    """Run one chapter with papermill; return its wall time in seconds.

    Raises ChapterError naming the chapter and the failing cell.
    """
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out = output_path(chapter, profile, device, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    back = out == chapter.path
    # Write-back runs use the notebook's own parameters cell (no injected cell), with
    # the GPU hidden when the CPU was asked for.
    params = {} if back else {"profile": profile, "device": device}
    env_before = os.environ.get("CUDA_VISIBLE_DEVICES")
    if back and device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    tmp = out.with_name(f".{out.stem}.running.ipynb")
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(chapter.path), str(tmp), parameters=params, kernel_name="python3",
                            cwd=str(chapter.path.parent), progress_bar=False, log_output=False,
                            execution_timeout=timeout, request_save_on_cell_execute=False,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no kernel start-up chatter
    except PapermillExecutionError as e:
        tmp.unlink(missing_ok=True)
        raise ChapterError(f"chapter {chapter.name} failed in cell {e.cell_index} "
                           f"(In [{e.exec_count}]): {e.ename}: {e.evalue}") from None
    except Exception as e:  # a dead kernel, a timeout
        tmp.unlink(missing_ok=True)
        raise ChapterError(f"chapter {chapter.name} failed: {type(e).__name__}: {e}") from None
    finally:
        if env_before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = env_before
    elapsed = time.perf_counter() - start
    nb = nbformat.read(tmp, as_version=4)
    clean_notebook(nb)
    nbformat.write(nb, tmp)
    os.replace(tmp, out)
    return elapsed

"""Graded assignments from the chapters' exercises, with nbgrader doing the grading.

Taught in the Instructor guide appendix. The workflow:

    lmcourse assign init COURSE                               # nbgrader course folder + gradebook
    lmcourse assign release 2 6 --as week1 --course COURSE    # source/week1 -> release/week1
    (students hand in COURSE/submitted/<student>/week1/*.ipynb)
    lmcourse assign grade week1 --course COURSE               # autograde, grades.csv, feedback/

Each released chapter is the whole chapter notebook (its exercises use what the chapter
computed), outputs cleared, every code cell outside the exercises locked (nbgrader puts
back a locked cell a student edited), then ``nbgrader generate_assignment`` turns the
solutions into stubs and removes the hidden tests.

Grading runs each submission's code in a staging copy of the course: the kernel never
sees the real gradebook, and only the autograder's scores are merged back into it. The
real gradebook, sources and submissions are checksummed around every run; a submission
that changes them is reported and the files are restored.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from lmcourse.chapters import Chapter
from lmcourse.errors import LMCourseError

#: Seconds a cell may run while grading. nbgrader's default (30 s) is too short for the
#: chapters' training cells; the slowest chapter cell takes well under this on 2 cores.
DEFAULT_TIMEOUT = 600
COURSE_ID = "lmcourse"
CONFIG = "nbgrader_config.py"
GRADEBOOK = "gradebook.db"


class AssignError(LMCourseError):
    """A bad course folder, assignment or chapter for nbgrader."""


@dataclass
class Grade:
    student: str
    score: float
    max_score: float
    tampered: bool = False


def _config_text(root: Path, timeout: int) -> str:
    return (f"# nbgrader configuration written by `lmcourse assign init`\n"
            f"c = get_config()\n"
            f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
            f"c.CourseDirectory.root = {str(root)!r}\n"
            f"c.Execute.timeout = {int(timeout)}  # seconds per cell\n"
            f"c.Execute.interrupt_on_timeout = True\n")


def _tools_on_path() -> None:
    """nbgrader runs helper programs (alembic) by name: put this environment's scripts first on PATH."""
    scripts = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != scripts:
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


def _nbgrader(course: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run an nbgrader command in ``course``; raise AssignError with its log on failure."""
    _tools_on_path()
    exe = Path(sys.executable).parent / "nbgrader"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "nbgrader"]
    try:
        proc = subprocess.run([*cmd, *args], cwd=course, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise AssignError("nbgrader is not installed: pip install 'lmcourse[assign]'") from None
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr)[-3000:]
        raise AssignError(f"nbgrader {' '.join(args)} failed in {course}:\n{log}")
    return proc


def _course(course: str | Path) -> Path:
    root = Path(course).resolve()
    if not (root / CONFIG).is_file():
        raise AssignError(f"{root} is not a course folder (no {CONFIG}): run `lmcourse assign init {course}` first")
    return root


def init(course: str | Path, timeout: int = DEFAULT_TIMEOUT) -> Path:
    """Create an nbgrader course folder with its config and an empty sqlite gradebook."""
    if timeout < 1:
        raise AssignError(f"the per-cell timeout must be at least 1 second, not {timeout}")
    root = Path(course).resolve()
    if (root / CONFIG).exists() or (root / GRADEBOOK).exists():
        raise AssignError(f"{root} already holds an nbgrader course: not overwriting it")
    (root / "source").mkdir(parents=True, exist_ok=True)
    (root / CONFIG).write_text(_config_text(root, timeout))
    _tools_on_path()
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / GRADEBOOK}", course_id=COURSE_ID):
        pass  # creates the tables
    return root


def exercises(nb) -> list[tuple[str, dict]]:
    """(grade_id, nbgrader metadata) of every graded or solution cell of a notebook."""
    return [(c.metadata["nbgrader"]["grade_id"], c.metadata["nbgrader"]) for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution") or c.metadata.get("nbgrader", {}).get("grade")]


def source_notebook(chapter: Chapter):
    """The chapter as an nbgrader source notebook: outputs cleared, context cells locked."""
    nb = nbformat.read(chapter.path, as_version=4)
    if not exercises(nb):
        raise AssignError(f"chapter {chapter.name} has no nbgrader exercises to release")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if "nbgrader" not in cell.metadata:
            cell.metadata["nbgrader"] = {"schema_version": 3, "grade_id": f"{chapter.name}-context-{i}",
                                         "solution": False, "grade": False, "locked": True, "task": False}
        if "hide-input" in cell.metadata.get("tags", []):  # the book's fold; students see their cells
            cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != "hide-input"]
    return nb


def release(course: str | Path, chapters: list[Chapter], name: str) -> list[Path]:
    """Make assignment ``name`` from chapters and release it; return the student notebooks."""
    root = _course(course)
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise AssignError(f"assignment name {name!r}: use letters, digits, '-' and '_'")
    if not chapters:
        raise AssignError("name at least one chapter to release")
    src = root / "source" / name
    if src.exists():
        raise AssignError(f"assignment {name!r} already exists in {src}: choose another name")
    notebooks = [(c.name, source_notebook(c)) for c in chapters]
    src.mkdir(parents=True)
    for stem, nb in notebooks:
        nbformat.write(nb, src / f"{stem}.ipynb")
    _nbgrader(root, "generate_assignment", name, "--force")
    released = sorted((root / "release" / name).glob("*.ipynb"))
    for path in released:
        check_released(path, root / "source" / name / path.name)
    return released


def check_released(released: Path, source: Path) -> None:
    """Assert that a student notebook holds no hidden test and no solution text."""
    text = released.read_text(encoding="utf-8")
    for marker in ("BEGIN HIDDEN TESTS", "BEGIN SOLUTION", "END SOLUTION"):
        if marker in text:
            raise AssignError(f"{released}: the released notebook still contains {marker!r}")
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        for region, (begin, end) in {"solution": ("### BEGIN SOLUTION", "### END SOLUTION"),
                                     "hidden tests": ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")}.items():
            lines = cell.source.splitlines()
            if begin not in cell.source:
                continue
            inside = lines[[l.strip() for l in lines].index(begin) + 1:[l.strip() for l in lines].index(end)]
            leaked = [l for l in inside if len(l.strip()) > 12 and l.strip() in text]
            if leaked:
                raise AssignError(f"{released}: {region} text leaked into the student notebook: {leaked[0]!r}")


def _digest(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def _protected(root: Path) -> list[Path]:
    files = [root / GRADEBOOK, root / CONFIG]
    for folder in ("source", "submitted", "release"):
        files += [p for p in (root / folder).rglob("*") if p.is_file()]
    return files


def grade(course: str | Path, name: str, timeout: int | None = None) -> list[Grade]:
    """Autograde every submission of ``name``; write grades.csv and feedback/; return the grades."""
    root = _course(course)
    submitted = sorted(p.parent for p in (root / "submitted").glob(f"*/{name}") if p.is_dir())
    if not (root / "source" / name).is_dir():
        raise AssignError(f"no assignment {name!r} in {root / 'source'}: release it first")
    if not submitted:
        raise AssignError(f"no submissions of {name!r}: expected {root}/submitted/<student>/{name}/*.ipynb")
    config = (root / CONFIG).read_text()
    if timeout is None:
        timeout = next((int(line.split("=")[1].split("#")[0]) for line in config.splitlines()
                        if line.startswith("c.Execute.timeout")), DEFAULT_TIMEOUT)
    tampered = set()
    for student_dir in submitted:
        student = student_dir.name
        before = _digest(_protected(root))
        backup = {p: p.read_bytes() for p in before}
        scores = _autograde_in_staging(root, name, student, timeout)
        after = _digest(_protected(root))
        if after != before:  # the submission's code reached the real course folder
            tampered.add(student)
            for p in set(after) - set(before):
                p.unlink()
            for p, data in backup.items():
                p.write_bytes(data)
        _merge_scores(root, name, student, scores)
    _nbgrader(root, "export", "--to", str(root / "grades.csv"))
    _nbgrader(root, "generate_feedback", name, "--force")
    grades = []
    with open(root / "grades.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["assignment"] == name:
                grades.append(Grade(row["student_id"], float(row["score"]), float(row["max_score"]),
                                    row["student_id"] in tampered))
    return grades


def _autograde_in_staging(root: Path, name: str, student: str, timeout: int) -> dict[tuple[str, str], float]:
    """Autograde one submission in a temporary copy of the course; return (notebook, grade_id) -> score."""
    from nbgrader.api import Gradebook

    with tempfile.TemporaryDirectory(prefix="lmcourse-grade-") as tmp:
        stage = Path(tmp)
        (stage / CONFIG).write_text(_config_text(stage, timeout))
        shutil.copy2(root / GRADEBOOK, stage / GRADEBOOK)
        shutil.copytree(root / "submitted" / student / name, stage / "submitted" / student / name)
        _nbgrader(stage, "autograde", name, "--student", student, "--create", "--force")
        dest = root / "autograded" / student / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(stage / "autograded" / student / name, dest)
        scores = {}
        with Gradebook(f"sqlite:///{stage / GRADEBOOK}", course_id=COURSE_ID) as gb:
            submission = gb.find_submission(name, student)
            for nb in submission.notebooks:
                for g in nb.grades:
                    scores[(nb.name, g.name)] = g.auto_score
    return scores


def _merge_scores(root: Path, name: str, student: str, scores: dict[tuple[str, str], float]) -> None:
    """Write the autograder's scores for one student into the real gradebook."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning, module="nbgrader")  # nbgrader's own autoflush noise
    with Gradebook(f"sqlite:///{root / GRADEBOOK}", course_id=COURSE_ID) as gb:
        try:
            gb.find_student(student)
        except MissingEntry:
            gb.add_student(student)
        try:
            gb.remove_submission(name, student)
        except MissingEntry:
            pass
        submission = gb.add_submission(name, student)
        for nb in submission.notebooks:
            for g in nb.grades:
                g.auto_score = scores.get((nb.name, g.name), 0.0)
                g.manual_score = None
        gb.db.commit()

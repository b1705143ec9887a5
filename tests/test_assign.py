"""Instructor workflow with real nbgrader runs, offline: init, release, grade a synthetic batch.

The batch covers what students hand in: a correct notebook, an empty one, one that
raises, one that loops forever, one that edits the tests, one that deletes a test, and
one that reads the hidden tests and writes the gradebook.
"""
from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import nbformat
import pytest

from lmcourse import assign
from lmcourse.chapters import chapters, select
from lmcourse.cli import main

pytest.importorskip("nbgrader")
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 30  # seconds a cell may run: far above chapter 2's slowest cell, and the loop's limit


def exercise_chapters():
    return [c for c in chapters(ROOT) if assign.exercises(nbformat.read(c.path, as_version=4))]


def test_every_chapter_has_consistent_exercises():
    """Each exercise: a solution region, an autograded test cell with points, solved and passing."""
    found = exercise_chapters()
    assert found, "no chapter has exercises"
    for chapter in found:
        nb = nbformat.read(chapter.path, as_version=4)
        cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
        solutions = [g for g, c in cells.items() if c.metadata["nbgrader"]["solution"]]
        tests = [g for g, c in cells.items() if c.metadata["nbgrader"]["grade"]]
        assert len(solutions) >= 2 and len(tests) >= 2, f"{chapter.name}: fewer than 2 exercises"
        assert len(set(cells)) == len(cells)
        for g in solutions:
            src = cells[g].source
            assert "### BEGIN SOLUTION" in src and "### END SOLUTION" in src, f"{chapter.name}/{g}"
            assert "hide-input" in cells[g].metadata.get("tags", []), f"{chapter.name}/{g}: not folded in the book"
        for g in tests:
            md = cells[g].metadata["nbgrader"]
            assert md["points"] > 0 and md["locked"], f"{chapter.name}/{g}"
            assert "assert" in cells[g].source
            outputs = cells[g].outputs
            assert cells[g].execution_count is not None, f"{chapter.name}/{g}: not executed"
            assert not [o for o in outputs if o.get("output_type") == "error"], f"{chapter.name}/{g} fails"
        for g in solutions:  # each solution is followed by its test
            i = list(cells).index(g)
            assert cells[list(cells)[i + 1]].metadata["nbgrader"]["grade"], f"{chapter.name}/{g} has no test after it"


def solution_body(source: str) -> str:
    """The solved cell with the markers dropped (what a student who got it right writes)."""
    return "\n".join(l for l in source.splitlines() if "### BEGIN SOLUTION" not in l and "### END SOLUTION" not in l)


def submission(released: Path, solved: Path, out: Path, edit=None) -> None:
    nb = nbformat.read(released, as_version=4)
    src = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(solved, as_version=4).cells
           if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in src:
            cell.source = solution_body(src[gid])
    if edit:
        edit(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)


def cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    assert main(["assign", "init", str(root), "--timeout", str(TIMEOUT)]) == 0
    return root


def test_init_refuses_to_overwrite(course, capsys):
    assert main(["assign", "init", str(course)]) == 2
    assert "not overwriting" in capsys.readouterr().err


def test_release_two_chapters_and_grade_a_batch(course, capsys):
    found = exercise_chapters()
    two = [c.name for c in found[:2]]
    assert main(["assign", "release", *two, "--as", "week1", "--course", str(course)]) == 0
    released = sorted((course / "release" / "week1").glob("*.ipynb"))
    assert [p.stem for p in released] == sorted(two)
    for path in released:  # no hidden test and no solution text reaches students
        text = path.read_text()
        assert "HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
        source = nbformat.read(course / "source" / "week1" / path.name, as_version=4)
        for c in source.cells:
            if c.metadata.get("nbgrader", {}).get("solution"):
                assert "raise NotImplementedError" in cell(nbformat.read(path, as_version=4),
                                                           c.metadata["nbgrader"]["grade_id"]).source
            for block in re.findall(r"### BEGIN (?:SOLUTION|HIDDEN TESTS)\n(.*?)### END", c.source, re.S):
                for line in block.splitlines():
                    if len(line.strip()) > 12:
                        assert line.strip() not in text, f"leaked into {path.name}: {line.strip()!r}"
        nb = nbformat.read(path, as_version=4)
        assert any("import lmcourse" in c.source for c in nb.cells)  # still runs on the package

    # the graded batch: chapter 2 (three exercises: 2 + 3 + 2 points)
    ch = "02_ngram_models"
    rel = course / "release" / "week1" / f"{ch}.ipynb"
    solved = select(["2"], ROOT)[0].path
    sub = lambda student, edit=None: submission(  # noqa: E731
        rel, solved, course / "submitted" / student / "week1" / f"{ch}.ipynb", edit)
    sub("correct")
    (course / "submitted" / "empty" / "week1").mkdir(parents=True)
    (course / "submitted" / "empty" / "week1" / f"{ch}.ipynb").write_bytes(rel.read_bytes())
    sub("raises", lambda nb: setattr(cell(nb, "ngram-ex1-solution"), "source",
                                     "def perplexity_from_probs(probs):\n    raise RuntimeError('oops')\n1 / 0"))
    sub("loops", lambda nb: setattr(cell(nb, "ngram-ex2-solution"), "source", "while True:\n    pass"))

    def edit_tests(nb):
        for c in nb.cells:
            if c.metadata.get("nbgrader", {}).get("grade"):
                c.source = "pass  # full marks, please"
        for c in nb.cells:
            if c.metadata.get("nbgrader", {}).get("solution"):
                c.source = "def perplexity_from_probs(p): return 0\ndef lidstone_bigram_prob(*a): return 0\n" \
                           "def unseen_share(*a): return 0"
    sub("edits-tests", edit_tests)
    sub("deletes-test", lambda nb: nb.cells.remove(cell(nb, "ngram-ex3-tests")))
    gradebook = course / "gradebook.db"
    cheat = (
        "import glob, os, sqlite3\n"
        "hidden = [open(p).read() for p in glob.glob('../../../source/*/*.ipynb')]\n"
        "for db in glob.glob('../../../gradebook.db') + [" + repr(str(gradebook)) + "]:\n"
        "    con = sqlite3.connect(db)\n"
        "    con.execute('UPDATE grade_cells SET max_score = 0')\n"
        "    con.execute('CREATE TABLE IF NOT EXISTS pwned (x)')\n"
        "    con.commit()\n"
        "open(" + repr(str(course / 'submitted' / 'correct' / 'week1' / f'{ch}.ipynb')) + ", 'a').write(' ')\n"
        "def perplexity_from_probs(probs):\n    raise NotImplementedError()\n")
    sub("cheats", lambda nb: setattr(cell(nb, "ngram-ex1-solution"), "source", cheat)
        or [setattr(cell(nb, g), "source", "raise NotImplementedError()")
            for g in ("ngram-ex2-solution", "ngram-ex3-solution")])

    before = tree_digest(course / "submitted")
    capsys.readouterr()
    assert main(["assign", "grade", "week1", "--course", str(course)]) == 0
    out = capsys.readouterr().out
    assert tree_digest(course / "submitted") == before  # submissions are byte-identical after grading

    rows = {line.split()[0]: line for line in out.splitlines() if "/" in line and not line.startswith("grades")}
    got = {s: float(rows[s].split()[1]) for s in rows}
    max_score = {s: float(rows[s].split()[3]) for s in rows}
    assert got == {"correct": 7.0, "empty": 0.0, "raises": 5.0, "loops": 4.0, "edits-tests": 0.0,
                   "deletes-test": 5.0, "cheats": 0.0}, out
    points = sum(c.metadata["nbgrader"].get("points", 0) for p in (course / "source" / "week1").glob("*.ipynb")
                 for c in nbformat.read(p, as_version=4).cells if c.metadata.get("nbgrader", {}).get("grade"))
    assert set(max_score.values()) == {float(points)}  # every released chapter counts
    assert "changed the course folder" in rows["cheats"] and "changed" not in rows["correct"]
    con = sqlite3.connect(gradebook)
    assert not con.execute("SELECT name FROM sqlite_master WHERE name = 'pwned'").fetchall()
    assert con.execute("SELECT MIN(max_score) FROM grade_cells").fetchone()[0] > 0
    assert (course / "grades.csv").is_file()
    feedback = list((course / "feedback").glob("*/week1/*.html"))
    assert {p.parts[-3] for p in feedback} == set(got)

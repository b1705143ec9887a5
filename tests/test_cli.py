"""The `lmcourse` command: chapter selection, runs, benchmarks, and one-line errors."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lmcourse import chapters as ch
from lmcourse.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_chapters_come_from_the_toc_in_order():
    names = [c.name for c in ch.chapters(ROOT)]
    assert "02_ngram_models" in names
    assert ch.select(["2"], ROOT)[0].name == "02_ngram_models"
    assert ch.select(["ngram"], ROOT)[0].name == "02_ngram_models"


def test_unknown_chapter_is_a_one_line_error(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["run", "klingon", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "chapter 'klingon' matches no chapter" in err and "02_ngram_models" in err
    assert "Traceback" not in err


def test_unknown_profile_and_benchmark(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e:
        main(["run", "--profile", "huge"])
    assert e.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_writing_back_needs_consent(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert main(["run", "2", "--device", "cpu"]) == 2
    assert "pass --yes" in capsys.readouterr().err


def tiny_notebook(path: Path, fail: bool = False) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\ndevice = "auto"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    body = ("raise ValueError('broken on purpose')" if fail
            else "import sys, time\nprint(profile, end=' ')\nsys.stdout.flush()\ntime.sleep(0.3)\nprint(device)")
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def course(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: ok\n  - file: bad\n")
    tiny_notebook(tmp_path / "ok.ipynb")
    tiny_notebook(tmp_path / "bad.ipynb", fail=True)
    return tmp_path


def test_run_writes_back_cleanly_and_reports_the_failing_cell(course, capsys, monkeypatch):
    monkeypatch.chdir(course)
    before = (course / "bad.ipynb").read_text()
    assert main(["run", "--yes", "--device", "cpu"]) == 1
    out = capsys.readouterr()
    assert "ok" in out.out and "FAILED" in out.out
    assert "chapter bad failed in cell 2" in out.err and "ValueError: broken on purpose" in out.err
    nb = nbformat.read(course / "ok.ipynb", as_version=4)
    assert len(nb.cells[2].outputs) == 1  # two flushed chunks merged into one stream output
    assert nb.cells[2].outputs[0]["text"] == "smoke auto\n"  # its own parameters; the GPU hidden
    assert "papermill" not in nb.metadata and all("papermill" not in c.metadata for c in nb.cells)
    assert len(nb.cells) == 3  # no injected-parameters cell in a write-back run
    assert (course / "bad.ipynb").read_text() == before  # a failed run leaves the chapter as it was
    timings = json.loads((course / "_build/executed/timings-smoke-cpu.json").read_text())
    assert timings["bad"] is None and timings["ok"] > 0


def test_full_profile_writes_executed_copies(course, capsys, monkeypatch):
    monkeypatch.chdir(course)
    before = (course / "ok.ipynb").read_text()
    assert main(["run", "ok", "--profile", "full", "--device", "cpu"]) == 0
    copy = course / "_build/executed/full-cpu/ok.ipynb"
    nb = nbformat.read(copy, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert nb.cells[-1].outputs[0]["text"] == "full cpu\n"
    assert (course / "ok.ipynb").read_text() == before


def test_console_script_is_installed():
    exe = shutil.which("lmcourse") or str(Path(sys.executable).parent / "lmcourse")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout and "bench" in out.stdout


def test_every_registered_benchmark_has_a_run_function():
    import importlib

    from lmcourse.bench import BENCHMARKS

    for name in BENCHMARKS:
        module = importlib.import_module(f"lmcourse.bench.{name}")
        assert callable(module.run), name
    assert {"ngram", "word2vec", "rnn", "transformer", "gpt", "systems", "efficiency"} <= set(BENCHMARKS)

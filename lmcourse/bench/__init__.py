"""``lmcourse bench``: each benchmark runs lmcourse and its reference on the same work, in one run.

A benchmark is a module ``lmcourse.bench.<name>`` with ``run(profile) -> list[Row]``.
Rows print as one table: component, lmcourse, reference, ratio, target, met?
Results are also written to ``_build/bench/results.json`` and, as a markdown table with the machine,
``results.md``; the timing every benchmark uses is in
``lmcourse.bench.timing``.

Taught in the Performance appendix.
"""
from __future__ import annotations

import datetime
import importlib
import json
import platform
import subprocess
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from lmcourse.errors import LMCourseError

#: Registered benchmarks, in the order of the book.
BENCHMARKS = ["ngram", "word2vec", "rnn", "transformer", "gpt", "prompt", "delta", "systems", "efficiency"]  # efficiency includes compression


@dataclass
class Row:
    """One measured comparison. ``ratio`` is how many times better lmcourse is, as ``target`` reads it."""

    benchmark: str
    component: str
    lmcourse: float
    reference: float
    unit: str
    ratio: float
    target: str = ""
    met: bool | None = None
    note: str = ""


def machine() -> dict[str, str]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    info = {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(), "torch": torch.__version__,
            "threads": str(torch.get_num_threads())}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _commit() -> str:
    """The git commit of the package's checkout (with "+changes" if the tree is dirty), or "" outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return sha + ("+changes" if sha and dirty else "")


def load_results(path: Path | str) -> tuple[dict, list[Row]]:
    """A ``results.json`` written by ``run_benchmarks``: (everything but the rows, the rows)."""
    data = json.loads(Path(path).read_text())
    rows = [Row(**r) for r in data.pop("rows")]
    return data, rows


def format_table(rows: list[Row]) -> str:
    head = ["benchmark", "component", "lmcourse", "reference", "unit", "ratio", "target", "met"]
    body = [[r.benchmark, r.component, f"{r.lmcourse:.4g}", f"{r.reference:.4g}", r.unit, f"{r.ratio:.3g}x",
             r.target, "" if r.met is None else ("yes" if r.met else "NO")] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*["-" * w for w in widths])] + [fmt.format(*b) for b in body])


def format_markdown(rows: list[Row], meta: dict) -> str:
    """The rows as a markdown table, under a line naming the profile, machine, date and commit."""
    def cell(x) -> str:
        return str(x).replace("|", "\\|")

    where = ", ".join(f"{k} {v}" for k, v in meta["machine"].items())
    lines = [f"Profile {meta['profile']}, {meta['date']}, commit {meta['commit'] or 'unknown'}; machine: {where}.", "",
             "| benchmark | component | lmcourse | reference | unit | ratio | target | met? |",
             "|---|---|---:|---:|---|---:|---|---|"]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append("| " + " | ".join(cell(x) for x in (r.benchmark, r.component, f"{r.lmcourse:.4g}",
                                                         f"{r.reference:.4g}", r.unit, f"{r.ratio:.3g}x",
                                                         r.target, met)) + " |")
    return "\n".join(lines) + "\n"


def run_benchmarks(names: list[str] | None = None, profile: str = "smoke", out_dir: Path | None = None,
                   echo: bool = True, write: bool = True) -> list[Row]:
    """Run the named benchmarks (default: all, in book order) and return their rows.

    ``echo`` prints each benchmark's table as it finishes; ``write`` saves ``results.json`` (the rows, the
    profile, the machine, the date, the git commit and each benchmark's seconds; read it back with
    ``load_results``) and ``results.md`` under ``out_dir`` (default ``_build/bench``), the build folder.
    """
    names = names or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise LMCourseError(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    for name in names:
        module = importlib.import_module(f"lmcourse.bench.{name}")
        start = time.perf_counter()
        with warnings.catch_warnings():
            # peft calls transformers APIs that transformers 5 deprecates: not ours to fix, not worth a line
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)(\.|$)")
            new = module.run(profile)
        seconds[name] = round(time.perf_counter() - start, 1)
        rows.extend(new)
        if echo:
            print(format_table(new), flush=True)
            print(flush=True)
    info = machine()
    if echo:
        print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if not write:
        return rows
    out_dir = out_dir or Path("_build") / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = {"profile": profile, "machine": info, "date": when, "commit": _commit(), "seconds": seconds}
    (out_dir / "results.json").write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    (out_dir / "results.md").write_text(format_markdown(rows, meta))
    return rows

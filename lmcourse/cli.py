"""``lmcourse``: run the chapters, run benchmarks, check the offline assets.

    lmcourse run [CHAPTER ...] [--profile smoke|full] [--device auto|cpu|cuda] [--yes]
    lmcourse bench [NAME ...] [--profile smoke|full] [--out DIR [--yes]]
    lmcourse assign init DIR | release CHAPTER... --as NAME | grade NAME  [--course DIR]
    lmcourse assets

Errors in what was asked (an unknown chapter, profile or benchmark, a missing
asset) print one line naming the problem and exit with status 2; a chapter that
fails prints the chapter and the cell, and the run exits with status 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmcourse.config import PROFILES
from lmcourse.errors import LMCourseError


def _run(args) -> int:
    from tqdm import tqdm

    from lmcourse import chapters as ch
    from lmcourse.config import pick_device

    if args.device != "auto":
        pick_device(args.device)  # a clear error now, not inside a kernel later
    root = ch.repo_root()
    todo = ch.select(args.chapters, root)
    back = [c for c in todo if ch.output_path(c, args.profile, args.device, root) == c.path]
    if back and not args.yes:
        names = ", ".join(c.name for c in back)
        if not sys.stdin.isatty():
            raise ch.ChapterError(f"this run would write fresh outputs into {len(back)} chapter notebook(s) "
                                  f"({names}); pass --yes to allow it")
        answer = input(f"Write fresh outputs into {len(back)} chapter notebook(s) ({names})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing run.")
            return 1
    times: dict[str, float | None] = {}
    failures: list[str] = []
    bar = tqdm(todo, desc=f"chapters ({args.profile}, {args.device})", unit="chapter")
    for chapter in bar:
        bar.set_postfix_str(chapter.name)
        try:
            times[chapter.name] = ch.execute(chapter, args.profile, args.device, root, timeout=args.timeout)
        except ch.ChapterError as e:
            times[chapter.name] = None
            failures.append(str(e))
            tqdm.write(f"FAILED: {e}", file=sys.stderr)
    bar.close()
    print(_timing_table(times, args.profile, args.device))
    for c in todo:
        out = ch.output_path(c, args.profile, args.device, root)
        if times[c.name] is not None and out != c.path:
            print(f"executed copy: {out.relative_to(root)}")
    _write_timings(root, args.profile, args.device, times)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    return 0


def _timing_table(times: dict[str, float | None], profile: str, device: str) -> str:
    width = max([len(n) for n in times] + [7])
    lines = [f"{'chapter':<{width}}  {'seconds':>8}  status", f"{'-' * width}  {'-' * 8}  ------"]
    for name, t in times.items():
        lines.append(f"{name:<{width}}  {'' if t is None else f'{t:8.1f}':>8}  {'ok' if t is not None else 'FAILED'}")
    total = sum(t for t in times.values() if t is not None)
    lines.append(f"{'total':<{width}}  {total:8.1f}  ({profile}, {device})")
    return "\n".join(lines)


def _write_timings(root: Path, profile: str, device: str, times: dict[str, float | None]) -> None:
    import json

    out = root / "_build" / "executed" / f"timings-{profile}-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(times, indent=2) + "\n")


def _bench(args) -> int:
    from lmcourse.bench import run_benchmarks

    out = Path(args.out) if args.out else None
    if out is not None and (out / "results.json").exists() and not args.yes:
        raise LMCourseError(f"{out / 'results.json'} exists: pass --yes to replace it, or choose another --out")
    run_benchmarks(args.names, profile=args.profile, out_dir=out)
    return 0


def _assets(args) -> int:
    from lmcourse.data.assets import ASSETS, asset_files

    bad = 0
    for name, asset in ASSETS.items():
        try:
            files = asset_files(name)
            print(f"ok       {name:<12} {len(files):>3} file(s) from {asset.package}: {asset.about}")
        except LMCourseError as e:
            bad += 1
            print(f"MISSING  {name:<12} {e}")
    return 1 if bad else 0


def _assign(args) -> int:
    from lmcourse import assign
    from lmcourse.chapters import select

    if args.action == "init":
        if len(args.chapters) > 1:
            raise assign.AssignError("init takes one folder: lmcourse assign init DIR")
        course = args.chapters[0] if args.chapters else args.course
        root = assign.init(course, timeout=args.timeout or assign.DEFAULT_TIMEOUT)
        print(f"nbgrader course created in {root}")
    elif args.action == "release":
        if not args.name:
            raise assign.AssignError("name the assignment: --as NAME")
        released = assign.release(args.course, select(args.chapters), args.name)
        for path in released:
            print(f"released: {path}")
    else:
        if len(args.chapters) != 1:
            raise assign.AssignError("grade takes one assignment name: lmcourse assign grade NAME")
        grades = assign.grade(args.course, args.chapters[0], timeout=args.timeout)
        for g in grades:
            flag = "  (changed the course folder: restored)" if g.tampered else ""
            print(f"{g.student:<20} {g.score:6.2f} / {g.max_score:g}{flag}")
        print(f"grades: {args.course}/grades.csv, feedback: {args.course}/feedback/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lmcourse", description="Language models, from n-grams to ZeRO: course tools.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute chapters with papermill")
    r.add_argument("chapters", nargs="*", help="chapter numbers or names (default: all)")
    r.add_argument("--profile", default="smoke", choices=PROFILES)
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    r.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell (default 900)")
    r.add_argument("--yes", action="store_true", help="allow writing outputs back into chapter notebooks")
    r.set_defaults(func=_run)

    b = sub.add_parser("bench", help="benchmarks: lmcourse side by side with the reference")
    b.add_argument("names", nargs="*", help="benchmark names (default: all)")
    b.add_argument("--profile", default="smoke", choices=PROFILES)
    b.add_argument("--out", help="folder for results.json and results.md (default: _build/bench, replaced each run)")
    b.add_argument("--yes", action="store_true", help="allow replacing results.json in the --out folder")
    b.set_defaults(func=_bench)

    g = sub.add_parser("assign", help="graded assignments with nbgrader: init, release, grade")
    g.add_argument("action", choices=["init", "release", "grade"])
    g.add_argument("chapters", nargs="*", metavar="ARG",
                   help="init: the course folder; release: chapters; grade: the assignment name")
    g.add_argument("--as", dest="name", help="release: the assignment's name")
    g.add_argument("--course", default=".", help="the nbgrader course folder (default: here)")
    g.add_argument("--timeout", type=int, help="seconds a cell may run while grading")
    g.set_defaults(func=_assign)

    a = sub.add_parser("assets", help="check the offline data assets")
    a.set_defaults(func=_assets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LMCourseError as e:
        print(f"lmcourse: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lmcourse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

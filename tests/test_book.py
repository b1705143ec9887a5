"""The book builds with zero warnings, and renders in a real browser (headless Chromium).

The build goes to ``_build/test/`` so it never touches ``make book``'s output. The
browser check needs Debian's ``chromium`` (``.ci/run`` installs it) and Playwright
for Python pointed at it; without them it skips, saying how to enable it.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from lmcourse.chapters import chapters

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "test"
HTML = OUT / "_build" / "html"
CHROMIUM = os.environ.get("LMCOURSE_CHROMIUM", "/usr/bin/chromium")
MATHJAX = ROOT / ".mathjax" / "_static" / "mathjax" / "tex-chtml.js"


def toc_pages() -> list[str]:
    """Every page of the table of contents, as paths relative to the root, without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                if "file" in child:
                    pages.append(child["file"])
                walk(child)

    walk(toc)
    return pages


@pytest.fixture(scope="module")
def built_book() -> Path:
    if not MATHJAX.is_file():
        pytest.fail("MathJax is not installed in .mathjax/: run `make setup` (it installs mathjax from npm)")
    if OUT.exists():
        shutil.rmtree(OUT)
    exe = Path(sys.executable).parent / "jupyter-book"  # the venv's, even when it is not on PATH
    cmd = [str(exe if exe.exists() else shutil.which("jupyter-book")), "build", str(ROOT), "-W", "-n",
           "--keep-going", "--path-output", str(OUT)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"jupyter-book build failed:\n{log[-6000:]}"
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, "the strict build printed warnings:\n" + "\n".join(warnings)
    assert "build succeeded" in log
    return HTML


def test_every_toc_page_is_built_with_local_mathjax(built_book):
    with_math = 0
    for page in toc_pages():
        html = (built_book / f"{page}.html").read_text(encoding="utf-8")
        assert "cdn.jsdelivr.net" not in html, f"{page} loads MathJax from a CDN"
        if 'class="math' in html:  # Sphinx adds MathJax to the pages that have math
            assert "_static/mathjax/tex-chtml.js" in html, f"{page} does not load the local MathJax"
            with_math += 1
    assert with_math >= 2
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_every_chapter_has_its_figures_and_collapsed_solutions(built_book):
    for chapter in chapters(ROOT):
        rel = chapter.path.relative_to(ROOT).with_suffix(".html")
        html = (built_book / rel).read_text(encoding="utf-8")
        assert "<img" in html, f"{chapter.name}: no figure in the built page"
        if "book/appendix" not in rel.as_posix():
            assert "tag_hide-input" in html, f"{chapter.name}: exercise solutions are not collapsed"
            assert "launch" in html.lower(), f"{chapter.name}: no launch buttons"


def _browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser check skipped: pip install playwright (the 'test' extra)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"browser check skipped: no Chromium at {CHROMIUM}; install Debian's `chromium` "
                    "(apt-get install chromium) or set LMCOURSE_CHROMIUM to a Chromium binary")
    return sync_playwright


@pytest.fixture(scope="module")
def server(built_book):
    handler = functools.partial(QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


HARMLESS = ("THEBE_JS_URL", "invalid theme mode", "favicon")


def test_pages_render_in_chromium(server):
    sync_playwright = _browser()
    pages = toc_pages()
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            for page_path in pages:
                page = browser.new_page()
                errors: list[str] = []
                page.on("console", lambda m: m.type == "error" and errors.append(m.text))
                page.on("pageerror", lambda e: errors.append(str(e)))
                missing: list[str] = []
                page.on("response", lambda r: r.status >= 400 and missing.append(r.url))
                page.goto(f"{server}/{page_path}.html", wait_until="load")
                n_math = page.locator(".math").count()
                if n_math:
                    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise",
                                           timeout=30_000)
                    page.evaluate("MathJax.startup.promise")
                n_rendered = page.locator(".math > mjx-container").count()
                assert n_rendered == n_math, f"{page_path}: {n_rendered} of {n_math} formulas rendered"
                assert page.locator("mjx-merror").count() == 0, f"{page_path}: a formula failed in MathJax"
                text = page.inner_text("main")
                assert "$$" not in text, f"{page_path}: raw $$ in the rendered page"
                broken = page.evaluate(
                    "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
                assert not broken, f"{page_path}: images did not load: {broken}"
                sidebar = page.inner_text("nav.bd-docs-nav")
                for chapter in chapters(Path(ROOT)):
                    title = _title(chapter.path)
                    assert title in sidebar, f"{page_path}: the sidebar does not list {title!r}"
                missing = [u for u in missing if "favicon" not in u]
                assert not missing, f"{page_path}: resources not found: {missing}"
                real = [e for e in errors if not any(h in e for h in HARMLESS)
                        and not ("404" in e and not missing)]  # a favicon 404 is harmless
                assert not real, f"{page_path}: console errors: {real}"
                if page_path.endswith("02_ngram_models"):
                    assert n_math > 10
                page.close()
        finally:
            browser.close()


def _title(path: Path) -> str:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "markdown")
    return first.source.splitlines()[0].lstrip("# ").strip()

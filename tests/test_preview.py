"""The docs pages as a reader sees them: every notebook processed by nbdev and rendered to HTML (scripts/preview.py),
opened in headless Chromium. Each page must load without a script error, show no error and no stderr output, show every
figure its notebook stores (loaded, not broken), show the note in place of each widget, and link only to pages and
anchors that exist. Screenshots of the index and of the EWC page go to tests/artifacts/.

Needs the playwright Python package and Debian's `chromium`; skips, saying so, when one is missing. Requests that leave
the machine are blocked (MathJax, Colab's badge): the pages must work without them, except for the three scripts bertviz's
figures load from a CDN, which are served from tests/js/node_modules (`npm ci --prefix tests/js`, part of `make test`)."""
import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from cl_course.attention import BERTVIZ_CDN_SCRIPTS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "scripts"))
import outputs  # noqa: E402
import preview  # noqa: E402

ARTIFACTS = HERE / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NODE_MODULES = HERE / "js" / "node_modules"
NOTEBOOKS = sorted(p.stem for p in (REPO / "nbs").glob("*.ipynb"))
SHOTS = {"index": "preview_index.png", "08_ewc": "preview_ewc.png"}


def _fresh_proc() -> list[Path]:
    "The processed notebooks: `_proc/` when it is newer than every notebook and the library (as CI leaves it), else made now."
    proc = REPO / "_proc"
    made = [proc / f"{n}.ipynb" for n in NOTEBOOKS]
    sources = list((REPO / "nbs").glob("*.ipynb")) + list((REPO / "cl_course").glob("*.py"))
    newest = max(p.stat().st_mtime for p in sources)
    if all(p.exists() and p.stat().st_mtime >= newest for p in made): return made
    preview.proc_notebooks()
    return made


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is missing: pip install -e '.[dev]'")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is missing: apt-get install -y chromium (Debian's package, /usr/bin/chromium)")
    procs = _fresh_proc()
    out = tmp_path_factory.mktemp("preview")
    preview.render(procs, out)
    pages = {p.stem: preview.page_name(json.loads(p.read_text()), p) for p in procs}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield dict(out=out, pages=pages, procs={p.stem: p for p in procs}, browser=browser)
        browser.close()


def _expected(proc: Path) -> dict[str, int]:
    "What the page must show: the figures and widget notes of its notebook's shown outputs."
    nb = json.loads(proc.read_text())
    shown = [o for c in nb["cells"] if c["cell_type"] == "code" and preview._text(c["source"]).find("#| output: false") < 0
             for o in c.get("outputs", [])]
    data = [o.get("data", {}) for o in shown]
    return dict(figures=sum(any(k.startswith("image/") for k in d) for d in data),
                tables=sum("<table" in preview._text(d.get("text/html", "")) for d in data),
                bertviz=sum("bertviz-" in preview._text(d.get("text/html", "")) for d in data),
                widgets=sum(outputs.WIDGET_NOTE in preview._text(d.get("text/plain", "")) for d in data))


def _headings(nb_path: Path) -> list[str]:
    "The section headings (## and below) of a notebook's markdown, as plain text."
    nb = json.loads(nb_path.read_text())
    md = "\n".join(preview._text(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    plain = lambda h: " ".join(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h).replace("`", "").replace("**", "").split())
    return [plain(h) for h in re.findall(r"^#{2,6}\s+(.+)$", md, re.M)]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_page(site, name):
    page_file = site["out"] / site["pages"][name]
    page = site["browser"].new_page(viewport={"width": 1280, "height": 900})
    errors, blocked = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    want = _expected(site["procs"][name])
    if want["bertviz"] and not all((NODE_MODULES / p).exists() for p in BERTVIZ_CDN_SCRIPTS.values()):
        pytest.skip(f"{name} shows bertviz figures, whose scripts are missing from {NODE_MODULES}: run `npm ci --prefix tests/js`")
    def route(r):
        url = r.request.url
        if url in BERTVIZ_CDN_SCRIPTS: r.fulfill(path=str(NODE_MODULES / BERTVIZ_CDN_SCRIPTS[url]), content_type="application/javascript")
        elif url.startswith(("file:", "data:")): r.continue_()
        else: blocked.append(url); r.abort()
    page.route("**/*", route)
    page.goto(page_file.as_uri(), wait_until="load")
    try:
        assert errors == [], f"{name}: script errors {errors}"
        assert page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0, f"{name}: error or stderr output"
        assert "Traceback (most recent call last)" not in page.inner_text("body")
        assert not re.search(r"\['<(div|script|style|table)", page.content()), f"{name}: an output rendered as a Python list of its lines"
        text = " ".join(page.inner_text("body").split())
        for h in _headings(REPO / "nbs" / f"{name}.ipynb"):   # nothing of the notebook's text lost on the way (nbdev drops what
            assert h in text, f"{name}: the section {h!r} is not on the page"   # shares the title's cell, for one)
        tables = page.locator(".jp-OutputArea-output table").count()   # a stored table shows as one, not as its source text
        assert tables >= want["tables"], f"{name}: {tables} tables on the page, {want['tables']} stored"
        if want["bertviz"]:   # bertviz draws its figure into an <svg> once its scripts have run
            page.wait_for_function("document.querySelectorAll('[id^=bertviz-] svg').length > 0", timeout=20_000)
        imgs = page.locator(".jp-OutputArea-output img")
        assert imgs.count() == want["figures"], f"{name}: {imgs.count()} figures on the page, {want['figures']} stored"
        broken = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output img')].filter(i => !i.naturalWidth).length")
        assert broken == 0, f"{name}: {broken} figures do not load"
        assert page.inner_text("body").count(outputs.WIDGET_NOTE) == want["widgets"]
        for href in page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"):
            u = urlparse(href)
            if u.scheme or href.startswith("#") and len(href) == 1: continue
            target = (page_file.parent / unquote(u.path)) if u.path else page_file
            assert target.exists(), f"{name}: a link to a missing page {href!r}"
            if u.fragment and target.suffix == ".html":
                # Quarto's section ids are lower case (nbdev links to them so), nbconvert's keep the heading's case
                assert f'id="{u.fragment.lower()}"' in target.read_text().lower(), f"{name}: a link to a missing anchor {href!r}"
        if name in SHOTS:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / SHOTS[name]))
    finally:
        page.close()

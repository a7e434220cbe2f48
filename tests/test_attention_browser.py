"""bertviz's figures render outside a live kernel: headless Chromium, no network, the three CDN
scripts bertviz loads (require.js, d3, jQuery) served from tests/js/node_modules.

Needs Debian's `chromium` (apt-get install -y chromium) and `npm ci --prefix tests/js`; the test
skips, saying so, when either is missing. Screenshots go to tmp_path and to tests/artifacts/."""
import re
import shutil
from pathlib import Path

import pytest
import torch

from cl_course.attention import BERTVIZ_CDN_SCRIPTS, attention_html, attentions_for
from cl_course.models import load_model, load_tokenizer

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "js" / "node_modules"
ARTIFACTS = HERE / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TEXT = "Robert Boulter is an English film, television and theatre actor."


def _requirements():
    "Skip (never pass silently) when the browser or the local copies of the scripts are missing."
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is missing: pip install -e '.[dev]'")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is missing: apt-get install -y chromium (Debian's package, /usr/bin/chromium)")
    missing = [p for p in BERTVIZ_CDN_SCRIPTS.values() if not (NODE_MODULES / p).exists()]
    if missing:
        pytest.skip(f"bertviz's scripts are missing from {NODE_MODULES} ({', '.join(missing)}): "
                    "run `npm ci --prefix tests/js`")


@pytest.fixture(scope="module")
def attentions():
    tok = load_tokenizer("gpt2")
    model = load_model("gpt2-tiny-gpt2tok", attn_implementation="eager", device="cpu").eval()
    return attentions_for(model, tok, TEXT)


def _render(html: str, tmp_path: Path, name: str, selector: str):
    "Open `html` in headless Chromium with the CDN served locally; return the page's answers and the screenshot path."
    from playwright.sync_api import sync_playwright
    page_file = tmp_path / f"{name}.html"
    page_file.write_text(html, encoding="utf-8")
    served, blocked, errors = [], [], []

    def route(r):
        url = r.request.url
        if url in BERTVIZ_CDN_SCRIPTS:
            served.append(url)
            r.fulfill(path=str(NODE_MODULES / BERTVIZ_CDN_SCRIPTS[url]), content_type="application/javascript")
        elif url.startswith("file://"):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.route("**/*", route)
            page.goto(page_file.as_uri())
            page.wait_for_function(f"document.querySelectorAll({selector!r}).length > 0", timeout=20_000)
            n_lines = page.evaluate(f"document.querySelectorAll({selector!r}).length")
            opacities = page.evaluate(f"Array.from(document.querySelectorAll({selector!r})).map(l => +l.getAttribute('stroke-opacity'))")
            shot = tmp_path / f"bertviz_{name}_view.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    return dict(n_lines=n_lines, opacities=opacities, served=served, blocked=blocked, errors=errors, shot=shot)


def test_bertviz_loads_the_scripts_we_serve(attentions):
    "The page loads exactly the scripts the browser test serves: <script src> tags and require.js paths (which omit '.js')."
    for view in ("head", "model"):
        html = attention_html(*attentions, view=view)
        tags = re.findall(r'<script[^>]+src="(https?://[^"]+)"', html)
        paths = re.search(r"require\.config\(\{\s*paths:\s*\{(.*?)\}", html, re.S)
        assert paths, "bertviz no longer configures require.js paths: check how it loads d3 and jQuery"
        urls = set(tags) | {u + ".js" for u in re.findall(r"'(https?://[^']+)'", paths.group(1))}
        assert urls == set(BERTVIZ_CDN_SCRIPTS), \
            f"bertviz's {view} view now loads {sorted(urls)}: update BERTVIZ_CDN_SCRIPTS and tests/js/package.json"


def test_head_view_renders_offline(attentions, tmp_path):
    _requirements()
    att, tokens = attentions
    H, T = att[0].shape[1], att[0].shape[-1]
    r = _render(attention_html(att, tokens, view="head"), tmp_path, "head", "g#attention line")
    assert r["errors"] == [], r["errors"]
    assert sorted(r["served"]) == sorted(BERTVIZ_CDN_SCRIPTS), r["served"]
    assert r["blocked"] == [], f"unexpected requests: {r['blocked']}"
    assert r["n_lines"] == H * T * T                      # one line per head and (token, token) pair, layer 0
    # each line's opacity is its attention weight divided by the number of heads shown
    expected = (att[0][0] / H).flatten().tolist()        # (head, left token, right token), as the lines are drawn
    assert r["opacities"] == pytest.approx(expected, abs=1e-6)
    assert r["shot"].stat().st_size > 5_000


def test_model_view_renders_offline(attentions, tmp_path):
    _requirements()
    att, tokens = attentions
    L, H, T = len(att), att[0].shape[1], att[0].shape[-1]
    r = _render(attention_html(att, tokens, view="model"), tmp_path, "model", "svg line")
    assert r["errors"] == [], r["errors"]
    assert r["blocked"] == [], f"unexpected requests: {r['blocked']}"
    assert r["n_lines"] == L * H * T * T                  # a thumbnail of every head of every layer
    expected = torch.stack([a[0] for a in att]).flatten().tolist()
    assert r["opacities"] == pytest.approx(expected, abs=1e-6)

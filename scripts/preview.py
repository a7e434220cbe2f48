"""A local preview of the docs site, without Quarto: the notebooks as nbdev processes them for Quarto, rendered to HTML.

    make preview                          # nbdev-proc-nbs, then _preview/<page>.html; open _preview/index.html
    .venv/bin/python scripts/preview.py --out _preview --no-proc   # reuse an up-to-date _proc/

Quarto cannot be installed on this project's machines, so the site itself is rendered by the deploy workflow. This
preview runs nbdev's own first step (`nbdev-proc-nbs`: doc cells rendered, directives applied, API links made), then
renders each processed notebook with nbconvert, as Quarto would show it: each page named by its `output-file`, the
front matter as title and summary, `#| echo: false` cells without their code, `#| output: false` cells without output,
and links to the site's pages made local. tests/test_preview.py opens every page in headless Chromium.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SITE = "https://cl-course.github.io/cl_course/"


def _text(v) -> str: return "".join(v) if isinstance(v, list) else v


def proc_notebooks(proc: Path = REPO / "_proc") -> list[Path]:
    "Run `nbdev-proc-nbs` (it writes `_proc/`); the processed notebooks."
    subprocess.run([Path(sys.executable).parent / "nbdev-proc-nbs"], cwd=REPO, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)
    return sorted(proc.glob("*.ipynb"))


def front_matter(nb: dict) -> dict[str, str]:
    "The notebook's Quarto front matter: its first raw cell, YAML between `---` lines."
    import yaml
    cell = nb["cells"][0]
    if cell["cell_type"] != "raw": return {}
    return yaml.safe_load(_text(cell["source"]).strip().strip("-")) or {}


def page_name(nb: dict, path: Path) -> str:
    "The page's file name on the site: its `output-file`, else the notebook's name without its number."
    return front_matter(nb).get("output-file") or re.sub(r"^\d+_", "", path.stem) + ".html"


def _local_links(s: str, pages: dict[str, str]) -> str:
    "Links to the site, or to a notebook, as links to the preview's pages."
    s = s.replace(SITE, "")
    return re.sub(r"\]\((?:\./)?([\w-]+)\.ipynb(#[^)]*)?\)", lambda m: f"]({pages.get(m.group(1), m.group(1) + '.html')}{m.group(2) or ''})", s)


def for_preview(nb: dict, pages: dict[str, str]) -> dict:
    "The processed notebook as the site shows it (see the module's docstring)."
    fm = front_matter(nb)
    cells = nb["cells"][1:] if fm else nb["cells"]
    head = {"cell_type": "markdown", "id": "front-matter", "metadata": {}, "source": f"# {fm.get('title', '')}\n\n> {fm.get('description', '')}"}
    for c in cells:
        src, c["metadata"] = _text(c["source"]), {}   # nbdev's execution times and the like: not part of a page
        if c["cell_type"] == "markdown": c["source"] = _local_links(src, pages); continue
        if c["cell_type"] != "code": continue
        lines = src.splitlines()
        opts = {k.strip(): v.strip() for k, _, v in (l[2:].partition(":") for l in lines if l.startswith("#|"))}
        c["source"] = "\n".join(l for l in lines if not l.startswith("#|"))
        tags = c["metadata"]["tags"] = []
        if opts.get("echo") == "false" or not c["source"].strip(): tags.append("remove_input")
        if opts.get("output") == "false": tags.append("remove_output")
        for o in c.get("outputs", []):
            if "text/markdown" in o.get("data", {}): o["data"]["text/markdown"] = _local_links(_text(o["data"]["text/markdown"]), pages)
    nb["cells"] = ([head] if fm else []) + cells
    return nb


def render(paths: list[Path], out: Path) -> dict[str, Path]:
    "Each processed notebook as `out/<page>.html`; {page: html file}."
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    import nbformat
    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = ("remove_input",)
    cfg.TagRemovePreprocessor.remove_all_outputs_tags = ("remove_output",)
    exporter = HTMLExporter(config=cfg, template_name="lab")
    nbs = {p: json.loads(p.read_text()) for p in paths}
    pages = {p.stem: page_name(nb, p) for p, nb in nbs.items()}
    out.mkdir(parents=True, exist_ok=True)
    done = {}
    for p, nb in nbs.items():
        node = nbformat.reads(json.dumps(for_preview(nb, pages)), as_version=4)   # reads, not from_dict: it joins multi-line strings
        body, _ = exporter.from_notebook_node(node)
        (out / pages[p.stem]).write_text(body)
        done[pages[p.stem]] = out / pages[p.stem]
    return done


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "_preview"), help="folder for the HTML pages")
    ap.add_argument("--no-proc", action="store_true", help="reuse _proc/ instead of running nbdev-proc-nbs")
    a = ap.parse_args()
    paths = sorted((REPO / "_proc").glob("*.ipynb")) if a.no_proc else proc_notebooks()
    for page, f in render(paths, Path(a.out)).items(): print(f)

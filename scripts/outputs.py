"""Run the notebooks in the small configuration and store their outputs in them, ready to commit.

    make outputs                                 # every notebook
    .venv/bin/python scripts/outputs.py nbs/05_metrics.ipynb ...

Each notebook runs in its own `nbdev-test --save --flags slow` process: cells flagged `slow` run too (the full
sweeps, whose tables the prose discusses), cells flagged `gpu` do not (they say so). GitHub, Colab and the docs site
then show figures, tables and numbers before a reader runs anything.
What a notebook stores must be the same on every machine and every run, so the outputs are then scrubbed:

* stderr (progress bars, warnings) is dropped;
* a cell marked `#| output: false` (Quarto's option: not shown on the site) keeps no output: the cells that
  print timings, which differ on every run;
* an interactive widget keeps a note that says to run the notebook (its state is not stored);
* machine paths (this folder, the temporary folder, the home folder) become placeholders, and a temporary folder's
  random name a fixed one;
* an exercise's solution (`#| code-fold: true`) is folded in JupyterLab as on the site (`jupyter.source_hidden`);
* then `nbdev-clean`, so that a later `nbdev-clean` leaves the notebooks unchanged (CI checks it).

`problems(nb)` lists what a stored notebook must not contain; tests/test_outputs.py runs it on every notebook.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "[An interactive widget: run this notebook (in Jupyter or Colab) to use it.]"
FLAGS = "slow"   # cells flagged so run too; `gpu` cells do not
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex")
# What a stored output must not contain: a machine's path, or a measured time (they differ on every machine and run).
MACHINE_PATH = re.compile(r"(?<![\w.<])(/work/|/home/|/Users/|/root/|/tmp/|/var/folders/|[A-Z]:\\\\Users)")
TIMING = re.compile(r"\b\d[\d,.]*\s?(ms|µs|us|seconds?|tokens/s|it/s|s/it)\b|\b\d[\d,.]*\s?s (of training|elapsed|per)\b"
                    r"|\bin \d[\d.]* ?s\b|\b\w*(seconds|per_second)\b|\btime_(ms|s)\b|\btokens/s\b|\btrain s\b")   # a time, or a table's column of times


TEMP_NAME = re.compile(r"<tmp>/tmp[A-Za-z0-9_]{8}(?![\w.-])")   # tempfile.mkdtemp's names: "tmp" and 8 random characters


def _places() -> list[tuple[str, str]]:
    "Machine paths and their placeholders, longest first."
    places = {str(REPO): "<repo>", str(REPO.parent): "<repo>/..", os.path.realpath(tempfile.gettempdir()): "<tmp>",
              tempfile.gettempdir(): "<tmp>", str(Path.home()): "~"}
    for var in ("CL_COURSE_DATA", "CL_COURSE_CACHE", "CL_COURSE_MODEL_DIR"):
        if os.environ.get(var): places[os.environ[var]] = f"${var}"
    return sorted(places.items(), key=lambda kv: -len(kv[0]))


def _text(v) -> str: return "".join(v) if isinstance(v, list) else v


def _directives(cell: dict) -> dict[str, str]:
    "A cell's `#| key: value` lines."
    out = {}
    for line in _text(cell["source"]).splitlines():
        if not line.startswith("#|"): break
        k, _, v = line[2:].partition(":")
        out[k.strip()] = v.strip()
    return out


def fold(cell: dict) -> None:
    "A `#| code-fold: true` cell (an exercise's solution) starts folded in JupyterLab too, not only on the site."
    if _directives(cell).get("code-fold") == "true": cell["metadata"].setdefault("jupyter", {})["source_hidden"] = True


def scrub(nb: dict) -> dict:
    "The notebook's outputs as they may be stored (see the module's docstring)."
    places = _places()
    def clean(s: str) -> str:
        for p, tag in places: s = re.sub(re.escape(p) + r"(?![\w.-])", lambda _: tag, s)   # whole path components only
        return TEMP_NAME.sub("<tmp>/tmpXXXXXXXX", s)   # a temporary folder's random name, the same on every run
    for cell in nb["cells"]:
        if cell["cell_type"] != "code": continue
        fold(cell)
        if _directives(cell).get("output") == "false": cell["outputs"] = []; continue
        kept = []
        for o in cell.get("outputs", []):
            if o["output_type"] == "stream":
                if o["name"] == "stderr": continue
                o["text"] = clean(_text(o["text"]))
            elif "data" in o:
                if WIDGET_MIME in o["data"]: o["data"] = {"text/plain": WIDGET_NOTE}
                for m in TEXT_MIMES:
                    if m in o["data"]: o["data"][m] = clean(_text(o["data"][m]))
            kept.append(o)
        cell["outputs"] = kept
    return nb


def problems(nb: dict) -> list[str]:
    "What a stored notebook must not hold: errors, stderr, widget state, machine paths, measured times, unfolded solutions."
    out = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and _directives(cell).get("code-fold") == "true" and not cell["metadata"].get("jupyter", {}).get("source_hidden"):
            out.append(f"cell {i} ({cell.get('id')}): a solution (code-fold) not folded in JupyterLab (jupyter.source_hidden)")
        for o in cell.get("outputs", []):
            where = f"cell {i} ({cell.get('id')})"
            if o["output_type"] == "error": out.append(f"{where}: an error ({o.get('ename')})")
            if o["output_type"] == "stream" and o["name"] == "stderr": out.append(f"{where}: stderr")
            if WIDGET_MIME in o.get("data", {}): out.append(f"{where}: a widget's view (its state is not stored)")
            texts = [_text(o["text"])] if o["output_type"] == "stream" else [_text(o.get("data", {}).get(m, "")) for m in TEXT_MIMES]
            for t in texts:
                if m := MACHINE_PATH.search(t): out.append(f"{where}: a machine path {t[max(0, m.start() - 30):m.end() + 30]!r}")
                if m := TIMING.search(t): out.append(f"{where}: a measured time {t[max(0, m.start() - 30):m.end() + 30]!r}")
    return out


def refresh(path: Path) -> list[str]:
    "Run one notebook with `nbdev-test --save`, scrub it, clean it; the problems left."
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run([bin_dir / "nbdev-test", str(path), "--n-workers", "1", "--save", "--flags", FLAGS], check=True, env=env)
    nb = scrub(json.loads(path.read_text()))
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    subprocess.run([bin_dir / "nbdev-clean", "--fname", str(path)], check=True, env=env)
    return problems(json.loads(path.read_text()))


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted((REPO / "nbs").glob("*.ipynb"))
    left = {p.name: refresh(p) for p in paths}
    for name, ps in left.items():
        for p in ps: print(f"{name}: {p}", file=sys.stderr)
    sys.exit(1 if any(left.values()) else 0)

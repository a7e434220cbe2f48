"""Numbers in the notebooks' prose come from their runs: a decimal number in a markdown cell must appear (up to its
rounding) in a stored output or in the code of the same notebook, or in the original notebook's text that the course
quotes. Numbers typed into prose go stale at the next rerun; print the sentence from the run instead.

`tests/prose_numbers_debt.json` lists the unsupported numbers that are still to be fixed, per notebook. The list may
only shrink: a new unsupported number fails, and so does an entry that is now supported (remove it).
    python tests/test_prose_numbers.py          # prints the current unsupported numbers as the debt file's JSON
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL = sorted((ROOT.parent / "shared" / "original").glob("*.txt"))
DEBT = Path(__file__).with_name("prose_numbers_debt.json")
NUM = re.compile(r"(?<![\w.])[−-]?\d[\d,]*\.\d+(?![\d+])")   # not a version such as "Python 3.11+"
TEXT_MIMES = ("text/plain", "text/markdown", "text/html", "text/latex")


def numbers(text: str) -> list[tuple[str, float]]:
    "Each decimal number in `text`: as written, and its value (thousands separators and the minus sign understood)."
    return [(m.group(), float(m.group().replace("−", "-").replace(",", ""))) for m in NUM.finditer(text)]


def shown(cells: list[dict]) -> list[float]:
    "The numbers a notebook's code and stored outputs show."
    out = []
    for c in cells:
        if c["cell_type"] != "code": continue
        out += [v for _, v in numbers("".join(c["source"]))]
        for o in c.get("outputs", []):
            text = "".join(o.get("text", [])) + "".join("".join(o.get("data", {}).get(k, [])) for k in TEXT_MIMES)
            out += [v for _, v in numbers(text)]
    return out


def supported(written: str, value: float, values: list[float]) -> bool:
    "`value` as written (its decimals say its rounding) matches a shown number, sign aside."
    tol = 0.5 * 10 ** -len(written.split(".")[1]) + 1e-12
    return any(abs(abs(value) - abs(w)) <= tol for w in values)


def unsupported() -> dict[str, list[str]]:
    quoted = [v for f in ORIGINAL for _, v in numbers(f.read_text(errors="replace"))]
    out = {}
    for f in sorted((ROOT / "nbs").glob("*.ipynb")):
        cells = json.loads(f.read_text())["cells"]
        values = shown(cells) + quoted
        miss = [s for c in cells if c["cell_type"] == "markdown" for s, v in numbers("".join(c["source"])) if not supported(s, v, values)]
        if miss: out[f.name] = miss
    return out


def test_the_unsupported_numbers_only_shrink():
    debt, now = json.loads(DEBT.read_text()), unsupported()
    new = {nb: [s for s in miss if s not in debt.get(nb, [])] for nb, miss in now.items()}
    new = {nb: m for nb, m in new.items() if m}
    assert not new, f"numbers in prose that no output or code of their notebook shows (print them from the run): {new}"
    paid = {nb: [s for s in old if s not in now.get(nb, [])] for nb, old in debt.items()}
    paid = {nb: m for nb, m in paid.items() if m}
    assert not paid, f"now supported: remove them from {DEBT.name}: {paid}"


def test_the_check_finds_a_stale_number():
    cells = [{"cell_type": "markdown", "source": ["The final perplexity is 109.6 and ACC 0.1134."]},
             {"cell_type": "code", "source": ["print(x)"], "outputs": [{"text": ["109.63\n", "0.1128\n"]}]}]
    values = shown(cells)
    assert supported("109.6", 109.6, values) and not supported("0.1134", 0.1134, values)
    assert numbers("−2.3 and 1,234.5") == [("−2.3", -2.3), ("1,234.5", 1234.5)]


if __name__ == "__main__":
    print(json.dumps(unsupported(), indent=1, ensure_ascii=False))

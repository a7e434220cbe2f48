"""The notebooks' stored outputs match the library they document: every `show_doc` output's [source] link points at the
line where the documented function or class is defined now (a library edit above it without `make outputs` leaves the
rendered docs linking to the wrong line)."""
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"cl_course/(\w+)\.py#L(\d+)")


def show_doc_links() -> list[tuple[str, str, str, int]]:
    "(notebook, documented name, module, line) for every stored show_doc output with a source link."
    out = []
    for nb in sorted((REPO / "nbs").glob("*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            for o in cell.get("outputs", []):
                text = "".join(o.get("data", {}).get("text/markdown", []))
                link, head = LINK.search(text), re.search(r"^#+\s+([\w.]+)", text, re.M)
                if link and head: out.append((nb.name, head.group(1).split(".")[-1], link.group(1), int(link.group(2))))
    return out


LINKS = show_doc_links()


def test_there_are_links_to_check():
    assert len(LINKS) >= 5 and len({m for _, _, m, _ in LINKS}) >= 3


@pytest.mark.parametrize("nb,name,module,line", LINKS, ids=[f"{nb}:{name}" for nb, name, _, _ in LINKS])
def test_a_source_link_points_at_its_definition(nb, name, module, line):
    lines = (REPO / "cl_course" / f"{module}.py").read_text(encoding="utf-8").splitlines()
    where = [i + 1 for i, s in enumerate(lines) if re.match(rf"\s*(async\s+)?(def|class)\s+{re.escape(name)}\b", s)]
    assert where, f"{name} is not defined in cl_course/{module}.py"
    starts = {w - k for w in where for k in range(4) if k == 0 or lines[w - 1 - k].lstrip().startswith("@")}   # decorators above it too
    assert line in starts, \
        f"{nb}: {name}'s [source] link says cl_course/{module}.py#L{line}, but it is defined at line {where}: run make outputs on {nb}"

"""The notebooks are stored with the outputs of a CPU run (`make outputs`, scripts/outputs.py), so GitHub, Colab and
the site show them before anything runs; what is stored holds no error, stderr, widget state, machine path or measured
time. The scrubbing itself is checked on a made-up notebook."""
import json
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import outputs  # noqa: E402

NOTEBOOKS = sorted((REPO / "nbs").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs(path):
    nb = json.loads(path.read_text())
    assert outputs.problems(nb) == []
    shown = [c for c in nb["cells"] if c["cell_type"] == "code" and c.get("outputs")]
    assert shown, f"{path.name} is stored without outputs: run `make outputs`"
    assert all(c.get("execution_count") is None and not c["metadata"].get("execution") for c in shown), "run nbdev-clean"


def _cell(src, *outs): return dict(cell_type="code", id="x", metadata={}, execution_count=None, source=src, outputs=list(outs))


def test_scrub_leaves_nothing_that_problems_finds(monkeypatch):
    tmp = tempfile.gettempdir()
    monkeypatch.setenv("CL_COURSE_DATA", "/data/wikitext")
    nb = dict(cells=[
        _cell("print(1)", dict(output_type="stream", name="stderr", text="100%|####| 3/3 [00:01<00:00, 2.9it/s]"),
              dict(output_type="stream", name="stdout", text=f"saved to {REPO}/runs/a.json and {tmp}/tmpab12/c.pt\n")),
        _cell("#| output: false\nprint(t)", dict(output_type="stream", name="stdout", text="resumed in 3.2 s; 1,234 tokens/s\n")),
        _cell("w", dict(output_type="display_data", metadata={}, data={
            outputs.WIDGET_MIME: {"model_id": "abc"}, "text/plain": "VBox(children=(IntSlider(value=3),))"})),
        _cell("df", dict(output_type="execute_result", metadata={}, execution_count=None,
                         data={"text/plain": "data: /data/wikitext/wiki.test.raw", "text/html": f"<td>{Path.home()}/x</td>"})),
    ])
    found = outputs.problems(json.loads(json.dumps(nb)))
    for kind in ("stderr", "machine path", "measured time", "widget"): assert any(kind in p for p in found), kind
    clean = outputs.scrub(nb)
    assert outputs.problems(clean) == []
    c0, c1, c2, c3 = clean["cells"]
    assert [o["text"] for o in c0["outputs"]] == ["saved to <repo>/runs/a.json and <tmp>/tmpab12/c.pt\n"]
    assert c1["outputs"] == [] and c2["outputs"][0]["data"] == {"text/plain": outputs.WIDGET_NOTE}
    assert c3["outputs"][0]["data"]["text/plain"] == "data: $CL_COURSE_DATA/wiki.test.raw"

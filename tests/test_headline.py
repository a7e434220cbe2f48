"README's and the course home's headline (table and findings) is generated from the committed benchmark run, and the two pages agree."
import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cl-course-run-cpu"
spec = importlib.util.spec_from_file_location("headline_figure", ROOT / "benchmarks" / "headline_figure.py")
headline = importlib.util.module_from_spec(spec); spec.loader.exec_module(headline)
SUMMARY = pd.read_csv(RESULTS / "summary.csv", index_col="method")


def test_readme_and_index_show_the_committed_run():
    text = headline.headline_markdown(SUMMARY)
    readme = (ROOT / "README.md").read_text()
    assert f"{headline.START}\n{text}\n{headline.END}" in readme, "run benchmarks/headline_figure.py ... --readme README.md"
    cells = json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"]
    shown = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    assert text in shown, "the course home's stored output is not the committed run's headline: make outputs NBS=nbs/index.ipynb"


def test_every_number_of_the_findings_is_in_the_table_or_computed_from_it():
    "The findings quote the table's cells (mean ± std) and a few numbers derived from them; nothing typed by hand."
    table, findings = headline.markdown_table(SUMMARY), headline.headline_findings(SUMMARY)
    import re
    for q in re.findall(r"-?\d+\.\d ± \d+\.\d", findings): assert q.lstrip("-") in table, q


def test_findings_refuse_a_run_that_contradicts_them():
    "A run where replay forgets as much as naive fine-tuning cannot be described by the findings: they refuse it."
    bad = SUMMARY.copy()
    bad.loc["replay", "forgetting_ppl"] = bad.loc["naive", "forgetting_ppl"]
    with pytest.raises(AssertionError): headline.headline_findings(bad)

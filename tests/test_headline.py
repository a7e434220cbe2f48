"README's and the course home's headline table is the committed benchmark run's, digit for digit, and the two pages agree."
import importlib.util
import json
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cl-course-run-cpu"
spec = importlib.util.spec_from_file_location("headline_figure", ROOT / "benchmarks" / "headline_figure.py")
headline = importlib.util.module_from_spec(spec); spec.loader.exec_module(headline)


def test_readme_and_index_show_the_committed_run():
    table = headline.markdown_table(pd.read_csv(RESULTS / "summary.csv", index_col="method"))
    index = "".join("".join(c["source"]) for c in json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"])
    assert table in (ROOT / "README.md").read_text()
    assert table in index


#!/usr/bin/env python
"""Draw the headline figure of a `cl-course run` results folder (final score against forgetting, in
accuracy and in perplexity, one point per method) and save it next to the results; print the
headline table (mean ± std over seeds) as README.md and nbs/index.ipynb show it.

    python benchmarks/headline_figure.py benchmarks/results/cl-course-run-cpu
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from cl_course.benchmark import plot_accuracy_vs_forgetting

COLUMNS = [("ACC_acc", "ACC", 4), ("BWT_acc", "BWT", 4), ("forgetting_acc", "forgetting", 4), ("final_ppl", "final ppl", 1),
           ("BWT_ppl", "BWT (ppl)", 1), ("forgetting_ppl", "forgetting (ppl)", 1), ("general_ppl_change", "Δ general ppl", 1)]


def markdown_table(summary: pd.DataFrame) -> str:
    "The headline table: mean ± std over seeds (the std left out for one seed), '–' where a metric does not apply."
    def cell(row, col, prec):
        m, s = row[col], row.get(f"{col}_std")
        if pd.isna(m): return "–"
        sign = "+" if (col.startswith("BWT") or col == "general_ppl_change") and m >= 0 else ""
        return f"{sign}{m:.{prec}f}" + (f" ± {s:.{prec}f}" if pd.notna(s) else "")
    head = "| method | " + " | ".join(name for _, name, _ in COLUMNS) + " | trainable params | extra memory (MB) |"
    rule = "|---|" + "---:|" * (len(COLUMNS) + 2)
    rows = [f"| {m} | " + " | ".join(cell(r, c, p) for c, _, p in COLUMNS) + f" | {int(r['trainable_params']):,} | {r['extra_memory_MB']:.2f} |"
            for m, r in summary.iterrows()]
    return "\n".join([head, rule, *rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="a folder written by `cl-course run --out`")
    p.add_argument("--name", default="headline.png", help="file name of the figure, in the results folder")
    args = p.parse_args()
    f = args.results / "summary.csv"
    if not f.exists(): p.error(f"{f} does not exist: run `cl-course run --out {args.results}` first")
    summary = pd.read_csv(f, index_col="method")
    fig, axs = plt.subplots(1, 2, figsize=(13, 4.8))
    plot_accuracy_vs_forgetting(summary, "accuracy", ax=axs[0])
    plot_accuracy_vs_forgetting(summary, "perplexity", ax=axs[1])
    fig.suptitle(f"cl-course run: {len(summary)} methods, {int(summary['seeds'].max())} seed(s)")
    fig.tight_layout()
    fig.savefig(args.results / args.name, dpi=110)
    print(f"wrote {args.results / args.name}\n")
    print(markdown_table(summary))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Draw the headline figure of a `cl-course run` results folder (final score against forgetting, in
accuracy and in perplexity, one point per method) and save it next to the results.

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
    print(f"wrote {args.results / args.name}")


if __name__ == "__main__":
    main()

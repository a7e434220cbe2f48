"The headline figure's labels never overlap: on the committed results and on points crowded into one spot."
import itertools
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from cl_course.benchmark import label_points, plot_accuracy_vs_forgetting

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "cl-course-run-cpu" / "summary.csv"


def overlaps(ax) -> list[tuple[str, str]]:
    r = ax.figure.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(r)) for t in ax.texts]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


@pytest.mark.parametrize("metric", ["accuracy", "perplexity"])
def test_headline_labels_do_not_overlap(metric):
    summary = pd.read_csv(RESULTS, index_col="method")
    fig, axs = plt.subplots(1, 2, figsize=(13, 4.8))   # as benchmarks/headline_figure.py draws it
    ax = axs[0 if metric == "accuracy" else 1]
    plot_accuracy_vs_forgetting(summary, metric, ax=ax)
    fig.canvas.draw()
    assert len(ax.texts) == len(summary)
    assert overlaps(ax) == []
    plt.close(fig)


def test_crowded_points_get_separate_labels():
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], "o")
    pts = [(0.5, 0.5, f"method-{i}") for i in range(6)]   # six labels for one spot
    label_points(ax, pts)
    fig.canvas.draw()
    assert sorted(t.get_text() for t in ax.texts) == sorted(p[2] for p in pts)
    assert overlaps(ax) == []
    plt.close(fig)

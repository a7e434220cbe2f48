"Continual-learning metrics against explicit loops, their sign conventions, bad inputs, and the plots."
import math
import subprocess
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cl_course.metrics import (average_accuracy, backward_transfer, direction, forgetting, forgetting_per_task,
                               forward_transfer, split_initial, summarize)
from cl_course.plots import method_table, plot_method_comparison, plot_stream_curves, plot_task_matrix

METRICS = ["accuracy", "perplexity", "loss"]


def random_full(T, metric, seed):
    "A random (T+1, T) matrix of valid values for `metric`."
    rng = np.random.default_rng(seed)
    if metric == "accuracy": return rng.uniform(0, 1, (T + 1, T))
    if metric == "perplexity": return rng.uniform(1, 500, (T + 1, T))
    return rng.uniform(0, 8, (T + 1, T))


# Reference implementations, written as plain loops straight from the papers' definitions.
def ref_acc(R):
    T = len(R)
    return sum(R[T - 1][i] for i in range(T)) / T

def ref_bwt(R, higher):
    T = len(R)
    tot = 0.0
    for i in range(T - 1):
        d = R[T - 1][i] - R[i][i]
        tot += d if higher else -d
    return tot / (T - 1)

def ref_fwt(R, b, higher):
    T = len(R)
    tot = 0.0
    for i in range(1, T):
        d = R[i - 1][i] - b[i]
        tot += d if higher else -d
    return tot / (T - 1)

def ref_forgetting(R, higher):
    T = len(R)
    fs = []
    for j in range(T - 1):
        earlier = [R[l][j] for l in range(j, T - 1)]   # the snapshots since task j was learned
        best = max(earlier) if higher else min(earlier)
        fs.append(best - R[T - 1][j] if higher else R[T - 1][j] - best)
    return fs


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("T", [2, 3, 5, 8])
@pytest.mark.parametrize("seed", range(3))
def test_against_loops(metric, T, seed):
    full = random_full(T, metric, seed)
    b, R = split_initial(full)
    assert np.array_equal(b, full[0]) and np.array_equal(R, full[1:])
    higher = metric == "accuracy"
    assert average_accuracy(R, metric) == pytest.approx(ref_acc(R))
    assert backward_transfer(R, metric) == pytest.approx(ref_bwt(R, higher))
    assert forward_transfer(R, b, metric) == pytest.approx(ref_fwt(R, b, higher))
    assert forgetting_per_task(R, metric) == pytest.approx(ref_forgetting(R, higher))
    assert forgetting(R, metric) == pytest.approx(np.mean(ref_forgetting(R, higher)))
    s = summarize(full, metric=metric)
    assert s["metric"] == metric and s["tasks"] == T
    assert [s[k] for k in ("ACC", "BWT", "FWT", "forgetting")] == pytest.approx(
        [ref_acc(R), ref_bwt(R, higher), ref_fwt(R, b, higher), np.mean(ref_forgetting(R, higher))])
    assert s["final"] == pytest.approx(list(R[-1]))
    assert summarize(R, b, metric) == s


def test_hand_computed_accuracy():
    b = [0.10, 0.20, 0.15]
    R = [[0.60, 0.25, 0.20], [0.65, 0.70, 0.30], [0.35, 0.50, 0.80]]
    s = summarize(R, b)
    assert s["ACC"] == pytest.approx(0.55)
    assert s["BWT"] == pytest.approx(-0.225)       # ((.35-.60) + (.50-.70)) / 2
    assert s["FWT"] == pytest.approx(0.10)         # ((.25-.20) + (.30-.15)) / 2
    assert s["forgetting"] == pytest.approx(0.25)  # ((.65-.35) + (.70-.50)) / 2: task 0 peaked after task 1
    assert s["forgetting_per_task"] == pytest.approx([0.30, 0.20])


def test_hand_computed_perplexity():
    b = [60, 80, 70]
    R = [[20, 50, 65], [35, 25, 55], [45, 40, 30]]
    s = summarize(R, b, metric="perplexity")
    assert s["ACC"] == pytest.approx(115 / 3)
    assert s["BWT"] == pytest.approx(-20)          # perplexity of old tasks rose by 20: negative, as for accuracy
    assert s["FWT"] == pytest.approx(22.5)         # earlier tasks lowered later tasks' perplexity: positive
    assert s["forgetting"] == pytest.approx(20)    # best earlier = minimum perplexity
    assert s["forgetting_per_task"] == pytest.approx([25, 15])


@pytest.mark.parametrize("metric", METRICS)
def test_sign_convention(metric):
    "A run that only gets worse on old tasks has BWT < 0 and forgetting > 0 for every metric."
    good, bad = {"accuracy": (0.8, 0.3), "perplexity": (20.0, 90.0), "loss": (3.0, 4.5)}[metric]
    T = 4
    R = np.full((T, T), bad)
    for i in range(T): R[i, i] = good
    assert backward_transfer(R, metric) < 0
    assert forgetting(R, metric) > 0
    # and a run whose old tasks improve has BWT > 0 and forgetting <= 0
    R2 = np.full((T, T), bad)
    R2[-1] = good
    assert backward_transfer(R2, metric) > 0
    assert forgetting(R2, metric) < 0
    # earlier tasks that help a later one: FWT > 0
    b = np.full(T, bad)
    R3 = np.full((T, T), good)
    assert forward_transfer(R3, b, metric) > 0
    assert direction(metric) == (1.0 if metric == "accuracy" else -1.0)


def test_loss_and_perplexity_agree_in_sign():
    full = random_full(5, "loss", 7)
    s_loss, s_ppl = summarize(full, metric="loss"), summarize(np.exp(full), metric="perplexity")
    # the means are in different units, but per task, forgetting in loss and in perplexity have the same sign (exp is monotonic)
    assert np.array_equal(np.sign(s_loss["forgetting_per_task"]), np.sign(s_ppl["forgetting_per_task"]))


def test_one_task_gives_nan():
    s = summarize([[0.2], [0.7]])
    assert s["ACC"] == pytest.approx(0.7)
    assert all(math.isnan(s[k]) for k in ("BWT", "FWT", "forgetting"))
    assert s["forgetting_per_task"] == []
    with np.errstate(all="raise"):  # no "mean of empty slice" warning either
        assert math.isnan(backward_transfer([[0.5]]))


def test_bad_inputs():
    R = np.array([[0.6, 0.2], [0.5, 0.7]])
    with pytest.raises(ValueError, match="must be square"):
        backward_transfer(np.ones((2, 3)) * 0.5)
    with pytest.raises(ValueError, match="split it first"):
        average_accuracy(np.vstack([[0.1, 0.1], R]))
    with pytest.raises(ValueError, match="expects a \\(T\\+1, T\\) matrix"):
        split_initial(R)
    with pytest.raises(ValueError, match="non-finite value \\(nan\\) at index \\(1, 0\\)"):
        forgetting([[0.6, 0.2], [np.nan, 0.7]])
    with pytest.raises(ValueError, match="non-finite value \\(inf\\)"):
        summarize([[20.0, np.inf], [30.0, 25.0]], metric="perplexity")
    with pytest.raises(ValueError, match="non-finite"):
        split_initial([[0.1, 0.2], [0.3, np.nan], [0.5, 0.6]])
    with pytest.raises(ValueError, match="needs the baseline scores b"):
        forward_transfer(R, None)
    with pytest.raises(ValueError, match="shape \\(2,\\), got shape \\(3,\\)"):
        forward_transfer(R, [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="Unknown metric 'bleu'"):
        summarize(R, metric="bleu")
    with pytest.raises(ValueError, match="Unknown metric"):
        plot_task_matrix(R, metric="acc")
    with pytest.raises(ValueError, match="not a valid accuracy"):
        average_accuracy(R * 100)               # percentages
    with pytest.raises(ValueError, match="not a valid accuracy"):
        backward_transfer([[20.0, 50.0], [35.0, 25.0]])   # perplexities without metric=
    with pytest.raises(ValueError, match="not a valid accuracy"):
        forward_transfer(R, [-0.1, 0.2])
    with pytest.raises(ValueError, match="not a valid perplexity"):
        forgetting(R, metric="perplexity")       # accuracies passed as perplexities
    with pytest.raises(ValueError, match="not a valid loss"):
        forgetting(-R, metric="loss")
    with pytest.raises(ValueError, match="do not also pass b"):
        summarize(np.vstack([[0.1, 0.1], R]), b=[0.1, 0.1])
    with pytest.raises(ValueError, match="must be numeric"):
        average_accuracy([["a", "b"], ["c", "d"]])


def test_importing_loads_no_matplotlib():
    "The metrics need numpy only: importing them, or the plots, leaves matplotlib unloaded until a plot is drawn."
    code = "import sys, cl_course.metrics, cl_course.plots; print('matplotlib' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stdout + r.stderr


def test_plots_return_figures():
    full = random_full(4, "accuracy", 0)
    ppl = random_full(4, "perplexity", 0)
    names = ["a", "b", "c", "d"]
    for fig in [plot_task_matrix(full, names), plot_task_matrix(full[1:]), plot_task_matrix(ppl, metric="perplexity"),
                plot_stream_curves(full, names), plot_stream_curves(full[1:]), plot_stream_curves(ppl, metric="perplexity")]:
        assert isinstance(fig, plt.Figure)
    fig, ax = plt.subplots()
    assert plot_task_matrix(full, ax=ax) is fig
    steps = np.arange(0, 41, 2)
    scores = np.random.default_rng(0).uniform(0, 1, (len(steps), 4))
    assert isinstance(plot_stream_curves(scores, names, steps=steps, boundaries=[10, 20, 30]), plt.Figure)
    with pytest.raises(ValueError, match="pass steps"):
        plot_stream_curves(scores)
    with pytest.raises(ValueError, match="boundaries must be increasing"):
        plot_stream_curves(scores, steps=steps, boundaries=[10, 50])
    with pytest.raises(ValueError, match="3 task names for 4 tasks"):
        plot_task_matrix(full, names[:3])
    plt.close("all")


def test_method_table_and_comparison():
    runs = {m: [summarize(random_full(3, "accuracy", 10 * k + s)) for s in range(3)] for k, m in enumerate(["naive", "ewc"])}
    tab = method_table(runs, ("ACC", "BWT", "FWT", "forgetting"))
    for m, rs in runs.items():
        for k in ("ACC", "BWT", "FWT", "forgetting"):
            vals = [r[k] for r in rs]
            assert tab.loc[m, k] == pytest.approx(np.mean(vals))
            assert tab.loc[m, f"{k}_std"] == pytest.approx(np.std(vals, ddof=1))
        assert tab.loc[m, "n"] == 3
    long = pd.DataFrame([{"method": m, **{k: r[k] for k in ("ACC", "BWT")}} for m, rs in runs.items() for r in rs])
    assert np.allclose(method_table(long, ("ACC", "BWT")).to_numpy(), method_table(runs, ("ACC", "BWT")).to_numpy())
    # lists of per-seed values inside one summary work too
    t2 = method_table({"x": {"ACC": [0.1, 0.3]}}, ("ACC",))
    assert t2.loc["x", "ACC"] == pytest.approx(0.2) and t2.loc["x", "ACC_std"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    fig = plot_method_comparison(runs, ("ACC", "BWT", "FWT", "forgetting"))
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 4
    fig2 = plot_method_comparison(pd.DataFrame({"ACC": [30.0, 25.0], "BWT": [-5.0, -1.0]}, index=["a", "b"]),
                                  ("ACC", "BWT"), metric="perplexity")
    assert "↓" in fig2.axes[0].get_title()          # lower average perplexity is better
    with pytest.raises(ValueError, match="has no 'FWT'"):
        method_table({"a": summarize(random_full(3, "accuracy", 0)[1:])}, ("FWT",))
    with pytest.raises(ValueError, match="2 axes for 3 metrics"):
        plot_method_comparison(runs, axes=plt.subplots(1, 2)[1])
    plt.close("all")

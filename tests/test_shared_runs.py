"""The committed headline (benchmarks/results/cl-course-run-cpu) is what the library makes now: every run's identity
matches (so `share_runs` puts all of them in the run cache, where the notebooks of the small pass read them), and
naive fine-tuning of seed 0, trained again here on one thread, gives the committed task matrices."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cl_course.benchmark import share_runs
from cl_course.config import course_config
from cl_course.registry import method_specs
from cl_course.stream import prepare_stream
from cl_course.train import Method, evaluate, train_task

HEADLINE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "cl-course-run-cpu"


@pytest.fixture(scope="module")
def meta():
    return json.loads((HEADLINE / "benchmark.json").read_text())


def test_every_committed_run_is_what_the_library_makes(meta):
    shared = share_runs(HEADLINE, course_config("small", "default"))
    assert sorted(shared) == sorted(f"{m}-seed{s}" for m in meta["methods"] for s in meta["seeds"]), \
        "the committed headline is not what the library makes now: run it again (benchmarks/README.md)"
    assert set(meta["methods"]) == set(method_specs())


def test_naive_trained_again_gives_the_committed_matrices():
    "The first task of naive fine-tuning, seed 0, on one thread as the headline was made: the committed rows 0 and 1."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stream = prepare_stream(course_config("small", "default", progress=False))
        model, method = stream.new_model(), Method()
        before = [evaluate(model, ev) for _, ev in stream.loaders]   # row 0: the starting model
        train_task(model, stream.loaders[0][0], method, stream.config, task_id=0)   # as run_stream trains task 0
        after = [evaluate(model, ev) for _, ev in stream.loaders]    # row 1
    finally: torch.set_num_threads(threads)
    committed = json.loads((HEADLINE / "runs" / "naive-seed0.json").read_text())
    for k in ("accuracy", "perplexity", "loss"):
        got = np.array([[r[k] for r in before], [r[k] for r in after]])
        np.testing.assert_allclose(got, np.array(committed[k])[:2], rtol=1e-6, err_msg=k)
    assert not np.allclose(committed["perplexity"][1], committed["perplexity"][0])   # training moved the scores

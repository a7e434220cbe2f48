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
from cl_course.stream import prepare_stream, run_stream
from cl_course.train import Method

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
    "One thread, as the headline was made: the same kernels, sums in the same order."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try: res = run_stream(Method(), prepare_stream(course_config("small", "default", progress=False)))
    finally: torch.set_num_threads(threads)
    committed = json.loads((HEADLINE / "runs" / "naive-seed0.json").read_text())
    for k in ("accuracy", "perplexity", "loss"):
        np.testing.assert_allclose(getattr(res, k), np.array(committed[k]), rtol=1e-6, err_msg=k)
    for k in ("accuracy", "perplexity"):
        np.testing.assert_allclose(res.general[k], committed["general"][k], rtol=1e-6, err_msg=f"general {k}")

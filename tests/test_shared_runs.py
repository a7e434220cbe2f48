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


def test_kept_prompts_and_adapters_give_the_committed_final_scores(monkeypatch):
    """The headline keeps the final prompts or adapters of the runs notebooks 09 and 11 look at (`run_benchmark` writes
    them as `.pt`, `share_runs` puts them in the cache): `run_stream` reads each back without training, and the model it
    restores, evaluated again here, scores the committed last row."""
    import dataclasses
    from cl_course.registry import build_method
    from cl_course.stream import cached_run_dir, evaluate_all, run_stream
    config = course_config("small", "default", progress=False)
    kept = sorted((HEADLINE / "runs").glob("*.pt"))
    assert {"prompts-seed0", "lora-per-task-seed0", "o-lora-seed0"} <= {f.stem for f in kept}
    shared = share_runs(HEADLINE, config)
    monkeypatch.setattr("cl_course.stream.train_task", lambda *a, **k: pytest.fail("trained instead of reading the weights back"))
    stream, threads = prepare_stream(config), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for f in kept:
            assert f.stem in shared
            name, seed = f.stem.rsplit("-seed", 1)
            view = dataclasses.replace(stream, config=config.replace(seed=int(seed)))
            method, model = build_method(name, None, int(seed), view.config), view.new_model()
            res = run_stream(method, view, checkpoint_dir=cached_run_dir(method, view), resume=True, model=model)
            committed = json.loads(f.with_suffix(".json").read_text())
            assert res.train_seconds == committed["train_seconds"] and res.train_tokens == committed["train_tokens"]
            again = evaluate_all(model, view, method)   # the restored weights, scored now
            for k in ("accuracy", "perplexity"):
                np.testing.assert_array_equal(getattr(res, k), np.array(committed[k]), err_msg=f"{f.stem} {k}")
                np.testing.assert_allclose(again[k], committed[k][-1], rtol=1e-6, err_msg=f"{f.stem} {k}")
    finally: torch.set_num_threads(threads)

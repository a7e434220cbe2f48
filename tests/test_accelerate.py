"""`accelerate launch` with two CPU processes (data parallel over gloo) against one process on the same stream.

`accelerate launch --cpu` starts a single process (Accelerate's simple launcher); two local processes come from
`--multi_gpu --num_processes 2`, which on a machine without CUDA joins them over gloo (`cl_course.train.distributed`).
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import run_main
from accelerate_run import run

HERE = Path(__file__).resolve().parent
LAUNCH = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no"]
ARGS = ["run", "--methods", "naive", "--max-train-blocks", "16", "--epochs", "1", "--quiet"]
needs_launcher = pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not installed")


def _run(cmd: list[str]) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr[-3000:]


@needs_launcher
def test_two_processes_give_the_one_process_task_matrix(tmp_path):
    "Dropout off: the same gradients up to the order of float sums, so the same task matrices (relative 1e-4)."
    run(str(tmp_path / "one"))   # one process: this one (an interpreter's imports less)
    _run([*LAUNCH, str(HERE / "accelerate_run.py"), str(tmp_path / "two")])
    one = np.load(tmp_path / "one.rank0.npz")
    two = [np.load(tmp_path / f"two.rank{r}.npz") for r in (0, 1)]
    assert int(one["world"]) == 1 and [int(t["world"]) for t in two] == [2, 2]   # really two processes
    for k in ("perplexity", "loss"):
        np.testing.assert_allclose(two[0][k], one[k], rtol=1e-4, err_msg=k)
        np.testing.assert_array_equal(two[1][k], two[0][k], err_msg=f"{k}: the processes' models diverged")
    # a near-tie may flip the top-1 token of a few of the ~1,000 evaluation targets per task
    np.testing.assert_allclose(two[0]["accuracy"], one["accuracy"], atol=3e-3)
    assert not np.allclose(one["perplexity"][1:], one["perplexity"][0], rtol=1e-3), "training changed nothing: the test would be vacuous"


@needs_launcher
def test_two_processes_match_the_plain_path(tmp_path):
    "`cl-course run` under the launcher, dropout on: each process draws its own dropout masks, hence a looser tolerance."
    code, err = run_main(*ARGS, "--out", tmp_path / "plain")   # the plain path in this process
    assert code == 0, err
    _run([*LAUNCH, "-m", "cl_course.cli", *ARGS, "--out", str(tmp_path / "two")])
    a, b = pd.read_csv(tmp_path / "plain" / "results.csv"), pd.read_csv(tmp_path / "two" / "results.csv")
    for col in ["ACC_acc", "BWT_acc", "final_ppl", "ppl_task0", "ppl_task3"]:
        np.testing.assert_allclose(b[col], a[col], rtol=2e-2, atol=2e-3, err_msg=col)
    ra, rb = (json.loads((tmp_path / d / "runs" / "naive-seed0.json").read_text()) for d in ("plain", "two"))
    np.testing.assert_array_equal(rb["perplexity"][0], ra["perplexity"][0])   # before training: the same model
    np.testing.assert_allclose(rb["perplexity"], ra["perplexity"], rtol=2e-2)
    np.testing.assert_allclose(rb["accuracy"], ra["accuracy"], atol=5e-3)

"`accelerate launch` with two CPU processes (data parallel) gives the plain command's results."
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

ARGS = ["run", "--methods", "naive", "--max-train-blocks", "16", "--epochs", "1", "--quiet"]


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not installed")
def test_two_processes_match_the_plain_path(tmp_path):
    plain = subprocess.run([sys.executable, "-m", "cl_course.benchmark", *ARGS, "--out", str(tmp_path / "plain")],
                           capture_output=True, text=True, timeout=900)
    assert plain.returncode == 0, plain.stderr
    two = subprocess.run(["accelerate", "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                          "--dynamo_backend", "no", "-m", "cl_course.benchmark", *ARGS, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = pd.read_csv(tmp_path / "plain" / "results.csv"), pd.read_csv(tmp_path / "two" / "results.csv")
    # the same gradient steps, summed in another order across two processes: equal up to float rounding and dropout
    for col in ["ACC_acc", "BWT_acc", "final_ppl", "ppl_task0", "ppl_task3"]:
        np.testing.assert_allclose(b[col], a[col], rtol=2e-2, atol=2e-3, err_msg=col)

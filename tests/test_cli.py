"The `cl-course` command: bad input exits with status 2 and one line, a run writes its table, --resume reuses it."
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

QUICK = ["--max-train-blocks", "16", "--epochs", "1", "--quiet"]


def cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "cl_course.benchmark", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900, cwd=cwd)


@pytest.mark.parametrize("args, msg", [
    (["run", "--methods", "naive,sgd"], "Unknown method(s) 'sgd'"),
    (["run", "--lr", "fast"], "'fast' is not a valid float"),
    (["run", "--lr", "0"], "must be > 0"),
    (["run", "--n-tasks", "0"], "must be >= 1"),
    (["run", "--seeds", "x"], "not a valid int"),
    (["run", "--ewc-gamma", "1.5"], "must be <= 1"),
    (["run", "--replay-mix", "nan"], "not finite"),
    (["run", "--model", "gpt5", "--methods", "naive"], "Unknown model 'gpt5'"),
    (["run", "--data", "/no/such/wikitext", "--methods", "naive"], "does not exist"),
    (["run", "--ewc-fisher", "diagonal"], "invalid choice"),
    (["launch"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(args, msg, tmp_path):
    r = cli(*args, cwd=tmp_path)   # an empty folder: the default --out (runs/benchmark) holds nothing
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cl-course"), r.stderr
    assert msg in lines[0]
    assert "Traceback" not in r.stderr


def test_help_lists_every_method_and_option():
    from cl_course.benchmark import METHODS
    r = cli("run", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())   # argparse wraps lines
    for m in METHODS: assert m in text
    for opt in ("--methods", "--model", "--data", "--n-tasks", "--seeds", "--out", "--resume", "--overwrite",
                "--ewc-lambda", "--ewc-fisher", "--lora-rank", "--prompt-len"):
        assert opt in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_no_data_reachable_exits_2(tmp_path):
    env = {"CL_COURSE_DATA": "", "HF_HUB_OFFLINE": "1"}
    r = cli("run", "--methods", "naive", "--out", str(tmp_path / "o"), *QUICK, env=env)
    assert r.returncode == 2 and "CL_COURSE_DATA" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_run_resume_and_refuse_other_configuration(tmp_path):
    out = tmp_path / "bench"
    r = cli("run", "--methods", "naive,replay", "--out", str(out), *QUICK)
    assert r.returncode == 0, r.stderr
    assert "naive" in r.stdout and "replay" in r.stdout and "ACC" in r.stdout
    table = pd.read_csv(out / "results.csv")
    assert list(table["method"]) == ["naive", "replay"]
    # the same folder again without --resume is refused, with --resume it reuses the finished runs
    r2 = cli("run", "--methods", "naive,replay", "--out", str(out), *QUICK)
    assert r2.returncode == 2 and "--resume" in r2.stderr
    r3 = cli("run", "--methods", "naive,replay", "--out", str(out), "--resume", *QUICK[:-1])
    assert r3.returncode == 0 and r3.stderr.count("read back") == 2, r3.stderr
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), table)
    # another configuration in the same folder: refused unless --overwrite
    r4 = cli("run", "--methods", "naive", "--out", str(out), "--lr", "0.002", *QUICK)
    assert r4.returncode == 2 and "different configuration" in r4.stderr and "lr" in r4.stderr


def test_interrupted_run_resumes_without_redoing_finished_methods(tmp_path):
    "Kill the command after the first method finished; --resume reads it back and runs only the rest."
    import signal, time
    out = tmp_path / "bench"
    p = subprocess.Popen([sys.executable, "-m", "cl_course.benchmark", "run", "--methods", "naive,replay", "--out", str(out), *QUICK],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not (out / "runs" / "naive-seed0.json").exists():
            assert p.poll() is None and time.time() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(p.pid, signal.SIGKILL); p.wait()
    naive_before = (out / "runs" / "naive-seed0.json").read_text()
    r = cli("run", "--methods", "naive,replay", "--out", str(out), "--resume", *QUICK[:-1])
    assert r.returncode == 0, r.stderr
    assert "naive (seed 0): finished earlier, read back" in r.stderr and "replay (seed 0): running" in r.stderr
    assert (out / "runs" / "naive-seed0.json").read_text() == naive_before

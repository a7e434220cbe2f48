"""The `cl-course` command: every mistake a user can make exits with status 2 and one line, Ctrl-C with 130 and
one line, the parser answers without importing PyTorch, a run writes its table and --resume reuses it."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from cli_helpers import one_line_of, run_main

QUICK = ["--max-train-blocks", "16", "--max-eval-blocks", "8", "--epochs", "1", "--quiet"]
SMOKE = ["--budget", "smoke", "--quiet"]   # two tasks, two steps each: the same code paths in seconds


def cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "cl_course.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900, cwd=cwd)


def stop(p: subprocess.Popen, sig=signal.SIGKILL) -> None:
    "Signal a process group that may already have ended (never hiding the test's own failure)."
    try: os.killpg(p.pid, sig)
    except ProcessLookupError: pass
    p.wait(timeout=60)


@pytest.mark.parametrize("args, msg", [
    (["run", "--methods", "naive,sgd"], "Unknown method(s) 'sgd'"),
    (["run", "--method", "naive"], "unrecognized arguments: --method"),   # no abbreviations
    (["run", "--lr", "fast"], "'fast' is not a valid float"),
    (["run", "--lr", "0"], "must be > 0"),
    (["run", "--n-tasks", "0"], "must be >= 1"),
    (["run", "--seeds", "x"], "not a valid int"),
    (["run", "--ewc-gamma", "1.5"], "must be <= 1"),
    (["run", "--replay-mix", "nan"], "not finite"),
    (["run", "--model", "gpt5", "--methods", "naive"], "Unknown model 'gpt5'"),
    (["run", "--data", "/no/such/wikitext", "--methods", "naive"], "does not exist"),
    (["run", "--ewc-fisher", "diagonal"], "invalid choice"),
    (["run", "--device", "tpu"], "is not a device"),
    (["run", "--resume", "--overwrite"], "choose one"),
    (["launch"], "invalid choice"),
    ([], "required: command"),
])
def test_bad_input_exits_2_with_one_line(args, msg, tmp_path, monkeypatch):
    "In this process through `main`, the command's entry point (two cases also through the real command)."
    monkeypatch.chdir(tmp_path)   # an empty folder: the default --out (runs/benchmark) holds nothing
    code, err = run_main(*args)
    assert code == 2, err
    assert msg in one_line_of(err)
    if args[:3] in (["run", "--methods", "naive,sgd"], []):   # with and without the methods' imports
        r = cli(*args, cwd=tmp_path)
        assert r.returncode == 2 and msg in one_line_of(r.stderr), r.stderr


def test_out_is_a_file(tmp_path):
    f = tmp_path / "README.md"; f.write_text("a file")
    code, err = run_main("run", "--out", f, "--methods", "naive")
    assert code == 2 and "is a file" in one_line_of(err)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu(tmp_path):
    code, err = run_main("run", "--device", "cuda", "--methods", "naive", "--out", tmp_path / "o")
    assert code == 2 and "no CUDA GPU" in one_line_of(err)


def test_full_size_offline_says_how_to_go_on(tmp_path):
    "Pretrained gpt2 with no hub and no cached copy (an empty HF_HOME): one line naming the ways out, no retries."
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    r = cli("run", "--size", "full", "--split", "test", "--methods", "naive", "--out", str(tmp_path / "o"), "--quiet", env=env)
    assert r.returncode == 2
    line = one_line_of(r.stderr)
    assert "Could not load the pretrained weights of 'gpt2'" in line and "--size small" in line


def test_parser_imports_no_torch():
    "--help and argument errors answer at once: parsing imports neither PyTorch nor transformers."
    code = ("import sys; from cl_course.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "[]" and "run" in r.stdout, r.stdout + r.stderr


def test_help_lists_every_method_and_option():
    from cl_course.registry import method_params, method_specs
    code, err, stdout = run_main("run", "--help", stdout=True)
    assert code == 0, err
    text = " ".join(stdout.split())   # argparse wraps lines
    for m in method_specs(): assert m in text
    for opt in ("--methods", "--model", "--data", "--n-tasks", "--seeds", "--out", "--resume", "--overwrite",
                "--ewc-lambda", "--ewc-fisher", "--lora-rank", "--prompt-len", "--memory-size", "--debug"):
        assert opt in text
    assert f"rank of each adapter (default: {method_params()['LoRAParams'].lora_rank})" in text   # defaults read from the declarations
    assert "(default: None)" not in text and "(default: False)" not in text


def test_no_data_reachable_exits_2(tmp_path):
    env = {"CL_COURSE_DATA": "", "HF_HUB_OFFLINE": "1"}
    r = cli("run", "--methods", "naive", "--out", str(tmp_path / "o"), *QUICK, env=env)
    assert r.returncode == 2 and "CL_COURSE_DATA" in one_line_of(r.stderr)


@pytest.mark.parametrize("after", [0.5, 0.9, 1.0, 1.5])
def test_ctrl_c_while_starting_up(tmp_path, after):
    "Ctrl-C during the first seconds (imports, data; 0.9-1.0 s once lost it in a __del__): one line, exit status 130."
    p = subprocess.Popen([sys.executable, "-m", "cl_course.cli", "run", "--methods", "naive", "--out", str(tmp_path / "o")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(after)
        assert p.poll() is None, p.communicate()
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally: stop(p)
    assert p.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cl-course: interrupted") and "Traceback" not in err, err


SWALLOWERS = {   # run_command replaced by code that swallows KeyboardInterrupt, as some libraries do
    "bare except": "def run(args):\n    while True:\n        try: time.sleep(0.05)\n        except BaseException: pass\n",
    "__del__": "class D:\n    def __del__(self): time.sleep(0.2)\n"
               "def run(args):\n    while True: D()\n",   # Python prints an exception raised in __del__ and goes on
}

@pytest.mark.parametrize("kind", SWALLOWERS)
def test_ctrl_c_swallowed_by_a_library_still_stops(tmp_path, kind):
    "A Ctrl-C that the running code swallows still ends the command: one line, exit status 130, no traceback."
    code = ("import sys, time\nimport cl_course.cli as c\n" + SWALLOWERS[kind] +
            "c.run_command = run\nprint('ready', flush=True)\nc.console()\n")
    p = subprocess.Popen([sys.executable, "-c", code, "run", "--out", str(tmp_path / "o")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.communicate()
        time.sleep(0.3)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally: stop(p)
    assert p.returncode == 130, err
    assert err.strip().splitlines() == [f"cl-course: interrupted; finished work is kept in {tmp_path / 'o'}: "
                                        "run the same command with --resume to continue"], err


def test_run_resume_and_refuse_other_configuration(tmp_path):
    "In this process (the real command's own paths are tested above): run, refuse, resume, refuse another configuration."
    out = tmp_path / "bench"
    code, err, stdout = run_main("run", "--methods", "naive,replay", "--out", str(out), *SMOKE, stdout=True)
    assert code == 0, err
    assert "naive" in stdout and "replay" in stdout and "ACC" in stdout
    table = pd.read_csv(out / "results.csv")
    assert list(table["method"]) == ["naive", "replay"]
    # the same folder again without --resume is refused, with --resume it reuses the finished runs
    code, err = run_main("run", "--methods", "naive,replay", "--out", str(out), *SMOKE)
    assert code == 2 and "--resume" in one_line_of(err), err
    code, err = run_main("run", "--methods", "naive,replay", "--out", str(out), "--resume", *SMOKE[:-1])
    assert code == 0 and err.count("read back") == 2, err
    assert "\r" not in err   # not a terminal: no progress bars, plain lines
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), table)
    # another configuration in the same folder: refused unless --overwrite
    code, err = run_main("run", "--methods", "naive", "--out", str(out), "--lr", "0.002", *SMOKE)
    assert code == 2 and "different configuration" in one_line_of(err) and "lr" in err, err


def test_interrupted_run_resumes_without_redoing_finished_methods(tmp_path):
    "Ctrl-C after the first method finished: exit 130, one line; --resume reads it back, says where it resumes, runs the rest."
    out = tmp_path / "bench"
    slow = ["--max-train-blocks", "32", "--epochs", "2", "--max-eval-blocks", "8", "--quiet"]   # replay's later tasks leave time to press Ctrl-C
    p = subprocess.Popen([sys.executable, "-m", "cl_course.cli", "run", "--methods", "naive,replay", "--out", str(out), *slow],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not (out / "runs" / "naive-seed0.json").exists():
            assert p.poll() is None and time.time() < deadline, p.communicate()
            time.sleep(0.2)
        while not (out / "runs" / "replay-seed0" / "checkpoint.pt").exists():   # replay has finished its first task
            assert p.poll() is None and time.time() < deadline, p.communicate()
            time.sleep(0.1)
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally: stop(p)
    assert p.returncode == 130 and err.strip().splitlines()[-1].startswith("cl-course: interrupted"), err
    assert "--resume" in err and "Traceback" not in err
    naive_before = (out / "runs" / "naive-seed0.json").read_text()
    code, err = run_main("run", "--methods", "naive,replay", "--out", str(out), "--resume", *slow[:-1])   # in this process
    assert code == 0, err
    assert "naive (seed 0): finished earlier, read back" in err
    assert "resuming replay seed 0 at task" in err, err
    assert (out / "runs" / "naive-seed0.json").read_text() == naive_before

"""`file_lock`: a second process waits while the first holds the lock (side-by-side runs pretrain a small model once)."""
import subprocess
import sys
import time

import pytest

pytest.importorskip("fcntl")

HOLD = """
import sys, time
from pathlib import Path
from cl_course.config import file_lock
lock, log, name, hold = sys.argv[1], Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
with file_lock(lock):
    with open(log, "a") as f: f.write(name + " in\\n")
    time.sleep(hold)
    with open(log, "a") as f: f.write(name + " out\\n")
"""


def test_a_second_process_waits_for_the_first(tmp_path):
    lock, log = tmp_path / "x.lock", tmp_path / "log"
    a = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), str(log), "A", "1.5"])
    for _ in range(600):   # until A holds the lock
        if log.exists(): break
        time.sleep(0.05)
    b = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), str(log), "B", "0"])
    assert a.wait(60) == 0 and b.wait(60) == 0
    assert log.read_text().split("\n")[:4] == ["A in", "A out", "B in", "B out"]   # without the lock: A in, B in, B out, A out


def test_the_lock_is_released_after_an_error(tmp_path):
    from cl_course.config import file_lock
    with pytest.raises(RuntimeError):
        with file_lock(tmp_path / "x.lock"): raise RuntimeError("inside")
    code = f"from cl_course.config import file_lock\nwith file_lock({str(tmp_path / 'x.lock')!r}): print('got it')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "got it", r.stderr

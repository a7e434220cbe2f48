"The set-up script's choice of PyTorch: a faked `nvidia-smi` decides CPU or CUDA, and the CPU build's sources fall back in order."
import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "scripts" / "bootstrap.py")
bootstrap = importlib.util.module_from_spec(spec); spec.loader.exec_module(bootstrap)


def fake_nvidia_smi(folder: Path, out: str, code: int) -> Path:
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\necho '{out}'\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.mark.parametrize("out, code, expected", [
    ("GPU 0: NVIDIA H200 (UUID: GPU-0a1b2c3d)", 0, "cuda"),
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", 9, "cpu"),
    ("No devices were found", 6, "cpu"),
])
def test_gpu_detection_follows_nvidia_smi(tmp_path, monkeypatch, out, code, expected):
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path, out, code)))
    monkeypatch.delenv("CL_COURSE_TORCH", raising=False)
    assert bootstrap.torch_choice() == expected


def test_no_nvidia_smi_means_cpu_and_the_override_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))   # an empty folder: no nvidia-smi
    monkeypatch.delenv("CL_COURSE_TORCH", raising=False)
    assert bootstrap.torch_choice() == "cpu"
    monkeypatch.setenv("CL_COURSE_TORCH", "cuda")
    assert bootstrap.torch_choice() == "cuda"
    assert bootstrap.torch_choice("cpu") == "cpu"
    with pytest.raises(SystemExit, match="auto, cpu or cuda"): bootstrap.torch_choice("rocm")


def test_cpu_build_sources_in_order(tmp_path):
    for name in ("torch-2.9.1+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
                 "torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl", "torch-2.13.0+cpu-cp312-cp312-manylinux_2_28_x86_64.whl"):
        (tmp_path / name).write_bytes(b"")
    wheel = bootstrap.local_cpu_wheel([tmp_path], "cp311")
    assert wheel.name.startswith("torch-2.13.0+cpu-cp311")   # the newest CPU build for this Python, never the CUDA one
    assert bootstrap.local_cpu_wheel([tmp_path], "cp313") is None
    assert bootstrap.torch_install("cuda", True, wheel)[0] == ["torch"]
    assert bootstrap.torch_install("cpu", True, wheel)[0] == ["torch", "--index-url", bootstrap.CPU_INDEX]
    assert bootstrap.torch_install("cpu", False, wheel)[0] == [str(wheel)]
    args, why = bootstrap.torch_install("cpu", False, None)
    assert args == ["torch"] and "CUDA build" in why


def test_dry_run_with_a_faked_gpu_plans_the_cuda_build(tmp_path):
    env = {**os.environ, "PATH": f"{fake_nvidia_smi(tmp_path, 'GPU 0: NVIDIA H200', 0)}:{os.environ['PATH']}"}
    env.pop("CL_COURSE_TORCH", None)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bootstrap.py"), "--venv", str(tmp_path / "venv"), "--dry-run"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "CUDA GPU is present" in r.stdout and "would run: pip install torch" in r.stdout
    assert not (tmp_path / "venv").exists()

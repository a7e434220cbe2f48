"""Set up, or reuse, the course's virtual environment: the right PyTorch for this machine, then the course.

`make run` and `make test` call this first; it does nothing when the environment is already up to date.

    python3 scripts/bootstrap.py [--venv .venv] [--torch auto|cpu|cuda] [--dry-run]

PyTorch is chosen before the course is installed, because pip would otherwise take PyPI's default
Linux wheel, a CUDA build of several GB, even on a machine without a GPU:

* a CUDA GPU (`nvidia-smi -L` lists one): PyPI's default build, which is the CUDA one on Linux;
* no CUDA GPU: the CPU build, from PyTorch's CPU index when it answers, else from a CPU wheel in a
  wheelhouse that pip is configured with (`find-links`), else PyPI's default build (with a warning);
* `--torch cpu|cuda`, or the environment variable `CL_COURSE_TORCH`, overrides the detection.

Standard library only: it runs before anything is installed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
EXTRAS = "dev"   # one environment for the main job and the tests


def has_cuda_gpu() -> bool:
    "Whether `nvidia-smi -L` runs and lists at least one GPU."
    exe = shutil.which("nvidia-smi")
    if exe is None: return False
    try: r = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired): return False
    return r.returncode == 0 and "GPU" in r.stdout


def torch_choice(override: str | None = None) -> str:
    "'cpu' or 'cuda': `override` (or $CL_COURSE_TORCH) if given, else 'cuda' when a CUDA GPU is present."
    choice = override or os.environ.get("CL_COURSE_TORCH") or "auto"
    if choice not in ("auto", "cpu", "cuda"): raise SystemExit(f"bootstrap: --torch must be auto, cpu or cuda, got {choice!r}")
    if choice != "auto": return choice
    return "cuda" if has_cuda_gpu() else "cpu"


def reachable(url: str, timeout: float = 5.0) -> bool:
    "Whether `url` answers an HTTP request within `timeout` seconds."
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout): return True
    except Exception: return False


def pip_find_links(python: str) -> list[Path]:
    "The local folders pip is configured to take wheels from (`find-links` in pip's config or $PIP_FIND_LINKS)."
    out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    values = re.findall(r"find-links='([^']*)'", out) + [os.environ.get("PIP_FIND_LINKS", "")]
    dirs = [Path(p.removeprefix("file://")) for v in values for p in v.split() if p and "://" not in p.removeprefix("file://")]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def local_cpu_wheel(dirs: list[Path], py_tag: str) -> Path | None:
    "The newest CPU build of torch for this Python (`py_tag`, e.g. 'cp311') in `dirs`, if any."
    def version(w: Path): return tuple(int(x) for x in re.findall(r"\d+", w.name.split("-")[1].split("+")[0]))
    wheels = [w for d in dirs for w in d.glob(f"torch-*+cpu-{py_tag}-*.whl")]
    return max(wheels, key=version) if wheels else None


def torch_install(choice: str, cpu_index_ok: bool, cpu_wheel: Path | None) -> tuple[list[str], str]:
    "The `pip install` arguments for PyTorch, and a line saying why."
    if choice == "cuda": return ["torch"], "a CUDA GPU is present: PyPI's default (CUDA) build"
    if cpu_index_ok: return ["torch", "--index-url", CPU_INDEX], f"no CUDA GPU: the CPU build from {CPU_INDEX}"
    if cpu_wheel is not None: return [str(cpu_wheel)], f"no CUDA GPU, PyTorch's CPU index out of reach: the CPU wheel {cpu_wheel.name} from pip's wheelhouse"
    return ["torch"], ("no CUDA GPU, but neither PyTorch's CPU index nor a local CPU wheel is reachable: taking PyPI's default "
                       "build (on Linux a CUDA build of several GB; it runs on the CPU too)")


def stamp(venv: Path) -> str:
    "What the installed course depends on: pyproject.toml and the extras."
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--venv", default=str(ROOT / ".venv"), help="the virtual environment's folder (created if missing)")
    p.add_argument("--torch", default=None, choices=["auto", "cpu", "cuda"], help="which PyTorch build (default: auto)")
    p.add_argument("--dry-run", action="store_true", help="print what would be installed, install nothing")
    args = p.parse_args(argv)
    venv = Path(args.venv).resolve()
    python = str(venv / "bin" / "python")
    say = lambda s: print(f"[bootstrap] {s}", flush=True)
    if not (venv / "bin" / "python").exists():
        if args.dry_run: say(f"would create {venv}"); python = sys.executable
        else:
            say(f"creating the virtual environment {venv}")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    has_torch = (venv / "bin" / "python").exists() and subprocess.run([python, "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)"]).returncode == 0
    if not has_torch:
        choice = torch_choice(args.torch)
        py_tag = "cp" + subprocess.run([python, "-c", "import sys; print(f'{sys.version_info[0]}{sys.version_info[1]}')"],
                                       capture_output=True, text=True, check=True).stdout.strip()
        cpu_ok = choice == "cpu" and reachable(CPU_INDEX + "/torch/")
        wheel = local_cpu_wheel(pip_find_links(python), py_tag) if choice == "cpu" and not cpu_ok else None
        pip_args, why = torch_install(choice, cpu_ok, wheel)
        say(f"PyTorch: {why}")
        if args.dry_run: say("would run: pip install " + " ".join(pip_args)); return 0
        subprocess.run([python, "-m", "pip", "install", "-q", *pip_args], check=True)
    marker = venv / ".cl_course-installed"
    if not (marker.exists() and marker.read_text() == stamp(venv)):
        if args.dry_run: say(f'would run: pip install -e ".[{EXTRAS}]"'); return 0
        say(f'installing the course: pip install -e ".[{EXTRAS}]"')
        subprocess.run([python, "-m", "pip", "install", "-q", "-e", f"{ROOT}[{EXTRAS}]"], check=True)
        marker.write_text(stamp(venv))
    version = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('torch'))"], capture_output=True, text=True).stdout.strip()
    say(f"ready: {venv} (torch {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Record the times of a fresh-clone CI run (`bash .ci/run > LOG`) in benchmarks/results/ci_times.json, as "final".

    python scripts/ci_times.py LOG --commit SHA --wall SECONDS

Reads `nbdev-test --timing`'s per-notebook lines (the small pass), the `[time] full size X.ipynb: N s` lines (the
full-size pass) and the `[time] <step>: N s` lines of `make test`'s lanes. The earlier "final" moves to "earlier".
The course home (nbs/index.ipynb) shows the per-notebook table from this file.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "ci_times.json"


def parse(log: str) -> dict:
    small = {m[1]: int(m[2]) for m in re.finditer(r"^(\S+\.ipynb): (\d+) secs$", log, re.M)}
    full = {m[1]: int(m[2]) for m in re.finditer(r"^\[time\] full size (\S+\.ipynb): (\d+) s$", log, re.M)}
    lanes = {m[1]: int(m[2]) for m in re.finditer(r"^\[time\] ((?!full size)[\w -]+): (\d+) s$", log, re.M)}
    if not small or not full: raise SystemExit("no per-notebook times in the log: was it a whole `bash .ci/run`?")
    return dict(small_pass_seconds=small, full_pass_seconds=full, lane_steps_seconds=lanes)


HOW = ("bash .ci/run on a fresh clone with ../shared beside it (make env from nothing, nbdev-export and nbdev-clean checks, "
       "nbdev-proc-nbs, make test). make test runs two lanes side by side (make -j2, OMP_NUM_THREADS=1 each): the small "
       "notebooks (one nbdev-test), the full-size pass (the Makefile's FULL_SHARED notebooks in one nbdev-test process, every "
       "other notebook in its own), and pytest in five parts (py-1..py-4 named files, py-rest the others), longest first, "
       "taken by whichever lane is free; each step prints '[time] <step>: N s' and the whole 'both lanes'. Notebook times "
       "from nbdev-test --timing (small) and the full pass's per-notebook lines. Times inside a lane are one-thread times "
       "with the other lane running.")
TARGETS = {"make test (both configurations)": ("both lanes", 20 * 60), "the whole .ci/run": (None, 40 * 60)}   # seconds


def targets(final: dict) -> dict:
    "Each target with the recorded seconds and whether they meet it."
    out = {}
    for name, (step, limit) in TARGETS.items():
        secs = final["wall_seconds"] if step is None else final["lane_steps_seconds"].get(step)
        if secs is not None: out[name] = f"{'met' if secs <= limit else 'NOT met'}: {secs} s against {limit} s ({final['commit']})"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log", type=Path)
    p.add_argument("--commit", required=True)
    p.add_argument("--wall", type=int, required=True, help="seconds of the whole .ci/run")
    a = p.parse_args()
    data = json.loads(OUT.read_text())
    if "final" in data: data.setdefault("earlier", {})[data["final"].get("commit", "previous")] = data["final"]
    data["final"] = dict(commit=a.commit, wall_seconds=a.wall, **parse(a.log.read_text(errors="replace")))
    data["how"], data["targets"] = HOW, targets(data["final"])
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: {len(data['final']['small_pass_seconds'])} notebooks, .ci/run {a.wall} s")


if __name__ == "__main__":
    main()

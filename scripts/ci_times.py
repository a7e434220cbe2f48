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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log", type=Path)
    p.add_argument("--commit", required=True)
    p.add_argument("--wall", type=int, required=True, help="seconds of the whole .ci/run")
    a = p.parse_args()
    data = json.loads(OUT.read_text())
    if "final" in data: data.setdefault("earlier", {})[data["final"].get("commit", "previous")] = data["final"]
    data["final"] = dict(commit=a.commit, wall_seconds=a.wall, **parse(a.log.read_text(errors="replace")))
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: {len(data['final']['small_pass_seconds'])} notebooks, .ci/run {a.wall} s")


if __name__ == "__main__":
    main()

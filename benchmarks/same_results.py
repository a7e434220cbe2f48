"""Whether two `cl-course run` folders hold the same results, bit for bit, timings aside (for refactors that must not move
a number; issue #13).

    python benchmarks/same_results.py BEFORE_DIR AFTER_DIR      # exit status 0 if every result column is identical

Compares results.csv column by column as text (the CSV holds each float's shortest exact repr, so equal text is equal
bits); the columns that time the run (`train_seconds`, `tokens_per_second`) are listed but not compared."""
import csv
import sys
from pathlib import Path

TIMINGS = ("train_seconds", "tokens_per_second")


def read(folder: Path) -> tuple[list[str], list[dict]]:
    with open(folder / "results.csv", newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames or []), list(r)


def main(argv=None) -> int:
    a, b = (Path(p) for p in (argv or sys.argv[1:]))
    (ca, ra), (cb, rb) = read(a), read(b)
    if ca != cb: print(f"different columns: {ca} vs {cb}"); return 1
    if len(ra) != len(rb): print(f"different numbers of rows: {len(ra)} vs {len(rb)}"); return 1
    differ = [c for c in ca if c not in TIMINGS and any(x[c] != y[c] for x, y in zip(ra, rb))]
    print(f"{len(ra)} rows; compared {len(ca) - len(TIMINGS)} columns, not the timings {', '.join(TIMINGS)}: "
          + ("identical" if not differ else f"DIFFERENT in {', '.join(differ)}"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

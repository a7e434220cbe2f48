#!/usr/bin/env python
"""Draw the headline figure of a `cl-course run` results folder (final score against forgetting, in
accuracy and in perplexity, one point per method) and save it next to the results; write the
headline (the table, mean ± std over seeds, and what it shows) into README.md between its markers.
nbs/index.ipynb renders the same headline from the same file when it runs.

    python benchmarks/headline_figure.py benchmarks/results/cl-course-run-cpu --readme README.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from cl_course.benchmark import plot_accuracy_vs_forgetting

COLUMNS = [("ACC_acc", "ACC", 4), ("BWT_acc", "BWT", 4), ("forgetting_acc", "forgetting", 4), ("final_ppl", "final ppl", 1),
           ("BWT_ppl", "BWT (ppl)", 1), ("forgetting_ppl", "forgetting (ppl)", 1), ("general_ppl_change", "Δ general ppl", 1)]


def markdown_table(summary: pd.DataFrame) -> str:
    "The headline table: mean ± std over seeds (the std left out for one seed), '–' where a metric does not apply."
    def cell(row, col, prec):
        m, s = row[col], row.get(f"{col}_std")
        if pd.isna(m): return "–"
        sign = "+" if (col.startswith("BWT") or col == "general_ppl_change") and m >= 0 else ""
        return f"{sign}{m:.{prec}f}" + (f" ± {s:.{prec}f}" if pd.notna(s) else "")
    head = "| method | " + " | ".join(name for _, name, _ in COLUMNS) + " | trainable params | extra memory (MB) | training (s) |"
    rule = "|---|" + "---:|" * (len(COLUMNS) + 3)
    rows = [f"| {m} | " + " | ".join(cell(r, c, p) for c, _, p in COLUMNS)
            + f" | {int(r['trainable_params']):,} | {r['extra_memory_MB']:.2f} | {cell(r, 'train_seconds', 0)} |"
            for m, r in summary.iterrows()]
    return "\n".join([head, rule, *rows])


def _pm(row, col: str, prec: int, signed: bool = False) -> str:
    m, sd = row[col], row.get(f"{col}_std")
    return f"{m:+.{prec}f}" if signed else f"{m:.{prec}f}" + (f" ± {sd:.{prec}f}" if pd.notna(sd) else "")


def _and(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def headline_findings(summary: pd.DataFrame) -> str:
    "What the headline table shows, as Markdown bullets, every number read from `summary` and every comparison checked."
    S = summary
    r = lambda m: S.loc[m]
    f = lambda m, c="forgetting_ppl", p=1: f"{r(m)[c]:.{p}f} ± {r(m)[f'{c}_std']:.{p}f}"
    out = []
    n, j = r("naive"), r("joint")
    assert n["forgetting_ppl"] > 3 * n["forgetting_ppl_std"] and j["final_ppl"] < n["final_ppl"]
    out.append(f"* **Naive fine-tuning forgets**: earlier topics end, on average, {f('naive')} points of perplexity above "
               f"their best. Joint training on all topics at once (no sequence, so no forgetting to measure) is the reference "
               f"it should approach (final perplexity {f('joint', 'final_ppl')} against {f('naive', 'final_ppl')}).")
    kept = [m for m in ("replay", "ewc", "online-ewc") if m in S.index]
    if kept:
        assert all(r(m)["forgetting_ppl"] < n["forgetting_ppl"] / 3 for m in kept)
        acc_share = max(r(m)["forgetting_acc"] for m in kept) / n["forgetting_acc"]
        names = ", ".join(kept[:-1]) + f" and {kept[-1]}" if len(kept) > 1 else kept[0]
        out.append(f"* **{names} cut forgetting in perplexity to a fraction of naive's** "
                   f"({', '.join(f('%s' % m) for m in kept)} points against {f('naive')}); in accuracy the cut is smaller: "
                   f"their forgetting is at most {acc_share:.0%} of naive's. All end better than naive fine-tuning in final "
                   f"perplexity ({', '.join(f(m, 'final_ppl') for m in kept)} against {f('naive', 'final_ppl')}).")
        assert all(r(m)["final_ppl"] < n["final_ppl"] for m in kept)
    iso = [m for m in ("prompts", "lora-per-task") if m in S.index]
    if iso:
        assert all(abs(r(m)["forgetting_ppl"]) < 1e-9 for m in iso)
        worse = [m for m in iso if r(m)["final_ppl"] > n["final_ppl"]]
        out.append(f"* **{' and '.join(iso)} forget nothing**, by construction, but need to know the task at test time"
                   + (f"; on this tiny model {' and '.join(worse)} end{'s' if len(worse) == 1 else ''} with a higher final perplexity than naive "
                      f"fine-tuning ({', '.join(f(m, 'final_ppl') for m in worse)} against {f('naive', 'final_ppl')})" if worse else "") + ".")
    shared = [m for m in ("lora-shared", "o-lora") if m in S.index]
    if shared:
        assert all(r(m)["forgetting_ppl"] < n["forgetting_ppl"] for m in shared)
        out.append(f"* **A shared LoRA adapter and O-LoRA forget less than full fine-tuning** ({', '.join(f(m) for m in shared)} "
                   f"points against {f('naive')}), training {int(r(shared[0])['trainable_params']):,} weights instead of "
                   f"{int(n['trainable_params']):,}.")
    lib = [m for m in ("agem", "derpp", "lwf", "si", "mas") if m in S.index]
    if lib:
        gap = lambda m: n["forgetting_ppl"] - r(m)["forgetting_ppl"]
        spread = lambda m: n["forgetting_ppl_std"] + r(m)["forgetting_ppl_std"]
        less = [m for m in lib if gap(m) > spread(m)]
        within = [m for m in lib if abs(gap(m)) <= spread(m)]
        more = [m for m in lib if -gap(m) > spread(m)]
        says = [f"{_and(ms)}: {what} ({', '.join(f(m) for m in ms)} points)" for ms, what in
                ((less, "less forgetting than naive fine-tuning by more than the two spreads added"),
                 (within, "as much as naive fine-tuning, within the two spreads added"),
                 (more, "more forgetting than naive fine-tuning")) if ms]
        t = {m: r(m)["train_seconds"] / n["train_seconds"] for m in lib}
        out.append(f"* **The methods every continual-learning library has**, against naive's {f('naive')} points of forgetting: "
                   + "; ".join(says) + f". They train in {min(t.values()):.1f}–{max(t.values()):.1f}× naive's time "
                   f"(slowest: {max(t, key=t.get)}).")
    g = S["general_ppl_change"]
    full = [m for m in ("naive", "joint", "replay", "ewc", "online-ewc") if m in S.index]
    light = [m for m in ("prompts", "lora-shared", "lora-per-task", "o-lora") if m in S.index]
    assert g["naive"] < 0 and g["joint"] < 0
    if light: assert g[light].abs().max() < g[full].abs().min()
    out.append(f"* **General text** (four articles in no topic): the 2-layer model is still learning English, so fine-tuning "
               f"every weight on any topic also *improves* its perplexity there (naive {f('naive', 'general_ppl_change')}, joint "
               f"{f('joint', 'general_ppl_change')})" + (f"; the methods that train only prompts or adapters change it least "
               f"(by at most {g[light].abs().max():.1f})" if light else "") + ". A pretrained `gpt2` starts from much better "
               "general ability, which we expect fine-tuning to erode instead (Luo et al., 2023, report such losses in larger "
               "models): that is the column to watch at full size.")
    return "\n".join(out)


def headline_markdown(summary: pd.DataFrame) -> str:
    "The headline as README.md and the course home show it: the table, then what it shows."
    return markdown_table(summary) + "\n\n" + headline_findings(summary)


START, END = "<!-- headline: generated by benchmarks/headline_figure.py -->", "<!-- end of headline -->"


def write_readme(readme: Path, summary: pd.DataFrame) -> None:
    "Replace README's text between the headline markers with `headline_markdown(summary)`."
    text = readme.read_text()
    if START not in text or END not in text: raise SystemExit(f"{readme} has no headline markers ({START} ... {END})")
    a, b = text.index(START) + len(START), text.index(END)
    readme.write_text(text[:a] + "\n" + headline_markdown(summary) + "\n" + text[b:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="a folder written by `cl-course run --out`")
    p.add_argument("--name", default="headline.png", help="file name of the figure, in the results folder")
    p.add_argument("--readme", type=Path, default=None, help="write the headline into this README (between its markers)")
    args = p.parse_args()
    f = args.results / "summary.csv"
    if not f.exists(): p.error(f"{f} does not exist: run `cl-course run --out {args.results}` first")
    summary = pd.read_csv(f, index_col="method")
    fig, axs = plt.subplots(1, 2, figsize=(13, 4.8))
    plot_accuracy_vs_forgetting(summary, "accuracy", ax=axs[0])
    plot_accuracy_vs_forgetting(summary, "perplexity", ax=axs[1])
    fig.suptitle(f"cl-course run: {len(summary)} methods, {int(summary['seeds'].max())} seed(s)")
    fig.tight_layout()
    fig.savefig(args.results / args.name, dpi=110)
    print(f"wrote {args.results / args.name}\n")
    if args.readme: write_readme(args.readme, summary); print(f"wrote the headline into {args.readme}")
    else: print(headline_markdown(summary))


if __name__ == "__main__":
    main()

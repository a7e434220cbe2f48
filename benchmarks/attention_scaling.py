#!/usr/bin/env python
"""Time and peak memory of one causal attention call against sequence length.

Sweeps the hand-written attention (`naive`: builds the full T x T score matrix) and PyTorch's
fused `scaled_dot_product_attention` (`sdpa`), forward only and forward + backward, with the
functions of `cl_course.attention_cost` (notebook nbs/02a_attention_cost.ipynb), and writes the results and
the fitted log-log exponents to benchmarks/results/attention_scaling_<device>.json.

    python benchmarks/attention_scaling.py --device cpu --lengths 64 128 256 512 1024 2048 4096
    python benchmarks/attention_scaling.py --device cuda      # 256 ... 32768 by default
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from cl_course.attention_cost import ATTENTION_IMPLS, attention_scaling, scaling_exponents

DEFAULT_LENGTHS = {"cpu": [64, 128, 256, 512, 1024, 2048, 4096],
                   "cuda": [256, 512, 1024, 2048, 4096, 8192, 16384, 32768]}
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available, else cpu)")
    p.add_argument("--lengths", type=int, nargs="+", default=None,
                   help=f"sequence lengths (default: cpu {DEFAULT_LENGTHS['cpu']}, cuda {DEFAULT_LENGTHS['cuda']})")
    p.add_argument("--impls", nargs="+", default=["naive", "sdpa"], choices=list(ATTENTION_IMPLS))
    p.add_argument("--modes", nargs="+", default=["forward", "forward+backward"], choices=["forward", "forward+backward"])
    p.add_argument("--n-head", type=int, default=12, help="heads (default 12, as in gpt2)")
    p.add_argument("--d-head", type=int, default=64, help="dimensions per head (default 64, as in gpt2)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per point; the best is kept")
    p.add_argument("--threads", type=int, default=1, help="CPU threads while measuring (0: PyTorch's default)")
    p.add_argument("--min-length", type=int, default=None,
                   help="fit exponents on lengths >= this (default: the 3rd-smallest length)")
    p.add_argument("--out", type=Path, default=None, help="output JSON (default: benchmarks/results/attention_scaling_<device>.json)")
    args = p.parse_args(argv)
    if any(t < 1 for t in args.lengths or []): p.error("--lengths must be positive")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda was asked for, but PyTorch sees no CUDA device.")
    lengths = sorted(args.lengths or DEFAULT_LENGTHS.get(device.type, DEFAULT_LENGTHS["cpu"]))
    min_length = args.min_length or lengths[min(2, len(lengths) - 1)]
    t0 = time.perf_counter()
    results = attention_scaling(lengths, impls=args.impls, modes=args.modes, verbose=True,
                                n_head=args.n_head, d_head=args.d_head, batch=args.batch, device=device,
                                dtype=getattr(torch, args.dtype), repeats=args.repeats,
                                threads=args.threads or None)
    payload = {
        "benchmark": "attention_scaling",
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": (args.threads or torch.get_num_threads()) if device.type == "cpu" else None,
        "config": {"lengths": lengths, "impls": args.impls, "modes": args.modes, "n_head": args.n_head,
                   "d_head": args.d_head, "batch": args.batch, "dtype": args.dtype, "repeats": args.repeats},
        "fit_min_length": min_length,
        "exponents": scaling_exponents(results, min_length),
        "results": results,
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    out = args.out or RESULTS / f"attention_scaling_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"\nfitted exponents (T >= {min_length}):")
    for e in payload["exponents"]:
        fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
        print(f"  {e['impl']:6s} {e['mode']:17s} time {fmt(e['time_exponent'])}  memory {fmt(e['memory_exponent'])}")
    print(f"wrote {out} ({payload['wall_s']} s)")
    return payload


if __name__ == "__main__":
    main()

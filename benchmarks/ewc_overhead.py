"""What EWC costs: the penalty's overhead on a training step, and per-sample Fisher gradients with `torch.func`
against a loop of single-sample backward passes. Everything is measured in one run, interleaved, median of repeats:
ratios, not absolute times (the machine may be shared).

    python benchmarks/ewc_overhead.py                  # CPU, tiny config
    python benchmarks/ewc_overhead.py --size full      # GPU, pretrained gpt2

1. EWC training step / naive training step: same model, same batch, same optimizer settings; the EWC method holds a
   Fisher and anchor for every parameter (as after the first task). Target: <= 1.05 on CPU for the tiny config.
   The penalty alone is also timed with `torch._foreach_*` (what `EWC.penalty` does) and with a Python loop over
   the parameters.
2. The per-sample (empirical) Fisher on the same blocks with `torch.func` (vmap over grad) and with one backward pass
   per block: time ratio, and the largest difference between the two (they must agree).
3. The exact Fisher of a few target tokens, computed with `cl_course.ewc.exact_sq_grads` (|context| + d backward passes
   per token) and by brute force (one backward pass per vocabulary entry), with their agreement (`--exact-tokens 0`
   skips it).

Writes benchmarks/results/ewc_overhead.json.
"""
import argparse, json, statistics, time
from pathlib import Path

import torch


def _sync():
    if torch.cuda.is_available(): torch.cuda.synchronize()


def _max_rel_diff(a: dict, b: dict) -> float:
    "Largest |a - b| relative to the largest |b|, over all parameters."
    scale = max(v.abs().max().item() for v in b.values())
    return max((a[n] - b[n]).abs().max().item() for n in a) / scale


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["small", "full"], default=None)
    ap.add_argument("--repeats", type=int, default=15, help="interleaved repeats of each measurement")
    ap.add_argument("--steps", type=int, default=5, help="training steps per timed repeat")
    ap.add_argument("--fisher-blocks", type=int, default=32, help="blocks for the per-sample Fisher comparison")
    ap.add_argument("--exact-tokens", type=int, default=2, help="target tokens for the exact-Fisher comparison (0: skip)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ewc_overhead.json"))
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)

    from cl_course.ewc import EWC, exact_sq_grads, exact_sq_grads_bruteforce, fisher_diag, keep_positions, next_token_targets
    from cl_course.train import Method, _to, course_config, make_optimizer, prepare_stream, training_step

    cfg = course_config(a.size, progress=False, pretrain_articles=0)   # the weights' values do not matter for timing
    stream = prepare_stream(cfg)
    loader = stream.loaders[0][0]
    model = stream.new_model()
    device = next(model.parameters()).device
    batch = _to(next(iter(loader)), device)
    n_params = sum(p.numel() for p in model.parameters())

    # 1. training step: naive vs EWC (a Fisher and anchor for every trainable parameter)
    ewc = EWC(max_fisher_samples=16)
    ewc.after_task(model, 0, loader)
    runs = {}
    for name, method in (("naive", Method()), ("ewc", ewc)):
        params = method.trainable_parameters(model)
        opt, sched = make_optimizer(params, cfg, 10**6)
        runs[name] = (method, opt, sched, params)

    def step_time(name):
        method, opt, sched, params = runs[name]
        _sync(); t0 = time.perf_counter()
        for _ in range(a.steps): training_step(model, batch, method, 1, opt, sched, cfg, params)
        _sync(); return (time.perf_counter() - t0) / a.steps

    for name in runs: step_time(name)   # warm-up
    steps = {"naive": [], "ewc": []}
    for r in range(a.repeats):
        for name in (("naive", "ewc") if r % 2 == 0 else ("ewc", "naive")): steps[name].append(step_time(name))
    med = {k: statistics.median(v) for k, v in steps.items()}

    # the penalty alone, forward and backward: foreach (EWC.penalty) vs a Python loop over parameters
    named = dict(model.named_parameters())
    def pen_foreach():
        ewc.penalty(model, 1).backward()
    def pen_loop():
        sum((ewc.fisher[n] * (named[n] - ewc.anchor[n]) ** 2).sum() for n in ewc.fisher).mul(0.5 * ewc.lam).backward()
    pen = {"foreach": [], "python_loop": []}
    for f in (pen_foreach, pen_loop): f()
    for r in range(a.repeats):
        for name, f in ((("foreach", pen_foreach), ("python_loop", pen_loop)) if r % 2 == 0 else (("python_loop", pen_loop), ("foreach", pen_foreach))):
            model.zero_grad(set_to_none=True)
            _sync(); t0 = time.perf_counter()
            for _ in range(10): f()
            _sync(); pen[name].append((time.perf_counter() - t0) / 10)
    model.zero_grad(set_to_none=True)

    # 2. per-sample Fisher: torch.func vs loop, same blocks
    blocks = [b for b, _ in zip(loader, range(max(1, a.fisher_blocks // cfg.batch_size)))]
    fisher = {"torch_func": [], "loop": []}
    out = {}
    for name, vec in (("torch_func", True), ("loop", False)): out[name] = fisher_diag(model, blocks, "empirical", vectorize=vec)
    for r in range(max(3, a.repeats // 3)):
        for name, vec in ((("torch_func", True), ("loop", False)) if r % 2 == 0 else (("loop", False), ("torch_func", True))):
            _sync(); t0 = time.perf_counter(); out[name] = fisher_diag(model, blocks, "empirical", vectorize=vec); _sync()
            fisher[name].append(time.perf_counter() - t0)
    fmed = {k: statistics.median(v) for k, v in fisher.items()}

    res = dict(
        device=str(device), torch=torch.__version__, threads=torch.get_num_threads(), model=cfg.model, params=n_params,
        batch_size=cfg.batch_size, block_size=cfg.block_size, repeats=a.repeats, steps_per_repeat=a.steps,
        train_step_seconds=steps, train_step_median=med, ewc_over_naive_step=med["ewc"] / med["naive"],
        penalty_seconds=pen, penalty_median={k: statistics.median(v) for k, v in pen.items()},
        penalty_share_of_naive_step=statistics.median(pen["foreach"]) / med["naive"],
        fisher_blocks=sum(len(b["input_ids"]) for b in blocks), fisher_seconds=fisher, fisher_median=fmed,
        loop_over_torch_func=fmed["loop"] / fmed["torch_func"], fisher_max_rel_diff=_max_rel_diff(out["torch_func"], out["loop"]))

    # 3. exact Fisher of a few tokens: |context| + d directions vs one backward pass per class
    if a.exact_tokens > 0:
        b0 = blocks[0]
        ids = b0["input_ids"][:1].to(device)
        tgt = keep_positions(next_token_targets(b0)[:1], a.exact_tokens, torch.Generator().manual_seed(0)).to(device)
        model.eval()
        t0 = time.perf_counter(); fast = exact_sq_grads(model, ids, tgt); _sync(); t_fast = time.perf_counter() - t0
        t0 = time.perf_counter(); slow = exact_sq_grads_bruteforce(model, ids, tgt); _sync(); t_slow = time.perf_counter() - t0
        res.update(exact_tokens=a.exact_tokens, exact_seconds=t_fast, exact_bruteforce_seconds=t_slow,
                   bruteforce_over_exact=t_slow / t_fast, exact_max_rel_diff=_max_rel_diff(fast, slow),
                   vocab_size=model.get_output_embeddings().weight.shape[0])

    out_path = Path(a.out); out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=1))
    print(f"EWC step / naive step: {res['ewc_over_naive_step']:.3f}  (median {med['ewc']*1e3:.1f} vs {med['naive']*1e3:.1f} ms; "
          f"penalty alone {res['penalty_median']['foreach']*1e3:.2f} ms with foreach, {res['penalty_median']['python_loop']*1e3:.2f} ms with a loop)")
    print(f"per-sample Fisher, loop / torch.func: {res['loop_over_torch_func']:.2f}  (max relative difference {res['fisher_max_rel_diff']:.1e})")
    if a.exact_tokens > 0:
        print(f"exact Fisher of {a.exact_tokens} tokens: brute force / ours {res['bruteforce_over_exact']:.1f}  "
              f"(max relative difference {res['exact_max_rel_diff']:.1e})")
    print(f"-> {out_path}")


if __name__ == "__main__":
    main()

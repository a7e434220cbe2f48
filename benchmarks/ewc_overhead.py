"""What EWC costs: the penalty's overhead on a training step, the per-sample Fisher computed three ways, and the exact
Fisher against brute force. Every comparison runs its variants interleaved (A B C, C B A, ...) after a warm-up, with the
thread count pinned, and reports min, median and spread = (max - min) / median of the repeats; a spread above 10 % is
flagged "noisy". Ratios are of medians measured in the same run (the machine may be shared: the JSON says how much).

    python benchmarks/ewc_overhead.py                      # CPU, the course's tiny config, 1 thread
    python benchmarks/ewc_overhead.py --threads 2 --out benchmarks/results/ewc_overhead_2threads.json
    python benchmarks/ewc_overhead.py --stand-in           # per-sample Fisher only, full-size GPT-2 with random weights
    python benchmarks/ewc_overhead.py --size full          # GPU, pretrained gpt2

1. EWC training step / naive training step: same model, same batch, same optimizer settings; the EWC method holds a
   Fisher and anchor for every parameter (as after the first task). Run in `--step-processes` fresh processes (7 by
   default), each interleaving its own repeats: on this shared 2-core VM one process's ratio of medians moved by several
   percent between runs of the same code, while each repeat's ratio to the naive repeat next to it in time varies
   less, so a process's estimate is the median of those paired ratios, and the record's is the median over the
   processes (each process's ratio of medians is kept too). Also timed: the same step with the penalty as it
   was before `QuadraticPenalty` (list kernels forward, autograd's per-tensor backward), and the penalty alone three
   ways (`EWC.penalty`, autograd through the list kernels, a Python loop over the parameters).
2. The per-sample (empirical) Fisher of the same blocks, `fisher_diag(..., per_sample=...)`: layer by layer ("hooks"),
   with `torch.func` ("vmap") and with one backward pass per block ("loop", the reference), next to the `batched`
   Fisher of the same blocks (one forward and backward pass of the batch: the floor for any exact per-block method,
   which needs that forward, that backward to the activations and per-block weight gradients costing as much as the
   batch's). Agreement with the loop: the largest over weight tensors of max|a - b| / max|b|; the same against the
   loop run in float64 (the float32 loop is not exact either). Peak memory (RSS) of one call of each, each in a fresh
   process (so that no other call's memory is counted), above that process's memory before the call.
3. The exact Fisher of a few target tokens with `cl_course.fisher.exact_sq_grads` (|context| + d backward passes per
   token) and by brute force (one backward pass per vocabulary entry), with their agreement (`--exact-tokens 0` skips it).

`--stand-in` runs part 2 only, on `transformers.GPT2LMHeadModel(GPT2Config())` (124 M parameters, random weights: the
size of `gpt2` without a download) and random token blocks. Writes benchmarks/results/ewc_overhead.json
(ewc_overhead_gpt2_standin.json with --stand-in).
"""
import argparse, copy, json, statistics, subprocess, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent / "tests"))   # oracles: the brute-force reference
from timing import Machine, PeakRSS, interleaved, summary


def _sync():
    if torch.cuda.is_available(): torch.cuda.synchronize()


def global_rel_diff(a: dict, b: dict) -> float:
    "Largest |a - b| over all entries, relative to the largest |b| over all entries."
    return max((a[n] - b[n]).abs().max().item() for n in b) / max(v.abs().max().item() for v in b.values())


def max_rel_diff(a: dict, b: dict) -> float:
    "Largest over the weight tensors of max|a - b| / max|b| (each tensor relative to its own largest entry)."
    return max((a[n] - b[n]).abs().max().item() / b[n].abs().max().item() for n in b if b[n].abs().max() > 0)


def timed(f):
    "f as a variant for `interleaved`: runs it and returns its seconds."
    def run():
        _sync(); t0 = time.perf_counter(); f(); _sync()
        return time.perf_counter() - t0
    return run


TINY = dict(n_layer=2, n_embd=64, n_head=2)   # --tiny: GPT-2's vocabulary and positions, two small layers

WAYS = {"hooks": "layer by layer (per_sample='hooks', the default)", "vmap": "torch.func (per_sample='vmap')",
        "loop": "one backward pass per block (per_sample='loop', the reference)",
        "batched_floor": "the batched Fisher: one forward and backward pass of the batch (a lower bound)"}


def run_way(model, blocks: list[dict], way: str) -> dict:
    "The Fisher of `blocks` computed `way` (one of WAYS)."
    from cl_course.fisher import fisher_diag
    return fisher_diag(model, blocks, "batched") if way == "batched_floor" else fisher_diag(model, blocks, "empirical", per_sample=way)


def course_setup(a):
    "(config, first task's training loader, model) of the course's configuration; the weights' values do not matter for timing."
    from cl_course.config import course_config
    from cl_course.stream import prepare_stream
    cfg = course_config(a.size, progress=False, pretrain_articles=0)
    stream = prepare_stream(cfg)
    return cfg, stream.loaders[0][0], stream.new_model()


def fisher_setup(a, setup=None):
    "(model, blocks) of part 2: the course's model and its first training blocks, or the stand-in and random blocks."
    if a.stand_in:
        from transformers import GPT2Config, GPT2LMHeadModel
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(**(TINY if a.tiny else {}))).eval().to(a.device)
        B, T = a.fisher_blocks or 4, a.block_size
        ids = torch.randint(0, model.config.vocab_size, (B, T), generator=torch.Generator().manual_seed(0))
        mask = torch.ones_like(ids); mask[-1, -T // 8:] = 0   # the last block padded at its end
        return model, [{k: v.to(a.device) for k, v in dict(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).items()}]
    from cl_course.train import _to
    cfg, loader, model = setup or course_setup(a)
    device = next(model.parameters()).device
    return model, [_to(b, device) for b, _ in zip(loader, range(max(1, (a.fisher_blocks or 32) // cfg.batch_size)))]


def peak_memory(a, way: str) -> dict:
    "Peak memory (MB) of one call of `way` (resident on a CPU, allocated on a GPU), in a fresh process running this script with --peak-memory-of."
    args = [sys.executable, __file__, "--peak-memory-of", way, "--threads", str(a.threads), "--block-size", str(a.block_size), "--device", a.device]
    args += (["--stand-in"] if a.stand_in else []) + (["--tiny"] if a.tiny else []) + (["--size", a.size] if a.size else [])
    args += ["--fisher-blocks", str(a.fisher_blocks)] if a.fisher_blocks else []
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])


def per_sample_fisher(a, model, blocks: list[dict]) -> dict:
    "Part 2: the empirical Fisher of `blocks` three ways and the batched Fisher, interleaved; ratios, agreement and memory."
    from cl_course.fisher import fisher_diag
    times = interleaved({w: timed(lambda w=w: run_way(model, blocks, w)) for w in WAYS}, a.repeats)
    res = {w: summary(t) for w, t in times.items()}
    values = {w: run_way(model, blocks, w) for w in ("hooks", "vmap", "loop")}
    with torch.no_grad(): m64 = copy.deepcopy(model).double()
    f64 = fisher_diag(m64, blocks, "empirical", per_sample="loop")
    del m64
    med = {w: r["median"] for w, r in res.items()}
    return dict(
        blocks=sum(len(b["input_ids"]) for b in blocks), block_size=blocks[0]["input_ids"].shape[1], variants=WAYS, timing=res,
        loop_over_hooks=med["loop"] / med["hooks"], loop_over_vmap=med["loop"] / med["vmap"],
        loop_over_batched_floor=med["loop"] / med["batched_floor"], ratio_of="medians",
        loop_over_hooks_of_mins=res["loop"]["min"] / res["hooks"]["min"], loop_over_vmap_of_mins=res["loop"]["min"] / res["vmap"]["min"],
        loop_over_batched_floor_of_mins=res["loop"]["min"] / res["batched_floor"]["min"],
        hooks_over_batched_floor=med["hooks"] / med["batched_floor"], vmap_over_batched_floor=med["vmap"] / med["batched_floor"],
        max_rel_diff_hooks_vs_loop=max_rel_diff(values["hooks"], values["loop"]),
        max_rel_diff_vmap_vs_loop=max_rel_diff(values["vmap"], values["loop"]),
        max_rel_diff_vs_float64={w: max_rel_diff(values[w], f64) for w in ("hooks", "vmap", "loop")},
        max_rel_diff_measure="max over weight tensors n of max|a_n - b_n| / max|b_n|, b = the loop's Fisher (or the float64 loop's)",
        global_rel_diff_hooks_vs_loop=global_rel_diff(values["hooks"], values["loop"]),
        global_rel_diff_measure="max over all entries of |a - b| / max over all entries of |b| (the looser measure used before)",
        peak_memory_MB={w: peak_memory(a, w) for w in WAYS} if a.peak_memory else "not measured (--no-peak-memory)",
        noisy=any(r["noisy"] for r in res.values()))


def stand_in(a) -> dict:
    "Part 2 on a full-size GPT-2 with random weights and random token blocks."
    model, blocks = fisher_setup(a)
    return dict(model=f"GPT2LMHeadModel(GPT2Config({'**TINY' if a.tiny else ''})), random weights", device=str(next(model.parameters()).device),
                device_name=torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu", params=sum(p.numel() for p in model.parameters()),
                attn_implementation=model.config._attn_implementation, fisher=per_sample_fisher(a, model, blocks))


def autograd_ewc_class():
    "EWC with the penalty it had before `QuadraticPenalty`: the same list kernels forward, differentiated by autograd."
    from cl_course.ewc import EWC
    class AutogradEWC(EWC):
        def penalty(self, model, task_id):
            params, sqrt_f, anchor = self._tensors(model)
            d = torch._foreach_sub(params, anchor)
            torch._foreach_mul_(d, sqrt_f)
            return 0.5 * self.lam * (torch.stack(torch._foreach_norm(d)).pow(2).sum() + self.const)
    return AutogradEWC


def step_methods(model, loader):
    "(EWC, the same EWC with the penalty differentiated by autograd), holding a Fisher and anchor for every parameter (as after a first task)."
    from cl_course.ewc import EWC
    ewc = EWC(max_fisher_samples=16)
    ewc.after_task(model, 0, loader)
    autograd_ewc = autograd_ewc_class()(max_fisher_samples=16)
    autograd_ewc.fisher, autograd_ewc.anchor = ewc.fisher, ewc.anchor
    return ewc, autograd_ewc


def step_times(a, setup=None, methods=None) -> dict[str, list[float]]:
    "Part 1 in this process: seconds per training step of naive, EWC and EWC with autograd's penalty, `a.repeats` interleaved repeats."
    from cl_course.train import Method, _to, make_optimizer, training_step
    cfg, loader, model = setup or course_setup(a)
    batch = _to(next(iter(loader)), next(model.parameters()).device)
    ewc, autograd_ewc = methods or step_methods(model, loader)
    def steps(method):
        params = method.trainable_parameters(model)
        opt, sched = make_optimizer(params, cfg, 10**6)
        return timed(lambda: [training_step(model, batch, method, 1, opt, sched, cfg, params) for _ in range(a.steps)])
    variants = {"naive": steps(Method()), "ewc": steps(ewc), "ewc_autograd_foreach": steps(autograd_ewc)}
    return {k: [t / a.steps for t in v] for k, v in interleaved(variants, a.repeats).items()}


def step_times_in_fresh_process(a) -> dict[str, list[float]]:
    "`step_times` in a fresh process running this script with --step-times-only."
    args = [sys.executable, __file__, "--step-times-only", "--threads", str(a.threads), "--repeats", str(a.repeats), "--steps", str(a.steps)]
    args += ["--size", a.size] if a.size else []
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])


def course(a) -> dict:
    "Parts 1-3 on the course's model and data."
    from cl_course.fisher import exact_sq_grads, keep_positions, next_token_targets
    from oracles import exact_sq_grads_bruteforce   # tests/oracles.py: the reference, not part of the library

    cfg, loader, model = setup = course_setup(a)
    device = next(model.parameters()).device
    res = dict(model=cfg.model, params=sum(p.numel() for p in model.parameters()), batch_size=cfg.batch_size,
               block_size=cfg.block_size, steps_per_repeat=a.steps)

    # 1. training step: naive vs EWC, in fresh processes (one process's ratio moves by several %)
    ewc, autograd_ewc = step_methods(model, loader)
    runs = ([step_times(a, setup, (ewc, autograd_ewc))] if a.step_processes == 1 else
            [step_times_in_fresh_process(a) for _ in range(a.step_processes)])
    step = {k: summary([t for r in runs for t in r[k]]) for k in runs[0]}   # every repeat of every process
    paired = lambda r, k: statistics.median(x / y for x, y in zip(r[k], r["naive"]))   # repeat by repeat: neighbours in time
    of_medians = lambda r, k: statistics.median(r[k]) / statistics.median(r["naive"])
    for k in ("ewc", "ewc_autograd_foreach"):
        per_proc = [paired(r, k) for r in runs]
        res[f"{k}_over_naive_step"] = statistics.median(per_proc)
        res[f"{k}_over_naive_step_per_process"] = per_proc
        res[f"{k}_over_naive_step_spread"] = (max(per_proc) - min(per_proc)) / statistics.median(per_proc)
        res[f"{k}_over_naive_step_ratio_of_medians_per_process"] = [of_medians(r, k) for r in runs]
        res[f"{k}_over_naive_step_ratio_of_medians"] = statistics.median(res[f"{k}_over_naive_step_ratio_of_medians_per_process"])
    res.update(train_step=step, step_processes=len(runs), repeats_per_process=len(runs[0]["naive"]),
               ewc_over_naive_step_of="the median over fresh processes of each process's median of paired ratios (EWC repeat r / "
                                      "naive repeat r, run next to each other); spread = (max - min) / median over the processes; "
                                      "the same with each process's ratio of medians in *_ratio_of_medians")

    # the penalty alone, forward and backward, 10 calls per repeat: EWC.penalty (QuadraticPenalty: list kernels forward
    # and backward), the same list kernels differentiated by autograd (the penalty before), a Python loop over parameters
    named = dict(model.named_parameters())
    def pen_fused(): ewc.penalty(model, 1).backward()
    def pen_autograd(): autograd_ewc.penalty(model, 1).backward()
    def pen_loop(): sum((ewc.fisher[n] * (named[n] - ewc.anchor[n]) ** 2).sum() for n in ewc.fisher).mul(0.5 * ewc.lam).backward()
    pen = interleaved({k: timed(lambda f=f: [f() for _ in range(10)]) for k, f in
                       {"fused": pen_fused, "autograd_foreach": pen_autograd, "python_loop": pen_loop}.items()}, a.repeats)
    pen = {k: summary([t / 10 for t in v]) for k, v in pen.items()}
    model.zero_grad(set_to_none=True)
    res.update(penalty=pen, penalty_share_of_naive_step=pen["fused"]["median"] / step["naive"]["median"],
               penalty_autograd_over_fused=pen["autograd_foreach"]["median"] / pen["fused"]["median"])

    # 2. per-sample Fisher of the same blocks, three ways
    _, blocks = fisher_setup(a, setup)
    res["fisher"] = per_sample_fisher(a, model, blocks)

    # 3. exact Fisher of a few tokens: |context| + d directions vs one backward pass per class
    if a.exact_tokens > 0:
        b0 = blocks[0]
        ids = b0["input_ids"][:1]
        tgt = keep_positions(next_token_targets(b0)[:1].cpu(), a.exact_tokens, torch.Generator().manual_seed(0)).to(device)
        model.eval()
        out = {}
        def exact(): out["ours"] = exact_sq_grads(model, ids, tgt)
        def brute(): out["brute"] = exact_sq_grads_bruteforce(model, ids, tgt)
        n = max(5, a.repeats // 2)   # a brute-force repeat takes ~10 s per token on the tiny model
        ex = {k: summary(v) for k, v in interleaved({"ours": timed(exact), "bruteforce": timed(brute)}, n).items()}
        res["exact"] = dict(tokens=a.exact_tokens, repeats=n, vocab_size=model.get_output_embeddings().weight.shape[0], timing=ex,
                            bruteforce_over_ours=ex["bruteforce"]["median"] / ex["ours"]["median"],
                            max_rel_diff=max_rel_diff(out["ours"], out["brute"]))
    res["device"] = str(device)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["small", "full"], default=None)
    ap.add_argument("--stand-in", action="store_true", help="per-sample Fisher only, on GPT2LMHeadModel(GPT2Config()) with random weights")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats of each measurement, >= 5 (default 15; 5 with --stand-in)")
    ap.add_argument("--steps", type=int, default=5, help="training steps per timed repeat")
    ap.add_argument("--fisher-blocks", type=int, default=None, help="blocks for the per-sample Fisher (default 32; 4 with --stand-in)")
    ap.add_argument("--block-size", type=int, default=128, help="tokens per block with --stand-in")
    ap.add_argument("--exact-tokens", type=int, default=1, help="target tokens for the exact-Fisher comparison (0: skip)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads, pinned (default 1)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="where --stand-in runs (default: cuda if there is one)")
    ap.add_argument("--tiny", action="store_true", help=f"with --stand-in: GPT-2's vocabulary in a tiny model ({TINY}), for a dry run")
    ap.add_argument("--no-peak-memory", dest="peak_memory", action="store_false", help="skip the peak-memory processes of part 2")
    ap.add_argument("--out", default=None)
    ap.add_argument("--step-processes", type=int, default=7, help="fresh processes for the training-step comparison (1: this process)")
    ap.add_argument("--step-times-only", action="store_true", help=argparse.SUPPRESS)   # internal: part 1 once, print its seconds
    ap.add_argument("--peak-memory-of", choices=list(WAYS), help=argparse.SUPPRESS)   # internal: one call, print its memory
    a = ap.parse_args(argv)
    a.repeats = a.repeats or (5 if a.stand_in else 15)
    if a.repeats < 5: ap.error("--repeats must be >= 5")
    if a.step_processes < 1: ap.error("--step-processes must be >= 1")
    torch.set_num_threads(a.threads)
    if a.step_times_only:
        print(json.dumps(step_times(a)))
        return
    if a.peak_memory_of:
        model, blocks = fisher_setup(a)
        if a.device.startswith("cuda"):   # the GPU's allocations, not the process's resident memory
            _sync(); before = torch.cuda.memory_allocated(); torch.cuda.reset_peak_memory_stats()
            run_way(model, blocks, a.peak_memory_of); _sync(); peak = torch.cuda.max_memory_allocated()
            print(json.dumps(dict(before=before / 2**20, peak=peak / 2**20, above_before=(peak - before) / 2**20, memory="cuda allocated")))
            return
        with PeakRSS() as m: run_way(model, blocks, a.peak_memory_of)
        print(json.dumps(dict(before=m.start / 2**20, peak=m.peak / 2**20, above_before=m.above_start / 2**20)))
        return
    machine = Machine()
    res = dict(torch=torch.__version__, threads=torch.get_num_threads(), repeats=a.repeats, warmup_rounds=1,
               interleaved="A B C, then C B A, ...", spread="(max - min) / median", noisy_above=0.10)
    res.update(stand_in(a) if a.stand_in else course(a))
    res["machine"] = machine.record()
    default = "ewc_overhead_gpt2_standin.json" if a.stand_in else "ewc_overhead.json"
    out_path = Path(a.out or Path(__file__).parent / "results" / default); out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=1))

    f = res["fisher"]
    ms = lambda s: f"{s['median'] * 1e3:.0f} ms (spread {s['spread']:.0%})"
    if not a.stand_in:
        print(f"EWC step / naive step: {res['ewc_over_naive_step']:.3f}, the median over {res['step_processes']} processes of their "
              "medians of paired ratios: " + ", ".join(f"{x:.3f}" for x in res["ewc_over_naive_step_per_process"])
              + f" (ratios of medians: {res['ewc_over_naive_step_ratio_of_medians']:.3f}; all repeats: "
              f"{ms(res['train_step']['ewc'])} vs {ms(res['train_step']['naive'])})")
    print(f"per-sample Fisher of {f['blocks']} blocks: loop {ms(f['timing']['loop'])}, layer by layer {ms(f['timing']['hooks'])}, "
          f"torch.func {ms(f['timing']['vmap'])}, batched floor {ms(f['timing']['batched_floor'])}")
    print(f"  layer by layer / floor {f['hooks_over_batched_floor']:.2f}, torch.func / floor {f['vmap_over_batched_floor']:.2f}")
    print(f"  loop / layer by layer {f['loop_over_hooks']:.2f}, loop / torch.func {f['loop_over_vmap']:.2f}, loop / floor "
          f"{f['loop_over_batched_floor']:.2f}; max relative difference {f['max_rel_diff_hooks_vs_loop']:.1e} (hooks), "
          f"{f['max_rel_diff_vmap_vs_loop']:.1e} (vmap); against float64: "
          + ", ".join(f"{w} {v:.1e}" for w, v in f["max_rel_diff_vs_float64"].items()))
    if isinstance(f["peak_memory_MB"], dict):
        print("  peak memory above the process's before the call (MB; resident on a CPU, allocated on a GPU): "
              + ", ".join(f"{w} {m['above_before']:.0f}" for w, m in f["peak_memory_MB"].items()))
    if "exact" in res:
        print(f"exact Fisher of {a.exact_tokens} token(s): brute force / ours {res['exact']['bruteforce_over_ours']:.1f} "
              f"(max relative difference {res['exact']['max_rel_diff']:.1e})")
    print(f"machine: other processes used {res['machine']['other_processes_cores']:.2f} cores on average -> {out_path}")
    return res


if __name__ == "__main__":
    main()

"""Training throughput of the course's loop (`cl_course.train.train_task`) against a plain `transformers.Trainer`: same
model, same data, same batch size, one epoch each. The two run interleaved (A B, then B A, ...) after one untimed run
of each, with the thread count pinned; the JSON has the min, median and spread = (max - min) / median of each (flagged
"noisy" above 10 %), the ratio of the medians (and of the mins) measured in the same run, and how much CPU other
processes used meanwhile (the machine may be shared).

    python benchmarks/train_throughput.py                 # CPU, tiny config, 1 thread
    python benchmarks/train_throughput.py --size full     # GPU, pretrained gpt2

Writes benchmarks/results/train_throughput_<device>.json.
"""
import argparse, json, sys, tempfile, time
from unittest import mock
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from timing import Machine, interleaved, summary


TRAINER_OPTIM = {False: "adamw_torch", True: "adamw_torch_fused"}   # Trainer's AdamW as the course's: `fused_adamw` (its own default is fused)


def measure(cfg, repeats: int = 5, fast: bool = False, backend: str = "inductor") -> dict:
    """One epoch of task 0's training blocks under `cfg`, with the course's loop and with `transformers.Trainer`,
    interleaved after an untimed round of each: the timings, tokens per second of the medians, their ratio, the
    model's parameter count and what else ran on the machine meanwhile. `fast`: each also with its fast options
    (`torch.compile` with `backend` and fused AdamW: the course's `fast=True`, Trainer's `torch_compile` and
    `adamw_torch_fused`); the untimed round holds the compilation. Both use the same AdamW kernel: Trainer's `optim` follows
    `cfg.fused_adamw` (`TRAINER_OPTIM`), not Trainer's own default (fused)."""
    if repeats < 5: raise ValueError(f"repeats must be >= 5, got {repeats}.")
    machine = Machine()
    from transformers import Trainer, TrainingArguments
    from cl_course.models import n_params
    from cl_course.train import Method, train_task
    from cl_course.stream import prepare_stream
    stream = prepare_stream(cfg)
    loader = stream.loaders[0][0]
    data = loader.dataset
    n_tokens = data.n_tokens
    cuda = torch.cuda.is_available()

    def ours(fast=False):
        model = stream.new_model()
        t0 = time.perf_counter(); train_task(model, loader, Method(), cfg.replace(fast=fast), task_id=0)
        if cuda: torch.cuda.synchronize()
        return time.perf_counter() - t0

    def trainer(fast=False):
        model = stream.new_model()
        opts = dict(torch_compile=True, torch_compile_backend=backend, optim="adamw_torch_fused") if fast else dict(optim=TRAINER_OPTIM[cfg.fused_adamw])
        with tempfile.TemporaryDirectory() as d:
            args = TrainingArguments(output_dir=d, per_device_train_batch_size=cfg.batch_size, num_train_epochs=1,
                                     learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=int(cfg.warmup_frac * len(loader)),
                                     lr_scheduler_type=cfg.schedule, max_grad_norm=cfg.grad_clip, report_to=[],
                                     save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=cfg.seed,
                                     bf16=cuda and cfg.mixed_precision, dataloader_num_workers=0, use_cpu=not cuda, **opts)
            t = Trainer(model=model, args=args, train_dataset=data)
            t0 = time.perf_counter(); t.train()
            if cuda: torch.cuda.synchronize()
            return time.perf_counter() - t0

    threads = torch.get_num_threads()
    runs = {"cl_course": ours, "transformers.Trainer": trainer}
    if fast: runs |= {"cl_course fast": lambda: ours(True), "transformers.Trainer fast": lambda: trainer(True)}
    from cl_course import train
    with mock.patch.object(train, "COMPILE_BACKEND", backend):   # the course's fast path compiles with `backend`, here only
        times = interleaved(runs, repeats)
    if torch.get_num_threads() != threads: raise RuntimeError(f"the thread count changed to {torch.get_num_threads()} during the run")
    res = {k: summary(v) for k, v in times.items()}
    med = {k: r["median"] for k, r in res.items()}
    return dict(device="cuda" if cuda else "cpu", device_name=torch.cuda.get_device_name() if cuda else None,
                torch=torch.__version__, threads=threads, model=cfg.model, n_params=n_params(stream.new_model()),
                tokens=n_tokens, steps=len(loader), batch_size=cfg.batch_size, block_size=cfg.block_size,
                bf16_autocast=cuda and cfg.mixed_precision, fused_adamw=cfg.fused_adamw, trainer_optim=TRAINER_OPTIM[cfg.fused_adamw], repeats=repeats, warmup_rounds=1,
                interleaved="A B, then B A, ...", spread="(max - min) / median", noisy_above=0.10, timing=res,
                tokens_per_second_of_median={k: n_tokens / v for k, v in med.items()},
                ratio_ours_over_trainer=med["transformers.Trainer"] / med["cl_course"], ratio_of="medians (speed: Trainer's seconds / ours)",
                ratio_of_mins=res["transformers.Trainer"]["min"] / res["cl_course"]["min"],
                **(dict(compile_backend=backend, ratio_fast_over_plain=med["cl_course"] / med["cl_course fast"],
                        ratio_fast_over_trainer_fast=med["transformers.Trainer fast"] / med["cl_course fast"]) if fast else {}),
                noisy=any(r["noisy"] for r in res.values()), machine=machine.record())


def batch_sweep(cfg, batch_sizes: list[int], repeats: int = 3, backend: str = "inductor") -> dict:
    """The course's fast path (`fast=True`) on the same blocks at each batch size in `batch_sizes`: one epoch per repeat,
    after an untimed one (it holds the compilation for that batch's shapes); median seconds, tokens/s and, on a GPU, the
    peak memory allocated. What the batch choice buys: a larger batch fills the device until the arithmetic saturates."""
    from cl_course.stream import prepare_stream
    from cl_course.train import Method, train_task
    from cl_course import train
    cuda, rows = torch.cuda.is_available(), {}
    for b in batch_sizes:
        c = cfg.replace(batch_size=b, fast=True)
        stream = prepare_stream(c)
        loader = stream.loaders[0][0]
        def epoch():
            model = stream.new_model()
            if cuda: torch.cuda.synchronize()
            t0 = time.perf_counter(); train_task(model, loader, Method(), c, task_id=0)
            if cuda: torch.cuda.synchronize()
            return time.perf_counter() - t0
        if cuda: torch.cuda.reset_peak_memory_stats()
        with mock.patch.object(train, "COMPILE_BACKEND", backend):
            epoch()   # untimed: compilation
            t = summary([epoch() for _ in range(repeats)])
        rows[str(b)] = dict(batch_size=b, blocks=len(loader.dataset), steps=len(loader), tokens=loader.dataset.n_tokens, timing=t,
                            tokens_per_second=loader.dataset.n_tokens / t["median"],
                            peak_memory_MB=torch.cuda.max_memory_allocated() / 2**20 if cuda else None)
    return dict(batch_sizes=list(batch_sizes), block_size=cfg.block_size, repeats=repeats, compile_backend=backend, rows=rows)


def report(out: dict) -> str:
    "The measurement in two lines of text."
    lines = [f"{k}: median {r['median']:.2f} s, min {r['min']:.2f} s, spread {r['spread']:.0%}{' (noisy)' if r['noisy'] else ''}"
             for k, r in out["timing"].items()]
    return "\n".join(lines + [f"speed ratio (ours / Trainer): {out['ratio_ours_over_trainer']:.2f} of medians, {out['ratio_of_mins']:.2f} "
                               f"of mins; other processes used {out['machine']['other_processes_cores']:.2f} cores on average"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["small", "full"], default=None)
    ap.add_argument("--blocks", type=int, default=128, help="training blocks per measurement")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats of each (>= 5)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads, pinned (default 1)")
    a = ap.parse_args()
    if a.repeats < 5: ap.error("--repeats must be >= 5")
    torch.set_num_threads(a.threads)
    from cl_course.config import course_config
    cfg = course_config(a.size, max_train_blocks=a.blocks, epochs=1, progress=False, pretrain_articles=0)
    out = measure(cfg, a.repeats)
    path = Path(__file__).parent / "results" / f"train_throughput_{out['device']}.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"{report(out)} -> {path}")


if __name__ == "__main__":
    main()

"""Training throughput of the course's loop (`cl_course.train.train_task`) against a plain `transformers.Trainer`,
same model, same data, same batch size, measured in one run (alternating, median of repeats): a ratio, not an absolute time.

    python benchmarks/train_throughput.py                 # CPU, tiny config
    python benchmarks/train_throughput.py --size full     # GPU, pretrained gpt2

Writes benchmarks/results/train_throughput_<device>.json.
"""
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["small", "full"], default=None)
    ap.add_argument("--blocks", type=int, default=128, help="training blocks per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from transformers import Trainer, TrainingArguments
    from cl_course.train import Method, course_config, prepare_stream, train_task
    cfg = course_config(a.size, max_train_blocks=a.blocks, epochs=1, progress=False, pretrain_articles=0)
    stream = prepare_stream(cfg)
    loader = stream.loaders[0][0]
    data = loader.dataset
    n_tokens = data.n_tokens

    def ours():
        model = stream.new_model()
        t0 = time.perf_counter(); train_task(model, loader, Method(), cfg, task_id=0)
        return time.perf_counter() - t0

    def trainer():
        model = stream.new_model()
        with tempfile.TemporaryDirectory() as d:
            args = TrainingArguments(output_dir=d, per_device_train_batch_size=cfg.batch_size, num_train_epochs=1,
                                     learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=int(cfg.warmup_frac * len(loader)),
                                     lr_scheduler_type=cfg.schedule, max_grad_norm=cfg.grad_clip, report_to=[],
                                     save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=cfg.seed,
                                     bf16=torch.cuda.is_available(), dataloader_num_workers=0, use_cpu=not torch.cuda.is_available())
            t = Trainer(model=model, args=args, train_dataset=data)
            t0 = time.perf_counter(); t.train()
            return time.perf_counter() - t0

    ours(); trainer()   # warm-up
    times = {"cl_course": [], "transformers.Trainer": []}
    for _ in range(a.repeats):
        times["cl_course"].append(ours()); times["transformers.Trainer"].append(trainer())
    med = {k: statistics.median(v) for k, v in times.items()}
    res = dict(device=str(next(stream.new_model().parameters()).device), model=cfg.model, tokens=n_tokens,
               batch_size=cfg.batch_size, block_size=cfg.block_size, repeats=a.repeats, seconds=times,
               tokens_per_second={k: n_tokens / v for k, v in med.items()},
               ratio_ours_over_trainer=med["transformers.Trainer"] / med["cl_course"], torch=torch.__version__)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(__file__).parent / "results" / f"train_throughput_{dev}.json"
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res["tokens_per_second"], indent=1), f"\nspeed ratio (ours / Trainer): {res['ratio_ours_over_trainer']:.2f}", f"\n-> {out}")


if __name__ == "__main__":
    main()

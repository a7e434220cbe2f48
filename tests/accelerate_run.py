"""One continual-learning run with dropout off, for comparing `accelerate launch --num_processes 2` with one process:

    python tests/accelerate_run.py OUT.npz                                          # one process (or `run(OUT)`)
    accelerate launch --multi_gpu --num_processes 2 tests/accelerate_run.py OUT.npz   # two processes (gloo on a CPU)

Without dropout the two compute the same gradients up to the order of float sums, so their task matrices agree
closely. 9 training blocks in batches of 4: the last batch has one row, so the second process gets none (weight 0).
"""
import dataclasses
import sys

import numpy as np
import torch
from torch import nn

from cl_course.train import Method, distributed
from cl_course.config import course_config
from cl_course.stream import prepare_stream, run_stream, stream_loaders

def run(out: str) -> None:
    "The run, writing `{out}.rank{rank}.npz`."
    base = prepare_stream(course_config("small", "default", n_tasks=2, max_train_blocks=9, max_eval_blocks=8, epochs=2, progress=False))
    model = base.new_model()   # pretrained at the course's batch size: the model the notebooks cached (its key has the batch size)
    c = base.config.replace(batch_size=4)
    stream = dataclasses.replace(base, config=c, loaders=stream_loaders(c, base.tasks, base.tokenizer))
    for m in model.modules():
        if isinstance(m, nn.Dropout): m.p = 0.0   # the same function on every process (sdpa reads attn_dropout.p too)
    r = run_stream(Method(), stream, model=model)
    rank, world = distributed()
    # every process writes its own matrices: the test checks that both ran and ended with the same model
    np.savez(f"{out}.rank{rank}.npz", world=world, accuracy=r.accuracy, perplexity=r.perplexity, loss=r.loss)


if __name__ == "__main__":
    torch.set_num_threads(1)   # each launched process: one thread
    run(sys.argv[1])

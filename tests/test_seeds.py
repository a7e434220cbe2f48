"""One seed per run reaches every random choice: two seeds give different replay memories, prompts, adapters and
sampled Fisher labels; the same seed gives bit-identical results, through `run_benchmark` too."""
import json
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from cl_course.benchmark import run_benchmark
from cl_course.registry import build_method, method_params
from cl_course.lora import lora_parameters
from cl_course.config import course_config
from cl_course.stream import prepare_stream

TINY = dict(pretrain_articles=0, n_tasks=2, max_train_blocks=32, max_eval_blocks=2, epochs=1, progress=False)
SEEDED = ("replay", "agem", "derpp", "ewc", "online-ewc", "prompts", "lora-shared", "lora-per-task", "o-lora")


@pytest.fixture(scope="module")
def stream():
    d = Path(os.environ.get("CL_COURSE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw")
    return prepare_stream(course_config("small", data=str(d), **TINY))


@pytest.fixture(scope="module")
def blocks(stream):
    "Task 0's training blocks in a fixed order (no shuffling), so only the method's own randomness varies."
    ds = stream.loaders[0][0].dataset
    assert len(ds) == 32
    return DataLoader(ds, batch_size=8, shuffle=False)


def test_every_builder_passes_the_seed():
    for name in SEEDED:
        m = build_method(name, None, 5, course_config("small"))
        assert m.seed == 5 and m.config()["seed"] == 5, name


def _replay(seed, blocks):
    m = build_method("replay", method_params(dict(memory_size=4, replay_mix=0.5)), seed, course_config("small"))
    m.after_task(None, 0, blocks)                                   # the reservoir sees 32 blocks, keeps 4
    mixed = [b["input_ids"][8:] for b in m.batches(blocks, 1)]      # the remembered blocks mixed into task 1's batches
    return m.memory["input_ids"], torch.cat(mixed)


def test_replay_memory_and_mixing_follow_the_seed(blocks):
    mem0, mix0 = _replay(0, blocks)
    mem0b, mix0b = _replay(0, blocks)
    mem1, mix1 = _replay(1, blocks)
    assert torch.equal(mem0, mem0b) and torch.equal(mix0, mix0b)
    assert not torch.equal(mem0, mem1) and not torch.equal(mix0, mix1)


def _prompt(seed, stream, blocks):
    m = build_method("prompts", method_params(dict(prompt_len=4)), seed, course_config("small"))
    model = m.setup(stream.new_model())
    m.before_task(model, 0, blocks)
    return m.trainable_parameters(model)[0].detach().clone()


def test_prompt_initialisation_follows_the_seed(stream, blocks):
    p0, p1 = _prompt(0, stream, blocks), _prompt(1, stream, blocks)
    assert torch.equal(p0, _prompt(0, stream, blocks)) and not torch.equal(p0, p1)


@pytest.mark.parametrize("name", ["lora-shared", "lora-per-task", "o-lora"])
def test_adapter_initialisation_follows_the_seed(name, stream, blocks):
    def adapters(seed):
        m = build_method(name, method_params(dict(lora_rank=2)), seed, course_config("small"))
        model = m.setup(stream.new_model())
        if name != "lora-shared": m.before_task(model, 0, blocks)
        return torch.cat([p.detach().flatten() for p in lora_parameters(model)])
    a0 = adapters(0)
    assert torch.equal(a0, adapters(0)) and not torch.equal(a0, adapters(1))


def test_sampled_fisher_labels_follow_the_seed(stream, blocks):
    model = stream.new_model()
    def fisher(seed):
        f = build_method("ewc", method_params(dict(ewc_fisher="sampled")), seed, course_config("small")).compute_fisher(model, blocks, 0)
        return torch.cat([v.flatten() for v in f.values()])
    f0 = fisher(0)
    assert torch.equal(f0, fisher(0)) and not torch.equal(f0, fisher(1))


def test_exact_fisher_positions_follow_the_seed(stream, blocks):
    "The exact Fisher's positions are a random draw too (the benchmark keeps 2 per block): seeded."
    model = stream.new_model()
    few = DataLoader(blocks.dataset, batch_size=2, shuffle=False)
    def fisher(seed):
        m = build_method("ewc", method_params(dict(ewc_fisher="exact")), seed, course_config("small"))
        m.max_fisher_samples = 2   # 2 blocks x 2 positions keep this quick
        return torch.cat([v.flatten() for v in m.compute_fisher(model, few, 0).values()])
    f0 = fisher(0)
    assert torch.equal(f0, fisher(0)) and not torch.equal(f0, fisher(1))


def test_benchmark_seeds_reach_the_methods_and_repeat_bit_for_bit(tmp_path):
    d = Path(os.environ.get("CL_COURSE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw")
    cfg = course_config("small", data=str(d), **dict(TINY, max_train_blocks=8))
    methods = ["naive", "replay", "prompts", "lora-shared"]
    params = dict(memory_size=4)
    for out in ("a", "b"): run_benchmark(methods, cfg, [0, 1], params, out_dir=tmp_path / out)
    def run(out, name, seed): return json.loads((tmp_path / out / "runs" / f"{name}-seed{seed}.json").read_text())
    for name in methods:
        for seed in (0, 1):
            a, b = run("a", name, seed), run("b", name, seed)
            for m in ("accuracy", "perplexity", "loss"): assert a[m] == b[m], (name, seed, m)   # bit-identical
            assert a["config"]["seed"] == seed and a["identity"]["config"]["seed"] == seed
            if name != "naive": assert a["config"]["method_config"]["seed"] == seed
        assert run("a", name, 0)["perplexity"] != run("a", name, 1)["perplexity"], name

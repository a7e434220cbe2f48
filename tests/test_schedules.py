"""The learning-rate schedules against their formulas and transformers' scheduler; the replay mix is compute-equivalent
and fixed by its seed."""
import math
from functools import partial

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_cosine_schedule_with_warmup

from cl_course.blocks import BlockDataset
from cl_course.config import TrainConfig
from cl_course.schedules import (constant_multiplier, cosine_multiplier, infinite_multiplier, replay_mix,
                                 rewarm_multiplier)
from cl_course.train import make_optimizer


def _lrs(scheduler, n: int) -> list[float]:
    "The learning rate at steps 0..n-1 of `scheduler`, stepped as a training loop steps it."
    out = []
    for _ in range(n):
        out.append(scheduler.optimizer.param_groups[0]["lr"]); scheduler.optimizer.step(); scheduler.step()
    return out


@pytest.mark.parametrize("total,warmup", [(100, 5), (37, 0), (10, 10), (7, 1), (250, 12)])
def test_cosine_is_transformers(total, warmup):
    # fails on an off-by-one warm-up ((t + 1) / W), a decay that ends a step early, or a floor that is not 0
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = get_cosine_schedule_with_warmup(opt, warmup, total).lr_lambdas[0]
    assert [cosine_multiplier(t, total, warmup) for t in range(total)] == [ref(t) for t in range(total)]


def test_course_schedule_is_rewarm_per_task():
    # the course's make_optimizer built afresh per task (as train_task does) is rewarm_multiplier with floor 0:
    # fails if the warm-up is rounded instead of truncated, or if a phase does not restart at 0
    cfg = TrainConfig(lr=3e-3, warmup_frac=0.05)
    tasks = [134, 108, 40, 21]
    course = []
    for n in tasks:
        opt, sched = make_optimizer([torch.nn.Parameter(torch.zeros(2, 2))], cfg, n)
        course += _lrs(sched, n)
    mine = [cfg.lr * rewarm_multiplier(t, tasks, cfg.warmup_frac, 0.0) for t in range(sum(tasks))]
    assert max(abs(a - b) for a, b in zip(course, mine)) < 1e-15


def _cos(t, n, w, f):
    "The warm-up + cosine formula written out independently."
    return t / w if t < w else f + (1 - f) * (1 + math.cos(math.pi * (t - w) / (n - w))) / 2


def test_rewarm_values():
    phases, frac, f = [200, 300, 100], 0.02, 0.1
    m = partial(rewarm_multiplier, phases=phases, warmup_frac=frac, floor=f)
    starts = [0, 200, 500]
    for s, n in zip(starts, phases):
        w = int(frac * n)
        assert m(s) == 0.0                       # every phase re-warms from 0 ...
        assert m(s + w) == 1.0                   # ... to the peak at the end of its warm-up
        assert m(s + w // 2) == pytest.approx((w // 2) / w)
        mid = s + w + (n - w) // 2
        assert m(mid) == pytest.approx(_cos(mid - s, n, w, f), abs=1e-12)
        assert m(s + n - 1) == pytest.approx(_cos(n - 1, n, w, f), abs=1e-12)
        assert f < m(s + n - 1) < f + 0.01      # down to (just above) the floor at the end of the phase
    assert m(600) == f and m(10_000) == f        # the floor after the last phase
    assert m(starts[1] + 6 + 147) == pytest.approx((1 + f) / 2, abs=1e-12)   # half-way (W = 6, N - W = 294): (1 + f) / 2
    with pytest.raises(ValueError, match="phases"): rewarm_multiplier(0, [])
    with pytest.raises(ValueError, match="phase length"): rewarm_multiplier(0, [10, 0])


def test_constant():
    assert [constant_multiplier(t) for t in (0, 1, 10**6)] == [1.0, 1.0, 1.0]
    assert constant_multiplier(5, level=0.3) == 0.3


def test_infinite_values():
    W, C, A, D, c, f = 10, 40, 400, 100, 0.5, 0.1
    m = partial(infinite_multiplier, warmup=W, cooldown=C, anneal_start=A, anneal=D, level=c, floor=f)
    assert m(0) == 0.0 and m(5) == 0.5 and m(W) == 1.0                           # warm-up, then the peak
    assert m(W + C // 2) == pytest.approx(c + (1 - c) / 2, abs=1e-12)           # half-way down the cool-down
    assert m(W + C) == c and m(A - 1) == c and m(200) == c                       # the constant phase
    assert m(A) == c                                                             # the anneal starts from c ...
    assert m(A + D // 2) == pytest.approx(math.sqrt(c * f), abs=1e-12)           # ... geometric: the geometric mean half-way
    assert m(A + D // 4) == pytest.approx(c * (f / c) ** 0.25, abs=1e-12)
    assert m(A + D) == pytest.approx(f, abs=1e-15) and m(A + 5 * D) == pytest.approx(f, abs=1e-15)   # the floor
    with pytest.raises(ValueError, match="floor"): infinite_multiplier(0, W, C, A, D, level=0.05, floor=0.1)


def test_lambda_lr_uses_the_multiplier():
    # a schedule is usable as LambdaLR's lr_lambda: the learning rate is the peak times the multiplier at every step
    peak, phases = 3e-4, [30, 50]
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=peak)
    got = _lrs(LambdaLR(opt, partial(rewarm_multiplier, phases=phases)), sum(phases))
    assert got == pytest.approx([peak * rewarm_multiplier(t, phases) for t in range(sum(phases))], abs=1e-18)


def _blocks(n: int, L: int, value: int, distinct: bool = True) -> BlockDataset:
    "n blocks of L tokens; every token of block i is value + i (so blocks can be told apart), new and old far apart."
    ids = (value + torch.arange(n)[:, None]).expand(n, L).clone() if distinct else torch.full((n, L), value)
    return BlockDataset(dict(input_ids=ids, attention_mask=torch.ones(n, L, dtype=torch.long), labels=ids.clone()))


@pytest.mark.parametrize("n", [200, 90, 64, 37])
def test_mix_is_compute_equivalent(n):
    # fails if the old blocks are added on top of the new ones (more tokens), or if the share is of the old blocks
    new, old = _blocks(n, 16, 0), _blocks(500, 16, 10_000)
    zero, five = replay_mix(new, old, 0.0, seed=0), replay_mix(new, old, 0.05, seed=0)
    tokens = lambda d: int(d.blocks["attention_mask"].sum())
    assert len(five) == len(zero) == n and tokens(five) == tokens(zero) == tokens(new)
    is_old = five.blocks["input_ids"][:, 0] >= 10_000
    assert abs(int(is_old.sum()) - 0.05 * n) <= 0.5                 # 5 % of the blocks, up to rounding
    assert int((zero.blocks["input_ids"][:, 0] >= 10_000).sum()) == 0
    # the blocks are real blocks of their sources, each at most once (no duplicates, no made-up rows)
    first = five.blocks["input_ids"][:, 0].tolist()
    assert len(set(first)) == n and all(0 <= v < n or 10_000 <= v < 10_500 for v in first)
    assert torch.equal(five.blocks["labels"], five.blocks["input_ids"])   # every field is permuted alike


def test_mix_is_set_by_the_seed():
    # fails if the mix draws from the global RNG instead of the seed
    new, old = _blocks(100, 8, 0), _blocks(300, 8, 10_000)
    torch.manual_seed(1); a = replay_mix(new, old, 0.25, seed=3)
    torch.manual_seed(2); b = replay_mix(new, old, 0.25, seed=3)
    c = replay_mix(new, old, 0.25, seed=4)
    assert all(torch.equal(a.blocks[k], b.blocks[k]) for k in a.blocks)
    assert not torch.equal(a.blocks["input_ids"], c.blocks["input_ids"])
    d = replay_mix(new, old, 0.25, seed=3, index=1)                    # another phase: another mix
    assert not torch.equal(a.blocks["input_ids"], d.blocks["input_ids"])
    # the old blocks of a smaller share are among those of a larger one
    olds = lambda x: set(x.blocks["input_ids"][:, 0].tolist()) - set(range(100))
    assert olds(replay_mix(new, old, 0.05, seed=3)) <= olds(a)


def test_mix_rejects():
    new, old = _blocks(100, 8, 0), _blocks(10, 8, 10_000)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="share"): replay_mix(new, old, bad, seed=0)
    with pytest.raises(ValueError, match="old blocks"): replay_mix(new, old, 0.25, seed=0)   # 25 needed, 10 there
    with pytest.raises(ValueError, match="length"): replay_mix(new, _blocks(50, 4, 10_000), 0.1, seed=0)

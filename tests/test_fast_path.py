"""The fast path (`TrainConfig.fast`: `torch.compile` of the model's forward and fused AdamW) and fused AdamW alone
(`TrainConfig.fused_adamw`, on at full size) reproduce the plain path's losses and weights on the tiny model; the fast
path keeps the model a model every method's hooks can use; neither is part of a run's identity. On the CPU it compiles with the "aot_eager" backend (graph capture and AOTAutograd, no generated
kernels): inductor's C++ compile of the tiny model takes over a minute here; benchmarks/gpu_check.py times inductor."""
import dataclasses

import pytest
import torch

from cl_course import train
from cl_course.config import course_config
from cl_course.ewc import EWC
from cl_course.stream import _fingerprint, prepare_stream
from cl_course.train import Method, make_optimizer, train_task


@pytest.fixture(scope="module")
def stream():
    # no pretraining (seconds, not minutes), eight blocks of each of two tasks
    return prepare_stream(course_config("small", "default", pretrain_articles=0, n_tasks=2, max_train_blocks=8,
                                        max_eval_blocks=4, epochs=1, progress=False))


@pytest.fixture(autouse=True)
def aot_eager(monkeypatch):
    monkeypatch.setattr(train, "COMPILE_BACKEND", "aot_eager")


class Recording(Method):
    "Naive fine-tuning that keeps every step's loss."
    def __init__(self): self.losses = []
    def loss(self, model, batch, task_id):
        loss = super().loss(model, batch, task_id)
        self.losses.append(loss.item())
        return loss


def _train(stream, fast: bool, method=None):
    torch.manual_seed(0)
    model, m = stream.new_model(), method or Recording()
    model = m.setup(model)
    for t, (tr, _) in enumerate(stream.loaders):
        m.before_task(model, t, tr)
        train_task(model, tr, m, stream.config.replace(fast=fast), task_id=t)
        m.after_task(model, t, tr)
    return model, m


def test_the_fast_path_gives_the_plain_losses_and_weights(stream):
    plain, a = _train(stream, fast=False)
    fast, b = _train(stream, fast=True)
    assert fast._compiled_call_impl is None   # compiled while it trained, eager again for evaluation and the hooks
    assert len(a.losses) == len(b.losses) == sum(len(tr) for tr, _ in stream.loaders)
    torch.testing.assert_close(torch.tensor(b.losses), torch.tensor(a.losses), rtol=1e-4, atol=0)
    assert a.losses[0] != a.losses[-1]   # it trained: the comparison is not between two untouched models
    for (n, p), (m, q) in zip(plain.named_parameters(), fast.named_parameters()):
        assert n == m   # the names every method keys its state by
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5, msg=n)


def test_the_forward_is_compiled_while_training_only(stream):
    seen = []
    class Look(Method):
        def after_backward(self, model, task_id): seen.append(model._compiled_call_impl is not None)
    model = stream.new_model()
    train_task(model, stream.loaders[0][0], Look(), stream.config.replace(fast=True))
    assert seen and all(seen) and model._compiled_call_impl is None
    train_task(model, stream.loaders[0][0], Look(), stream.config)
    assert not seen[-1]


def test_fused_adamw_on_the_fast_path_and_at_full_size(stream):
    p = [torch.nn.Parameter(torch.zeros(2, 2))]
    assert make_optimizer(p, stream.config.replace(fast=True), 10)[0].defaults["fused"] is True
    assert make_optimizer(p, stream.config.replace(fused_adamw=True), 10)[0].defaults["fused"] is True
    assert not make_optimizer(p, stream.config, 10)[0].defaults.get("fused")
    assert course_config("full").fused_adamw and not course_config("small").fused_adamw


def test_fused_adamw_gives_the_plain_losses_and_weights(stream):
    "The fused kernel alone (the full configuration's optimizer), against PyTorch's for-loop: the same steps to rounding."
    def run(fused):
        torch.manual_seed(0)
        model, m = stream.new_model(), Recording()
        for t, (tr, _) in enumerate(stream.loaders): train_task(model, tr, m, stream.config.replace(fused_adamw=fused), task_id=t)
        return model, m.losses
    (plain, a), (fused, b) = run(False), run(True)
    assert a[0] != a[-1]   # it trained
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-4, atol=0)
    for (n, p), (_, q) in zip(plain.named_parameters(), fused.named_parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5, msg=n)


def test_a_penalty_method_trains_on_the_compiled_model(stream):
    "EWC reads the model's named parameters after each task: compiling in place keeps them."
    _, plain = _train(stream, fast=False, method=EWC(lam=100.0))
    _, fast = _train(stream, fast=True, method=EWC(lam=100.0))
    for k in plain.state_dict():
        a, b = plain.state_dict()[k], fast.state_dict()[k]
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for n in a: torch.testing.assert_close(b[n], a[n], rtol=1e-3, atol=1e-6, msg=f"{k}/{n}")


def test_the_fast_path_is_not_another_experiment(stream):
    for kw in (dict(fast=True), dict(fused_adamw=True)):
        assert _fingerprint(Method(), stream) == _fingerprint(Method(), dataclasses.replace(stream, config=stream.config.replace(**kw)))
    assert _fingerprint(Method(), stream) != _fingerprint(Method(), dataclasses.replace(stream, config=stream.config.replace(lr=2e-3)))

"LwF: the distillation term against a hand-computed sum (and not the reversed KL, not without T²), padding, the frozen teacher, α = 0 as naive fine-tuning, resuming a run, bad parameters."
import math
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel

from cl_course.blocks import BlockDataset
from cl_course.config import TrainConfig
from cl_course.ewc import EWC
from cl_course.lwf import LwF, LwFParams, distillation_loss
from cl_course.registry import build_method, method_params
from cl_course.stream import Stream, load_checkpoint, run_stream, save_checkpoint
from cl_course.train import Compose, Method, causal_lm_loss, train_task

V = 23


def tiny_lm(seed=0):
    torch.manual_seed(seed)   # dropout stays at GPT-2's 0.1: a forward pass in training mode draws random numbers
    return GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=16, n_embd=12, n_layer=1, n_head=2,
                                      bos_token_id=0, eos_token_id=0, pad_token_id=0))


def blocks(n=6, T=8, seed=1):
    "Blocks of random tokens; the last one right-padded, the one before it left-padded."
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (n, T), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, T - 3:] = 0
    mask[-2, :2] = 0
    ids = ids.masked_fill(mask == 0, 0)
    return dict(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))


def loader(seed=1, n=6):
    return DataLoader(BlockDataset(blocks(n=n, seed=seed)), batch_size=3)


CFG = TrainConfig(epochs=2, progress=False, lr=1e-2, warmup_frac=0.0)


def hand_kd(student, teacher, labels, T, reverse=False, t_squared=True):
    "The distillation term with explicit loops over positions and classes (float64 Python arithmetic)."
    total, n = 0.0, 0
    B, L, C = student.shape
    for b in range(B):
        for t in range(L - 1):
            if labels[b, t + 1] == -100: continue   # position t predicts token t+1: no target, no term
            zs, zt = [float(x) / T for x in student[b, t]], [float(x) / T for x in teacher[b, t]]
            ls = [z - math.log(sum(math.exp(y) for y in zs)) for z in zs]
            lt = [z - math.log(sum(math.exp(y) for y in zt)) for z in zt]
            p, lp, lq = (ls, ls, lt) if reverse else (lt, lt, ls)   # KL(p ‖ q) = Σ_v p_v (log p_v − log q_v)
            total += sum(math.exp(p[v]) * (lp[v] - lq[v]) for v in range(C))
            n += 1
    return (T * T if t_squared else 1.0) * total / n


def logits_pair(seed=0, B=3, L=8, C=7):
    "A broad student and a peaked teacher, so that KL(teacher ‖ student) and KL(student ‖ teacher) differ."
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, L, C, generator=g), 4 * torch.randn(B, L, C, generator=g)


@pytest.mark.parametrize("T", [1.0, 2.0, 3.5])
def test_distillation_equals_the_hand_computed_sum(T):
    s, t = logits_pair()
    labels = blocks(n=3, T=8, seed=2)["labels"]
    got = distillation_loss(s, t, labels, T).item()
    want = hand_kd(s, t, labels, T)
    assert got == pytest.approx(want, rel=1e-5)
    # the two wrong versions are far from it: the test above fails on them
    assert abs(hand_kd(s, t, labels, T, reverse=True) - want) > 0.1 * want
    if T != 1: assert abs(hand_kd(s, t, labels, T, t_squared=False) - want) > 0.1 * want


def test_distillation_is_zero_for_a_copy_and_ignores_padding():
    s, t = logits_pair(seed=3)
    labels = blocks(n=3, T=8, seed=4)["labels"]
    assert distillation_loss(t, t, labels, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    no_target = torch.zeros_like(labels, dtype=torch.bool)
    no_target[:, :-1] = labels[:, 1:] == -100
    no_target[:, -1] = True   # the last position predicts nothing
    assert no_target.any() and not no_target.all()
    s2, t2 = s.clone().requires_grad_(), t.clone()
    noise = 50 * torch.randn(s.shape)
    with torch.no_grad():   # change the logits at every position without a target, wildly
        s2[no_target] += noise[no_target]; t2[no_target] -= noise[no_target]
    loss = distillation_loss(s2, t2, labels, 2.0)
    assert loss.item() == pytest.approx(distillation_loss(s, t, labels, 2.0).item(), rel=1e-6)
    loss.backward()
    assert s2.grad[no_target].abs().max().item() == 0.0 and s2.grad[~no_target].abs().max().item() > 0
    with pytest.raises(ValueError, match="disagree"): distillation_loss(s, t[:, :-1], labels, 2.0)


def test_padding_tokens_do_not_reach_the_method_loss():
    "Whatever token ids fill the padding, LwF's loss is the same (a term at a padded position would see them)."
    model, lwf = tiny_lm().eval(), LwF()
    lwf.after_task(model, 0, None); lwf.before_task(tiny_lm(seed=5), 1, None)   # a teacher that differs from the model
    b = blocks(seed=6)
    right = torch.zeros_like(b["attention_mask"], dtype=torch.bool)
    right[-1] = b["attention_mask"][-1] == 0   # the right padding, as the course's packed blocks have it (a left-padded
    # position just before the first real token does predict a target, in the cross-entropy as in the distillation)
    b2 = dict(b, input_ids=b["input_ids"].masked_fill(right, 7))
    with torch.no_grad():
        l1, l2 = lwf.loss(model, b, 1).item(), lwf.loss(model, b2, 1).item()
        ce = causal_lm_loss(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["labels"]).item()
    assert l1 == pytest.approx(l2, rel=1e-6) and l1 > ce + 1e-3   # the same, and the distillation term is there


def test_the_loss_is_cross_entropy_plus_alpha_times_the_distillation_term():
    model, teacher, b = tiny_lm().eval(), tiny_lm(seed=5).eval(), blocks(seed=6)
    lwf = LwF(alpha=0.3, temperature=1.5)
    lwf.after_task(model, 0, None); lwf.before_task(teacher, 1, None)
    ewc = EWC(lam=2.0); ewc.after_task(teacher, 0, [b])
    with torch.no_grad():
        s, t = (m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits for m in (model, teacher))
        want = causal_lm_loss(s, b["labels"]).item() + 0.3 * hand_kd(s, t, b["labels"], 1.5)
        assert lwf.loss(model, b, 1).item() == pytest.approx(want, rel=1e-5)
        both = Compose(LwF(alpha=0.3, temperature=1.5), ewc)   # LwF changes the loss, EWC adds its penalty to it
        both.parts[0].after_task(model, 0, None); both.parts[0].before_task(teacher, 1, None)
        assert both.loss(model, b, 1).item() == pytest.approx(want + ewc.penalty(model, 1).item(), rel=1e-5)


def test_the_teacher_is_a_frozen_copy_that_training_does_not_touch():
    model, lwf = tiny_lm(), LwF()
    lwf.before_task(model, 0, loader(seed=1))
    assert lwf.teacher is None   # the first task has no teacher: LwF is naive fine-tuning there
    train_task(model, loader(seed=1), lwf, CFG, task_id=0)
    lwf.after_task(model, 0, None)
    assert lwf.teacher is None and lwf.extra_memory_bytes() == 0   # the first task has no teacher
    lwf.before_task(model, 1, loader(seed=2))
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_task(model, loader(seed=2), lwf, CFG, task_id=1)
    teacher = dict(lwf.teacher.named_parameters())
    assert set(teacher) == set(start)
    assert all(torch.equal(teacher[n], start[n]) for n in start)                          # bit-identical after the steps
    assert any(not torch.equal(p, start[n]) for n, p in model.named_parameters())         # while the model moved
    assert not lwf.teacher.training and not any(p.requires_grad for p in lwf.teacher.parameters())
    assert all(p.grad is None for p in lwf.teacher.parameters())
    assert {p.device for p in lwf.teacher.parameters()} == {next(model.parameters()).device}
    assert lwf.extra_memory_bytes() == 4 * sum(p.numel() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers())


def two_tasks(method, seed=0):
    "Train a fresh tiny model on two tasks with `method`, as `run_stream` calls the hooks; its final weights and last loss."
    model = tiny_lm(seed)
    for i in range(2):
        method.before_task(model, i, loader(seed=i + 1))
        last = train_task(model, loader(seed=i + 1), method, CFG, task_id=i)["loss"]
        method.after_task(model, i, loader(seed=i + 1))
    return model, last


def test_alpha_zero_is_naive_fine_tuning_exactly():
    naive, naive_loss = two_tasks(Method())
    zero, zero_loss = two_tasks(LwF(alpha=0.0))
    assert zero_loss == naive_loss
    assert all(torch.equal(a, b) for a, b in zip(zero.parameters(), naive.parameters()))
    one, _ = two_tasks(LwF(alpha=1.0))   # and the term does change training when α > 0
    assert not all(torch.equal(a, b) for a, b in zip(one.parameters(), naive.parameters()))


def tiny_stream(n_tasks=3):
    loaders = [(loader(seed=s + 1), loader(seed=s + 11)) for s in range(n_tasks)]
    return Stream(TrainConfig(epochs=1, progress=False, lr=1e-2), [SimpleNamespace(name=f"t{i}", train=[], eval=[]) for i in range(n_tasks)], None, loaders)


class Interrupted(Exception): pass


class CrashingLwF(LwF):
    "LwF that dies before its third task (same name and configuration: the checkpoint is LwF's)."
    def before_task(self, model, task_id, loader):
        if task_id == 2: raise Interrupted
        super().before_task(model, task_id, loader)


def test_an_interrupted_run_resumes_exactly(tmp_path):
    s = tiny_stream()
    whole_model = tiny_lm()
    whole = run_stream(LwF(alpha=2.0), s, model=whole_model)
    with pytest.raises(Interrupted): run_stream(CrashingLwF(alpha=2.0), s, checkpoint_dir=tmp_path, model=tiny_lm())
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["done"] == 2 and state["method"] == {"tasks": 2}
    resumed_model = tiny_lm(seed=9)   # other weights: the checkpoint's replace them, and the teacher is built from those
    resumed = run_stream(LwF(alpha=2.0), s, checkpoint_dir=tmp_path, resume=True, model=resumed_model)
    for m in ("accuracy", "perplexity", "loss"): assert (getattr(whole, m) == getattr(resumed, m)).all(), m
    assert all(torch.equal(a, b) for a, b in zip(whole_model.parameters(), resumed_model.parameters()))


def test_the_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    model, lwf = tiny_lm(), LwF()
    for i in range(2): lwf.before_task(model, i, None); lwf.after_task(model, i, None)
    save_checkpoint(tmp_path / "c.pt", {"method": lwf.state_dict()})
    back = LwF()
    back.load_state_dict(load_checkpoint(tmp_path / "c.pt")["method"], model)
    assert back.tasks == 2 and back.teacher is None
    back.before_task(model, 2, None)   # the teacher of task 2: the model as it stands
    assert all(torch.equal(a, b) for a, b in zip(back.teacher.parameters(), model.parameters()))
    fresh = LwF(); fresh.load_state_dict({"tasks": 0}, model); fresh.before_task(model, 0, None)
    assert fresh.teacher is None


@pytest.mark.parametrize("kw, msg", [(dict(lwf_alpha=-1.0), "lwf_alpha must be"), (dict(lwf_alpha=float("nan")), "lwf_alpha must be"),
                                     (dict(lwf_temperature=0.0), "lwf_temperature must be"), (dict(lwf_temperature=float("inf")), "lwf_temperature must be"),
                                     (dict(lwf_temperature="2"), "lwf_temperature must be")])
def test_bad_parameters_are_refused_in_one_line(kw, msg):
    with pytest.raises(ValueError, match=msg) as e: LwFParams(**kw)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw, msg", [(dict(alpha=-0.5), "alpha"), (dict(alpha=True), "alpha"), (dict(temperature=-2.0), "temperature"), (dict(temperature=0), "temperature")])
def test_bad_constructor_arguments_are_refused_in_one_line(kw, msg):
    with pytest.raises(ValueError, match=msg) as e: LwF(**kw)
    assert "\n" not in str(e.value)


def test_registration():
    assert LwFParams().lwf_alpha == 1.0 and LwFParams().lwf_temperature == 2.0
    m = build_method("lwf", method_params({"lwf_alpha": 0.5, "lwf_temperature": 3.0}), 0, TrainConfig())
    assert isinstance(m, LwF) and m.name == "lwf" and m.config() == dict(alpha=0.5, temperature=3.0)

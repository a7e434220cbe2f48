"SI: the path integral and the importance against gradient descent on a quadratic (exact geometric sums), the task gradient (not the full one) on a later task, the damping and the floor, checkpoints, bad input, registration."
import numpy as np
import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from cl_course.config import TrainConfig
from cl_course.registry import build_method, method_params
from cl_course.si import SI, SIParams, si_importance, task_grads
from cl_course.stream import load_checkpoint, save_checkpoint
from cl_course.train import train_task


class Quadratic(nn.Module):
    def __init__(self, theta0):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta0, dtype=torch.float64))

    def loss(self, h, target): return 0.5 * (torch.tensor(h) * (self.theta - torch.tensor(target)) ** 2).sum()


def train_quadratic(si, q, h, target, lr, steps, task_id):
    "Plain SGD on the quadratic plus SI's penalty, with SI's hooks where `training_step` calls them; returns the task's ω."
    si.before_task(q, task_id, None)
    opt = torch.optim.SGD(q.parameters(), lr=lr)
    for _ in range(steps):
        pen = si.penalty(q, task_id)
        (q.loss(h, target) + (0 if pen is None else pen)).backward()
        si.after_backward(q, task_id)
        opt.step()
        opt.zero_grad(set_to_none=True)
        si.after_update(q, task_id)
    omega = si.omega["theta"].numpy().copy()
    si.after_task(q, task_id, None)
    return omega


def geometric(r, T, power):
    q = r ** power
    return np.where(q == 1, T, (1 - q ** T) / np.where(q == 1, 2, 1 - q))


H0, THETA0, TARGET0 = np.array([2.0, 0.5, 0.0, 1.0]), np.array([1.0, -2.0, 0.7, 0.3]), np.array([0.0, 0.0, 0.0, 1.3])
H1, TARGET1 = np.array([1.0, 1.0, 1.0, 0.5]), np.array([0.5, -1.0, -0.4, 0.0])
LR, T, XI, C = 0.1, 20, 0.5, 0.5


@pytest.fixture
def first_task():
    si, q = SI(c=C, xi=XI), Quadratic(THETA0)
    return si, q, train_quadratic(si, q, H0, TARGET0, LR, T, 0)


def test_first_task_matches_the_geometric_sum(first_task):
    si, q, omega = first_task
    d0, r = THETA0 - TARGET0, 1 - LR * H0
    exact = LR * H0 ** 2 * d0 ** 2 * geometric(r, T, 2)       # Σ_t -g_t Δθ_t, g_t = h d_t, Δθ_t = -lr h d_t
    delta = d0 * (r ** T - 1)
    np.testing.assert_allclose(omega, exact, rtol=1e-12)
    assert (omega[H0 > 0] > 0).all()                          # a flipped sign fails here (and gives Ω = 0 below)
    np.testing.assert_allclose(si.fisher["theta"].numpy(), exact / (delta ** 2 + XI), rtol=1e-12)
    np.testing.assert_allclose(si.anchor["theta"].numpy(), THETA0 + delta, rtol=1e-12)


def test_damping_matters_and_a_still_weight_has_zero_importance(first_task):
    si, q, omega = first_task
    Omega = si.fisher["theta"].numpy()
    assert np.isfinite(Omega).all() and Omega[2] == 0.0       # h = 0: never moved; without ξ: 0/0 = nan
    d0, r = THETA0 - TARGET0, 1 - LR * H0
    delta = d0 * (r ** T - 1)
    moved = H0 > 0
    assert np.abs(omega[moved] / delta[moved] ** 2 - Omega[moved]).min() > 1e-3   # leaving ξ out changes every moved weight


def test_small_steps_give_the_loss_drop():
    si, q = SI(xi=XI), Quadratic(THETA0)
    omega = train_quadratic(si, q, H0, TARGET0, LR / 100, 100 * T, 0)
    drop = 0.5 * H0 * (THETA0 - TARGET0) ** 2
    assert abs(omega[0] - drop[0]) < 2e-3 * drop[0]


def test_later_task_uses_the_task_gradient_not_the_penalty(first_task):
    si, q, _ = first_task
    Omega0, anchor0 = si.fisher["theta"].numpy().copy(), si.anchor["theta"].numpy().copy()
    omega1 = train_quadratic(si, q, H1, TARGET1, LR, T, 1)
    H = H1 + 2 * C * Omega0                                   # the curvature of task loss + c Σ Ω (θ − θ*)²
    m = (H1 * TARGET1 + 2 * C * Omega0 * anchor0) / H
    d, e, r = anchor0 - m, m - TARGET1, 1 - LR * H
    exact = LR * H * H1 * (d ** 2 * geometric(r, T, 2) + e * d * geometric(r, T, 1))
    full = LR * H ** 2 * d ** 2 * geometric(r, T, 2)          # what the full (task + penalty) gradient would give
    assert np.abs(full - exact).max() > 1e-2
    np.testing.assert_allclose(omega1, exact, rtol=1e-12)
    delta = d * (r ** T - 1)
    np.testing.assert_allclose(si.fisher["theta"].numpy(), np.maximum(Omega0 + exact / (delta ** 2 + XI), 0), rtol=1e-12)


def test_task_grads_removes_exactly_the_penalty():
    torch.manual_seed(0)
    w, a, x = nn.Parameter(torch.randn(5)), torch.randn(5), torch.randn(5)
    task = lambda: (w * x).sum() ** 2
    pen = lambda: 3.0 * ((w - a) ** 2).sum()
    (task() + pen()).backward()
    g_task, = torch.autograd.grad(task(), [w])
    torch.testing.assert_close(task_grads([w], pen())[0], g_task)
    torch.testing.assert_close(task_grads([w], None)[0], w.grad)


def test_importance_floor():
    w, d = {"w": torch.tensor([-4.0, 1.0, 3.0])}, {"w": torch.ones(3)}
    assert si_importance(w, d, 1.0, {"w": torch.tensor([1.0, 1.0, 0.0])})["w"].tolist() == [-1.0, 0.5, 1.5]
    assert si_importance(w, d, 1.0)["w"].tolist() == [0.0, 0.5, 1.5]


def tiny_lm(seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=29, n_positions=16, n_embd=12, n_layer=1, n_head=2,
                                      bos_token_id=0, eos_token_id=0, pad_token_id=0))


def batches(seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 29, (4, 7), generator=g)
    return [dict(input_ids=ids[i:i + 2], attention_mask=torch.ones_like(ids[i:i + 2]), labels=ids[i:i + 2]) for i in (0, 2)]


def test_state_round_trips_between_tasks(tmp_path):
    cfg, tasks = TrainConfig(epochs=2, lr=1e-2, progress=False, warmup_frac=0.0), [batches(1), batches(2)]

    def task(si, model, k):
        si.before_task(model, k, tasks[k]); train_task(model, tasks[k], si, cfg, task_id=k); si.after_task(model, k, tasks[k])

    m_a, si_a = tiny_lm(), SI(c=2.0)
    for k in (0, 1): task(si_a, m_a, k)
    m_b, si_b = tiny_lm(), SI(c=2.0)
    task(si_b, m_b, 0)
    save_checkpoint(tmp_path / "c.pt", {"method": si_b.state_dict(), "model": m_b.state_dict()})
    ck = load_checkpoint(tmp_path / "c.pt")
    m_c, si_c = tiny_lm(seed=3), SI(c=2.0)
    m_c.load_state_dict(ck["model"])
    si_c.load_state_dict(ck["method"], m_c)
    task(si_c, m_c, 1)
    for n, p in m_c.named_parameters():
        torch.testing.assert_close(si_c.fisher[n], si_a.fisher[n])
        torch.testing.assert_close(si_c.anchor[n], si_a.anchor[n])
        torch.testing.assert_close(p, dict(m_a.named_parameters())[n])
    assert si_c.tasks == 2 and all((v >= 0).all() for v in si_c.fisher.values())


def test_mid_task_state_round_trips():
    model, si = tiny_lm(), SI()
    si.before_task(model, 0, None)
    for v in si.omega.values(): v.fill_(0.25)
    back = SI()
    back.load_state_dict(si.state_dict(), model)
    assert set(back.omega) == set(si.omega) and all(torch.equal(back.omega[n], si.omega[n]) for n in si.omega)
    assert all(torch.equal(back.start[n], si.start[n]) for n in si.start)


def test_bad_parameters_and_misuse():
    for bad in (-1.0, float("nan"), "3"):
        with pytest.raises(ValueError, match=r"c \(the SI penalty strength\) must be"): SI(c=bad)
    for bad in (0.0, -1e-3, float("inf")):
        with pytest.raises(ValueError, match=r"xi \(the SI damping\) must be"): SI(xi=bad)
    with pytest.raises(ValueError, match="si_xi must be"): SIParams(si_xi=0.0)
    with pytest.raises(ValueError, match="si_lambda must be"): SIParams(si_lambda=-1.0)
    with pytest.raises(RuntimeError, match="before before_task"): SI().after_backward(tiny_lm(), 0)
    with pytest.raises(RuntimeError, match="no path integral"): SI().after_task(tiny_lm(), 0, None)


def test_registration():
    m = build_method("si", method_params({"si_lambda": 0.25, "si_xi": 0.01}), 0, TrainConfig())
    assert isinstance(m, SI) and m.name == "si" and m.config() == dict(c=0.25, xi=0.01)
    assert build_method("si", None, 0, TrainConfig()).config() == dict(c=SIParams.si_lambda, xi=SIParams.si_xi)

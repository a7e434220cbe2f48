"MAS: the importance against an independent per-block loop written from its definition (float64), importances summed over tasks, the penalty's value and gradient, checkpoints, bad input, registration."
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from cl_course.config import TrainConfig
from cl_course.mas import MAS, MASParams, centred_sq_norm, mas_importance
from cl_course.registry import build_method, method_params
from cl_course.stream import load_checkpoint, save_checkpoint

V = 31


def tiny_lm(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=16, n_embd=12, n_layer=1, n_head=2,
                                   bos_token_id=0, eos_token_id=0, pad_token_id=0))
    return m.to(dtype).eval()


def batches(seed=1, n=5, T=7, per_batch=3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (n, T), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, T - 4:] = 0                                  # a padded block
    ids = ids.masked_fill(mask == 0, 0)
    return [dict(input_ids=ids[i:i + per_batch], attention_mask=mask[i:i + per_batch]) for i in range(0, n, per_batch)]


def by_definition(model, data, per_block=True, centred=True, per_token=True):
    "(1/N) Σ_blocks |∂ Σ_t ‖z_t − z̄_t‖² / ∂θ| in float64, one backward pass per block (per_block=False: per batch)."
    m64 = tiny_lm(dtype=torch.float64)
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    params = list(m64.parameters())
    acc, tokens, blocks = [torch.zeros_like(p) for p in params], 0, 0
    for b in data:
        groups = [[i] for i in range(len(b["input_ids"]))] if per_block else [list(range(len(b["input_ids"])))]
        for r in groups:
            z = m64(input_ids=b["input_ids"][r], attention_mask=b["attention_mask"][r]).logits
            sq = (z ** 2).sum(-1) - ((z.sum(-1) ** 2) / z.shape[-1] if centred else 0)
            for a, g in zip(acc, torch.autograd.grad((sq * b["attention_mask"][r]).sum(), params)): a += g.abs()
        tokens += int(b["attention_mask"].sum())
        blocks += len(b["input_ids"])
    return {n: a / (tokens if per_token else blocks) for (n, _), a in zip(m64.named_parameters(), acc)}


def max_rel(a, b): return max(((a[n].double() - b[n]).abs().max() / b[n].abs().max()).item() for n in b)


def test_importance_equals_the_per_block_loop():
    model, data = tiny_lm(), batches()
    ours, ref = mas_importance(model, data), by_definition(model, data)
    assert set(ours) == set(ref) and all(v.dtype == torch.float32 for v in ours.values())
    assert max_rel(ours, ref) < 1e-5
    for wrong in (dict(per_block=False), dict(centred=False), dict(per_token=False)):   # the check sees each mistake
        assert max_rel(ours, by_definition(model, data, **wrong)) > 1e-2, wrong


def test_max_samples_takes_the_first_blocks_and_model_mode_is_kept():
    model, data = tiny_lm().train(), batches()
    first4 = [data[0], {k: v[:1] for k, v in data[1].items()}]
    assert max_rel(mas_importance(model, data, max_samples=4), by_definition(model, first4)) < 1e-5
    assert model.training                                   # evaluated in eval mode (no dropout), mode restored


def test_centred_sq_norm():
    z, mask = torch.randn(4, 9), torch.tensor([1.0, 1.0, 0.0, 1.0])
    expected = sum(((z[t] - z[t].mean()) ** 2).sum() for t in (0, 1, 3))
    torch.testing.assert_close(centred_sq_norm(z, mask), expected)
    torch.testing.assert_close(centred_sq_norm(z + 5.0, mask), expected)   # the shift the softmax ignores is ignored


def nudge(model, s):
    torch.manual_seed(s)
    with torch.no_grad():
        for p in model.parameters(): p.add_(0.05 * torch.randn_like(p))


def test_importances_sum_over_tasks_and_penalty_is_lambda_omega_delta_squared(tmp_path):
    model, mas = tiny_lm(), MAS(lam=3.0)
    omegas, thetas = [], []
    for k, data in enumerate((batches(1), batches(2))):
        nudge(model, k)
        mas.after_task(model, k, data)
        omegas.append(mas_importance(model, data))
        thetas.append({n: p.detach().clone() for n, p in model.named_parameters()})
    for n in omegas[0]:
        torch.testing.assert_close(mas.fisher[n], omegas[0][n] + omegas[1][n])
        assert torch.equal(mas.anchor[n], thetas[1][n])
    nudge(model, 9)
    named = dict(model.named_parameters())
    explicit = sum(3.0 * (mas.fisher[n] * (named[n] - thetas[1][n]) ** 2).sum() for n in named)
    pen = mas.penalty(model, 2)
    torch.testing.assert_close(pen, explicit, rtol=1e-5, atol=0)
    for a, b in zip(torch.autograd.grad(pen, list(named.values())), torch.autograd.grad(explicit, list(named.values()))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
    save_checkpoint(tmp_path / "c.pt", {"method": mas.state_dict()})
    back = MAS(lam=3.0)
    back.load_state_dict(load_checkpoint(tmp_path / "c.pt")["method"], model)
    torch.testing.assert_close(back.penalty(model, 2), pen)
    assert back.tasks == 2 and mas.extra_memory_bytes() == 2 * 4 * sum(p.numel() for p in model.parameters())


def test_bad_input():
    for bad in (-1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match=r"lam \(the MAS penalty strength\) must be"): MAS(lam=bad)
    with pytest.raises(ValueError, match=r"max_samples \(MAS's blocks per task\) must be"): MAS(max_samples=0)
    with pytest.raises(ValueError, match="mas_samples must be"): MASParams(mas_samples=2.5)
    with pytest.raises(ValueError, match="mas_lambda must be"): MASParams(mas_lambda=-1.0)
    empty = [dict(input_ids=torch.tensor([[3, 0]]), attention_mask=torch.tensor([[0, 0]]))]
    with pytest.raises(ValueError, match=r"no real \(non-padding\) tokens"): mas_importance(tiny_lm(), empty)


def test_registration():
    m = build_method("mas", method_params({"mas_lambda": 0.5, "mas_samples": 16}), 0, TrainConfig())
    assert isinstance(m, MAS) and m.name == "mas" and m.config() == dict(lam=0.5, max_samples=16)
    assert build_method("mas", None, 0, TrainConfig()).config() == dict(lam=MASParams.mas_lambda, max_samples=MASParams.mas_samples)

"""DER++: the loss against a hand-written computation, stored logits from the time of storing (not recomputed), the
reservoir's inclusion probability m/n, the top-k MSE at k = V against the full-logit MSE, checkpoints, bad parameters."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from cl_course.config import TrainConfig, derive_seed
from cl_course.derpp import DERPP, DERPPParams, LogitMemory, topk_logits, topk_mse
from cl_course.registry import build_method, method_params
from cl_course.stream import load_checkpoint, save_checkpoint
from cl_course.train import make_optimizer, model_logits, train_task, training_step

V = 29
CFG = TrainConfig(lr=1e-2, warmup_frac=0.0, epochs=1, progress=False)


def tiny_lm(vocab=V, seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=16, n_embd=12, n_layer=1, n_head=2, bos_token_id=0,
                                      eos_token_id=0, pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


def tiny_batch(n=3, T=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (n, T), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, T - 2:] = 0                                   # the last block is padded
    ids = ids.masked_fill(mask == 0, 0)
    return dict(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))


def nudge(model, seed, scale=0.05):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.add_(scale * torch.randn_like(p))


def ce_by_hand(logits, labels):
    "Next-token cross-entropy, the mean of -log softmax at the next token over real targets."
    logp, y = logits[:, :-1].log_softmax(-1), labels[:, 1:]
    keep = y != -100
    return -logp.gather(-1, y.clamp_min(0)[..., None])[..., 0][keep].mean()


def mse_by_hand(z, values, indices, mask):
    "Mean over real tokens of the mean over the k stored entries, from dense (R, T, V) tensors: the stored values and where they are."
    stored = torch.zeros_like(z).scatter(-1, indices.long(), values)
    has = torch.zeros_like(z, dtype=torch.bool).scatter(-1, indices.long(), True)
    return (((z - stored) ** 2 * has).sum(-1) / values.shape[-1])[mask.bool()].mean()


def dense(values, indices):
    "Stored logits with k = V back in vocabulary order."
    return torch.empty_like(values).scatter(-1, indices.long(), values)


def filled(alpha=0.3, beta=0.7, topk=6, batch=2, size=5):
    "A DER++ whose memory holds blocks with logits from other weights (6 offered, 5 kept)."
    d, other = DERPP(memory_size=size, alpha=alpha, beta=beta, topk=topk, batch=batch), tiny_lm(seed=3)
    for s in (10, 11):
        b = tiny_batch(seed=s)
        with torch.no_grad(): v, i = topk_logits(model_logits(other, b), topk)
        d.memory.offer(dict(b, logit_values=v, logit_indices=i), torch.Generator().manual_seed(s))
    return d


def test_loss_equals_ce_plus_alpha_mse_plus_beta_ce():
    d, model, new = filled(), tiny_lm(seed=4), tiny_batch()
    step = next(d.batches([new], task_id=1))
    part = step["derpp_part"]
    assert part.tolist() == [0] * 3 + [1] * 2 + [2] * 2
    assert torch.equal(step["input_ids"][part == 0], new["input_ids"])
    z = model_logits(model, step)
    rows = lambda p, k: step[k][part == p]
    expected = (ce_by_hand(z[part == 0], rows(0, "labels"))
                + 0.3 * mse_by_hand(z[part == 1], rows(1, "logit_values"), rows(1, "logit_indices"), rows(1, "attention_mask"))
                + 0.7 * ce_by_hand(z[part == 2], rows(2, "labels")))
    assert d.loss(model, step, 1).item() == pytest.approx(expected.item(), rel=1e-5)
    # the memory rows carry their own stored logits
    mem = d.memory.data
    for r, v, i in zip(step["input_ids"][part > 0], step["logit_values"][part > 0], step["logit_indices"][part > 0]):
        slot = [j for j in range(len(d.memory)) if torch.equal(mem["input_ids"][j], r)][0]
        assert torch.equal(mem["logit_values"][slot], v) and torch.equal(mem["logit_indices"][slot], i)
    # the gradient too: the loss is what training follows
    g1 = torch.autograd.grad(d.loss(model, step, 1), list(model.parameters()))
    g2 = torch.autograd.grad(expected, list(model.parameters()))
    for a, b in zip(g1, g2): torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_stored_logits_are_from_the_time_of_storing():
    model, d = tiny_lm(), DERPP(memory_size=8, alpha=1.0, beta=0.0, topk=V, batch=3)
    before = copy.deepcopy(model)
    params = d.trainable_parameters(model)
    opt, sched = make_optimizer(params, CFG, total_steps=10)
    new = tiny_batch()
    training_step(model, next(d.batches([new], task_id=0)), d, 0, opt, sched, CFG, params)   # the loop's own step
    with torch.no_grad(): z_before, z_after = model_logits(before, new), model_logits(model, new)
    mem = d.memory.data
    assert len(d.memory) == 3 and torch.equal(mem["input_ids"][:3], new["input_ids"])
    stored = dense(mem["logit_values"][:3], mem["logit_indices"][:3])
    torch.testing.assert_close(stored, z_before, rtol=1e-5, atol=1e-5)      # the forward pass of the step, before its update
    assert (stored - z_after).abs().max() > 1e-3                             # not the weights after it
    kept = {k: v.clone() for k, v in mem.items()}
    nudge(model, 5)
    assert all(torch.equal(kept[k], mem[k]) for k in mem)                    # the memory does not follow the weights
    step = next(d.batches([new], task_id=0))
    assert step["derpp_part"].tolist() == [0, 0, 0, 1, 1, 1]
    with torch.no_grad():
        mse = d.loss(model, step, 0) - ce_by_hand(model_logits(model, new), new["labels"])
        z_now = model_logits(model, new)
    assert mse > 1e-3                                                        # zero if the targets were recomputed now
    assert mse.item() == pytest.approx(F.mse_loss(z_now[new["attention_mask"].bool()], z_before[new["attention_mask"].bool()]).item(), rel=1e-4)


def test_the_loss_hook_alone_stores_nothing():
    d, model = DERPP(memory_size=4, topk=5), tiny_lm()
    d.loss(model, tiny_batch(), 0)
    assert len(d.memory) == 0 and d.memory.n_seen == 0                       # only after_update, after a step, stores
    d.after_update(model, 0)
    assert d.memory.n_seen == 3


def reservoir_frequencies(m, sizes, trials):
    counts = torch.zeros(sum(sizes))
    for seed in range(trials):
        mem, start = LogitMemory(m), 0
        for task, n in enumerate(sizes):
            mem.offer({"input_ids": torch.arange(start, start + n)[:, None]},
                      torch.Generator().manual_seed(derive_seed(seed, "derpp-memory", task)))
            start += n
        counts[mem.data["input_ids"][:len(mem), 0]] += 1
    return counts / trials


def test_reservoir_keeps_every_block_with_probability_m_over_n():
    m, sizes, trials = 4, [4, 4, 4], 3000
    freq = reservoir_frequencies(m, sizes, trials)
    p = m / sum(sizes)
    sd = math.sqrt(p * (1 - p) / trials)                                      # binomial count over `trials` seeds
    assert ((freq - p).abs() < 4 * sd).all(), ((freq - p) / sd).tolist()
    assert freq.sum().item() == pytest.approx(m)                              # the memory is full: m blocks every time


def test_memory_batches_are_drawn_from_the_seed():
    def drawn(seed):
        d = filled()
        d.seed = seed
        return next(d.batches([tiny_batch()], 1))["input_ids"][3:]
    assert torch.equal(drawn(0), drawn(0))
    assert any(not torch.equal(drawn(0), drawn(s)) for s in (1, 2, 3))


def test_topk_mse_with_k_equal_vocabulary_is_the_full_mse():
    model, b = tiny_lm(), tiny_batch()
    with torch.no_grad(): z_then = model_logits(model, b)
    nudge(model, 1)
    z_now = model_logits(model, b)
    real = b["attention_mask"].bool()
    full = F.mse_loss(z_now[real], z_then[real])
    got = topk_mse(z_now, *topk_logits(z_then, V), b["attention_mask"])
    assert got.item() == pytest.approx(full.item(), rel=1e-6)
    for a, c in zip(torch.autograd.grad(got, list(model.parameters()), retain_graph=True),
                    torch.autograd.grad(full, list(model.parameters()))):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-7)
    assert abs(topk_mse(z_now, *topk_logits(z_then, 5), b["attention_mask"]).item() - full.item()) > 1e-4
    values, indices = topk_logits(z_then, 5)
    assert indices.dtype == torch.int32 and not values.requires_grad and torch.equal(values, z_then.topk(5).values)


def test_state_round_trips_through_a_checkpoint(tmp_path):
    data = [tiny_batch(seed=s) for s in range(20, 26)]
    model, d = tiny_lm(), DERPP(memory_size=4, topk=5, batch=2, seed=7)
    d.before_task(model, 0, data)
    train_task(model, data, d, CFG, task_id=0)
    save_checkpoint(tmp_path / "c.pt", {"method": d.state_dict(), "model": model.state_dict()})
    ck = load_checkpoint(tmp_path / "c.pt")
    back, model2 = DERPP(memory_size=4, topk=5, batch=2, seed=7), tiny_lm()
    back.load_state_dict(ck["method"], model2)
    model2.load_state_dict(ck["model"])
    assert back.memory.n_seen == d.memory.n_seen == 18 and len(back.memory) == 4
    assert back.memory.data.keys() == d.memory.data.keys()
    assert all(torch.equal(back.memory.data[k], d.memory.data[k]) for k in d.memory.data)
    for m_, d_ in ((model, d), (model2, back)):                              # the next task, on both
        d_.before_task(m_, 1, data)
        train_task(m_, data[::-1], d_, CFG, task_id=1)
    assert all(torch.equal(back.memory.data[k], d.memory.data[k]) for k in d.memory.data)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))
    assert back.extra_memory_bytes() == 4 * 7 * (3 * 8 + 5 * (4 + 4))       # m · T · (3 int64 + k · (float32 + int32))
    bad = d.state_dict()
    bad["memory"]["n_seen"] = 2
    with pytest.raises(ValueError, match="LogitMemory"): DERPP(memory_size=4, topk=5).load_state_dict(bad, model)


@pytest.mark.parametrize("kw,name", [(dict(alpha=-1.0), "alpha"), (dict(beta=float("nan")), "beta"), (dict(topk=0), "topk"),
                                     (dict(topk=2.5), "topk"), (dict(batch=0), "batch"), (dict(memory_size=-1), "memory_size"),
                                     (dict(alpha="1"), "alpha")])
def test_bad_parameters_are_refused_in_one_line(kw, name):
    with pytest.raises(ValueError, match=f"{name} must be") as e: DERPP(**kw)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw", [dict(derpp_alpha=-0.1), dict(derpp_topk=0), dict(derpp_batch=0), dict(derpp_memory_size=1.5)])
def test_bad_params_dataclass(kw):
    with pytest.raises(ValueError, match=f"{next(iter(kw))} must be") as e: DERPPParams(**kw)
    assert "\n" not in str(e.value)


def test_topk_larger_than_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match="exceeds the vocabulary"): DERPP(topk=V + 1).loss(tiny_lm(), tiny_batch(), 0)


def test_registered_with_its_parameters():
    m = build_method("derpp", method_params({"derpp_topk": 8, "derpp_beta": 0.25}), 5, CFG)
    assert isinstance(m, DERPP)
    assert m.config() == dict(memory_size=DERPPParams.derpp_memory_size, alpha=DERPPParams.derpp_alpha, beta=0.25, topk=8,
                              batch=DERPPParams.derpp_batch, seed=5)

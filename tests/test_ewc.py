"EWC: the Fisher estimates against brute force, padding, the penalty against the explicit sum over tasks, online EWC, checkpoints, bad input, the widget's callback."
import math
from types import SimpleNamespace

import matplotlib
matplotlib.use("Agg")
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel

from cl_course.blocks import BlockDataset
from cl_course.fisher import FISHER_KINDS
from cl_course.ewc import EWC, quadratic_penalty
from cl_course.fisher import (PER_SAMPLE_WAYS, fisher_diag, keep_positions, next_token_targets, per_sample_sq_grads,
                              per_sample_sq_grads_loop)
from cl_course.ewc_experiments import ewc_experiment, ewc_widget
from oracles import exact_sq_grads_bruteforce
from cl_course.stream import Stream, load_checkpoint, save_checkpoint
from cl_course.config import TrainConfig
from cl_course.train import causal_lm_loss, train_task

V = 29


def tiny_lm(vocab=V, seed=0, tied=True):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_positions=16, n_embd=12, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0,
                     pad_token_id=0, tie_word_embeddings=tied)
    return GPT2LMHeadModel(cfg).eval()


def batches(vocab=V, n=4, T=7, seed=1, per_batch=2):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (n, T), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, T - 3:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    labels = ids.masked_fill(mask == 0, -100)
    return [dict(input_ids=ids[i:i + per_batch], attention_mask=mask[i:i + per_batch], labels=labels[i:i + per_batch])
            for i in range(0, n, per_batch)]


def n_targets(data):
    return sum(int((b["labels"][:, 1:] != -100).sum()) for b in data)


def brute_empirical(model, data):
    "Sum over blocks of (grad of the block's log-likelihood)^2, one backward pass per block, divided by the tokens."
    sq = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    for b in data:
        for i in range(len(b["input_ids"])):
            logits = model(input_ids=b["input_ids"][i:i + 1], attention_mask=b["attention_mask"][i:i + 1]).logits[0, :-1]
            ll = -F.cross_entropy(logits, b["labels"][i, 1:], ignore_index=-100, reduction="sum")
            grads = torch.autograd.grad(ll, [p for p in model.parameters() if p.requires_grad])
            for (n, _), g in zip([(n, p) for n, p in model.named_parameters() if p.requires_grad], grads): sq[n] += g ** 2
    return {n: v / n_targets(data) for n, v in sq.items()}


def close(a, b, rtol=1e-5):
    assert set(a) == set(b)
    for n in a:
        scale = max(1e-12, b[n].abs().max().item())
        assert (a[n] - b[n]).abs().max().item() <= rtol * scale + 1e-9, n


def test_empirical_matches_a_loop_of_per_sample_backward_passes():
    model, data = tiny_lm(), batches()
    close(fisher_diag(model, data, "empirical"), brute_empirical(model, data))
    close(fisher_diag(model, data, "empirical", per_sample="loop"), brute_empirical(model, data))
    close(fisher_diag(model, data, "empirical", per_sample="vmap"), brute_empirical(model, data))


def max_rel_diff(a, b):
    "Largest over the weight tensors of max|a - b| / max|b| (the benchmark's measure)."
    return max((a[n] - b[n]).abs().max().item() / b[n].abs().max().item() for n in b)


@pytest.mark.parametrize("tied, frozen, pad", [(True, None, "right"), (False, None, "right"), (True, "transformer.wte.weight", "right"),
                                               (False, "transformer.h.0.ln_1.bias", "left"), (True, None, "none")])
def test_layer_by_layer_equals_the_loop(tied, frozen, pad):
    "Tied or untied head, a frozen weight, padding at either end: the layer-by-layer sums equal the loop's to 1e-6."
    model = tiny_lm(tied=tied)
    if frozen: dict(model.named_parameters())[frozen].requires_grad_(False)
    b = {k: torch.cat([d[k] for d in batches(n=6, T=9)]) for k in ("input_ids", "attention_mask")}
    ids, mask = b["input_ids"], b["attention_mask"]
    if pad == "left": ids, mask = ids.flip(1), mask.flip(1)
    if pad == "none": mask = torch.ones_like(mask)
    tgt = next_token_targets(dict(labels=ids.masked_fill(mask == 0, -100), attention_mask=mask))
    ref = per_sample_sq_grads_loop(model, ids, mask, tgt)
    runs = {}
    for max_elements in (2**26, 1000, 1):   # all blocks at once, some weights in chunks, one block at a time
        got = runs[max_elements] = per_sample_sq_grads(model, ids, mask, tgt, max_elements=max_elements)
        assert set(got) == set(ref) and (frozen is None or frozen not in got) and not any(v.requires_grad for v in got.values())
        assert max_rel_diff(got, ref) <= 1e-6
    for n in ref:   # the blocks' squares are added in block order whatever the chunk: the same sum to the bit
        assert torch.equal(runs[1000][n], runs[2**26][n]) and torch.equal(runs[1][n], runs[2**26][n]), n


@pytest.mark.parametrize("tied, freeze_embedding", [(True, False), (False, False), (True, True)])
def test_exact_matches_the_explicit_sum_over_the_vocabulary(tied, freeze_embedding):
    model, data = tiny_lm(tied=tied), batches(n=2, per_batch=2)
    if freeze_embedding: model.get_input_embeddings().weight.requires_grad_(False)
    got = fisher_diag(model, data, "exact", max_positions=2, seed=5)
    g = torch.Generator().manual_seed(5)
    tgt = torch.cat([keep_positions(next_token_targets(b), 2, g) for b in data])
    ids = torch.cat([b["input_ids"] for b in data])
    # explicit: sum over every class y of p(y) * (grad log p(y))^2 at each kept target
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    ref = {n: torch.zeros_like(p) for n, p in params}
    for b, t in (tgt != -100).nonzero().tolist():
        lp = torch.log_softmax(model(input_ids=ids[b:b + 1, :t + 1]).logits[0, -1], -1)
        for y in range(V):
            for (n, _), gr in zip(params, torch.autograd.grad(lp[y], [p for _, p in params], retain_graph=True)):
                ref[n] += lp[y].exp().detach() * gr ** 2
    close(got, {n: v / int((tgt != -100).sum()) for n, v in ref.items()})
    close(got, {n: v / int((tgt != -100).sum()) for n, v in exact_sq_grads_bruteforce(model, ids, tgt).items()})


def test_batched_is_the_mean_over_batches_of_the_squared_minibatch_gradient():
    model, data = tiny_lm(), batches()
    ref = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for b in data:
        model.zero_grad()
        causal_lm_loss(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["labels"]).backward()
        for n, p in model.named_parameters(): ref[n] += p.grad ** 2 / len(data)
    close(fisher_diag(model, data, "batched"), ref)


@pytest.mark.parametrize("kind", ["empirical", "exact", "batched"])
def test_padding_never_contributes(kind):
    model, data = tiny_lm(), batches()
    padded = []
    for b in data:   # one more block that is all padding but its first token, and padding filled with another id
        ids = torch.cat([b["input_ids"], torch.zeros_like(b["input_ids"][:1])])
        mask = torch.cat([b["attention_mask"], torch.zeros_like(b["attention_mask"][:1])])
        mask[-1, 0] = 1
        ids = torch.where(mask == 1, ids, torch.full_like(ids, 5))
        padded.append(dict(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)))
    close(fisher_diag(model, data, kind), fisher_diag(model, padded, kind))


def test_sampled_averages_to_exact():
    model, data = tiny_lm(), batches()
    total = lambda f: sum(v.sum().item() for v in f.values())
    exact = total(fisher_diag(model, data, "exact"))
    draws = [total(fisher_diag(model, data, "sampled", seed=s)) for s in range(20)]
    assert abs(sum(draws) / len(draws) / exact - 1) < 0.05


def test_max_samples_counts_blocks():
    model, data = tiny_lm(), batches(n=4, per_batch=2)
    close(fisher_diag(model, data, "empirical", max_samples=3), brute_empirical(model, [data[0], {k: v[:1] for k, v in data[1].items()}]))


def test_vmap_fallback_warns_and_gives_the_same_result():
    class Picky(GPT2LMHeadModel):   # a Python `if` on the input: vmap cannot batch it
        def forward(self, *a, inputs_embeds=None, **kw):
            if inputs_embeds is not None and bool(inputs_embeds.isnan().any()): raise ValueError("NaN")
            return super().forward(*a, inputs_embeds=inputs_embeds, **kw)
    model, data = tiny_lm(), batches()
    picky = Picky(model.config).eval()
    picky.load_state_dict(model.state_dict())
    with pytest.warns(UserWarning, match="falling back"):
        got = fisher_diag(picky, data, "empirical", per_sample="vmap")
    close(got, brute_empirical(model, data))


def test_a_padding_row_of_a_tied_embedding_gets_only_the_heads_gradient():
    model = tiny_lm()
    emb = torch.nn.Embedding(V, model.config.n_embd, padding_idx=3)
    emb.weight = model.transformer.wte.weight   # still tied to the head
    model.transformer.wte = emb
    ids = torch.randint(1, V, (4, 9), generator=torch.Generator().manual_seed(0))
    ids[:, 2] = 3
    mask = torch.ones_like(ids)
    tgt = next_token_targets(dict(labels=ids, attention_mask=mask))
    got, ref = per_sample_sq_grads(model, ids, mask, tgt), per_sample_sq_grads_loop(model, ids, mask, tgt)
    assert max_rel_diff(got, ref) <= 1e-6 and ref["transformer.wte.weight"][3].abs().max() > 0


def test_a_weight_used_outside_its_layer_falls_back_to_the_loop():
    class Rescaled(GPT2LMHeadModel):   # ln_f's weight also scales the logits: a use the per-layer rules do not see
        def forward(self, *a, **kw):
            out = super().forward(*a, **kw)
            out.logits = out.logits * self.transformer.ln_f.weight.mean()
            return out
    model, data = tiny_lm(), batches()
    resc = Rescaled(model.config).eval()
    resc.load_state_dict(model.state_dict())
    with pytest.raises(NotImplementedError, match="outside the layers"):
        ids, mask = data[0]["input_ids"], data[0]["attention_mask"]
        per_sample_sq_grads(resc, ids, mask, next_token_targets(data[0]))
    with pytest.warns(UserWarning, match="falling back"):
        got = fisher_diag(resc, data, "empirical")
    close(got, brute_empirical(resc, data))


def nudge(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.add_(0.05 * torch.randn_like(p))


def test_separate_and_online_penalties_equal_their_definitions():
    model, data = tiny_lm(), batches()
    sep, onl = EWC(lam=2.0), EWC(lam=2.0, online=True, gamma=0.7)
    Fs, thetas = [], []
    for k in range(3):
        nudge(model, k)
        sep.after_task(model, k, data); onl.after_task(model, k, data)
        Fs.append(fisher_diag(model, data, seed=k))
        thetas.append({n: p.detach().clone() for n, p in model.named_parameters()})
    nudge(model, 10)
    named = dict(model.named_parameters())
    explicit = sum((Fk[n] * (named[n] - th[n]) ** 2).sum() for Fk, th in zip(Fs, thetas) for n in Fk)   # lam/2 = 1
    pen = sep.penalty(model, 3)
    assert math.isclose(pen.item(), explicit.item(), rel_tol=1e-5)
    for a, b in zip(torch.autograd.grad(pen, list(named.values())), torch.autograd.grad(explicit, list(named.values()))):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    F_on = {n: 0.49 * Fs[0][n] + 0.7 * Fs[1][n] + Fs[2][n] for n in named}
    ref_on = sum((F_on[n] * (named[n] - thetas[2][n]) ** 2).sum() for n in named)
    assert math.isclose(onl.penalty(model, 3).item(), ref_on.item(), rel_tol=1e-5)
    assert EWC(lam=0.0).penalty(model, 0) is None and sep.extra_memory_bytes() == onl.extra_memory_bytes() > 0


@pytest.mark.parametrize("online", [False, True])
def test_consolidate_leaves_the_callers_dicts_alone(online):
    "The Fisher and weights handed to `consolidate` are not changed by a later task's consolidation."
    g = torch.Generator().manual_seed(0)
    F, theta = ({"w": torch.rand(5, generator=g)} for _ in range(2))
    kept = {"F": F["w"].clone(), "theta": theta["w"].clone()}
    e = EWC(online=online)
    e.consolidate(F, theta)
    e.consolidate({"w": torch.rand(5, generator=g)}, {"w": torch.randn(5, generator=g)})
    assert torch.equal(F["w"], kept["F"]) and torch.equal(theta["w"], kept["theta"])


def test_quadratic_penalty_backward_matches_finite_differences_and_accumulates():
    "The hand-written backward of the fused penalty: gradcheck in float64, and gradients add to those already there."
    g = torch.Generator().manual_seed(1)
    shapes = [(4, 3), (7,), (2, 3, 2), ()]
    th = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]
    sf = [torch.rand(s, generator=g, dtype=torch.float64) for s in shapes]
    an = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    assert torch.autograd.gradcheck(lambda *p: quadratic_penalty(list(p), sf, an), tuple(th))
    (th[0] ** 2).sum().backward()   # a gradient already there (the cross-entropy's)
    (3.0 * quadratic_penalty(th, sf, an)).backward()
    assert torch.allclose(th[0].grad, 2 * th[0].detach() + 6 * sf[0] ** 2 * (th[0].detach() - an[0]))
    with pytest.raises(ValueError, match="same length"): quadratic_penalty(th, sf[:2], an)


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    model, data = tiny_lm(), batches()
    e = EWC(lam=5.0, online=True, gamma=0.5)
    for k in range(2): nudge(model, k); e.after_task(model, k, data)
    save_checkpoint(tmp_path / "c.pt", {"method": e.state_dict()})
    back = EWC(lam=5.0, online=True, gamma=0.5)
    back.load_state_dict(load_checkpoint(tmp_path / "c.pt")["method"], model)
    nudge(model, 7)
    assert math.isclose(back.penalty(model, 2).item(), e.penalty(model, 2).item(), rel_tol=1e-6)
    assert back.tasks == 2 and back.config() == e.config()


def test_the_penalty_holds_important_weights_near_the_anchor_in_training():
    "Train on new data with and without EWC: the Fisher-weighted distance from the anchor is what EWC keeps small."
    data = batches(n=8, per_batch=4)
    cfg = TrainConfig(epochs=5, lr=1e-2, progress=False, warmup_frac=0.0)
    dist = {}
    for lam in (0.0, 1e4):
        model = tiny_lm()
        e = EWC(lam=lam)
        e.after_task(model, 0, data)
        F0, anchor = fisher_diag(model, data), {n: p.detach().clone() for n, p in model.named_parameters()}
        e.before_task(model, 1, data)
        train_task(model.train(), data[::-1], e, cfg, task_id=1)
        dist[lam] = sum((F0[n] * (p.detach() - anchor[n]) ** 2).sum().item() for n, p in model.named_parameters())
    assert dist[1e4] < 0.1 * dist[0.0]


@pytest.mark.parametrize("kw, msg", [(dict(lam=-1.0), "lam"), (dict(lam=float("nan")), "lam"), (dict(lam=float("inf")), "lam"),
                                     (dict(online=True, gamma=0.0), "gamma"), (dict(gamma=1.01), "gamma"),
                                     (dict(fisher_kind="true"), "Unknown Fisher kind"), (dict(max_fisher_samples=0), "max_fisher_samples")])
def test_bad_hyperparameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        EWC(**kw)


def test_bad_fisher_input():
    model = tiny_lm()
    with pytest.raises(ValueError, match="Unknown Fisher kind"): fisher_diag(model, batches(), "diag")
    with pytest.raises(ValueError, match="per_sample"): fisher_diag(model, batches(), per_sample="vectorize")
    assert PER_SAMPLE_WAYS == ("hooks", "vmap", "loop")
    empty = [dict(input_ids=torch.tensor([[4, 0, 0]]), attention_mask=torch.tensor([[1, 0, 0]]), labels=torch.tensor([[4, -100, -100]]))]
    for kind in FISHER_KINDS:
        with pytest.raises(ValueError, match="no real"): fisher_diag(model, empty, kind)
    with pytest.raises(ValueError, match="no real"): EWC().after_task(model, 0, empty)


def test_parameters_that_changed_shape_are_refused():
    e = EWC()
    e.after_task(tiny_lm(), 0, batches())
    grown = tiny_lm(vocab=V + 4)
    with pytest.raises(ValueError, match="changed shape"): e.before_task(grown, 1, None)
    with pytest.raises(ValueError, match="changed shape"): e.penalty(grown, 1)
    with pytest.raises(ValueError, match="changed shape"): e.after_task(grown, 1, batches(vocab=V + 4))


def tiny_stream(n_tasks=2):
    data = [batches(n=4, per_batch=2, seed=s) for s in range(n_tasks)]
    def loader(bs):
        blocks = {k: torch.cat([b[k] for b in bs]) for k in bs[0]}
        return DataLoader(BlockDataset(blocks), batch_size=2)
    loaders = [(loader(d), loader(d)) for d in data]
    return Stream(TrainConfig(epochs=1, progress=False), [SimpleNamespace(name=f"t{i}", train=[], eval=[]) for i in range(n_tasks)], None, loaders)


def test_the_widget_callback_runs_a_stream_and_draws():
    import matplotlib.pyplot as plt
    s = tiny_stream()
    res = ewc_experiment(10.0, "empirical", online=True, gamma=0.8, stream=s, new_model=tiny_lm)
    assert res["result"].method == "online-ewc" and res["result"].accuracy.shape == (3, 2)
    assert res["method"].tasks == 2 and len(res["figure"].axes) == 5
    plt.close(res["figure"])
    with pytest.raises(ValueError, match="gamma"):
        ewc_experiment(10.0, online=True, gamma=2.0, stream=s, new_model=tiny_lm)
    panel = ewc_widget(s, new_model=tiny_lm)   # builds without a frontend
    assert type(panel).__name__ == "VBox"

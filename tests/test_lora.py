"LoRA by hand: parity with PEFT (Conv1D and Linear), merging, the continual variants' state and resume, bad input."
import copy
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from cl_course.lora import (LoRALayer, add_adapter, add_lora, adapter_names, copy_to_peft, lora_layers, lora_parameters, merge_lora,
                            parameter_counts, set_active_adapters, unmerge_lora)
from cl_course.lora_methods import OLoRA, PerTaskLoRA, lora_method
from cl_course.stream import reduced_stream
from cl_course.train import causal_lm_loss
from cl_course.config import course_config
from cl_course.stream import load_checkpoint, prepare_stream, run_stream, save_checkpoint

TOL = 1e-6


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=61, n_positions=32, n_embd=16, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def randomize_B(model, std=0.1, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for l in lora_layers(model).values():
            for a in l.adapters.values(): a.B.copy_(torch.randn(a.B.shape, generator=g) * std)


@pytest.mark.parametrize("targets", [("c_attn",), ("c_attn", "c_proj", "c_fc")])
def test_peft_parity_on_gpt2_conv1d(targets):
    from peft import LoraConfig, get_peft_model
    base = tiny_gpt2()
    ours = add_lora(copy.deepcopy(base), rank=4, alpha=12, targets=targets, seed=0)
    randomize_B(ours)
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=12, target_modules=list(targets),
                                                            fan_in_fan_out=True, lora_dropout=0.0))
    copy_to_peft(ours, theirs)
    ids = torch.randint(0, 61, (2, 12), generator=torch.Generator().manual_seed(0))
    lo, lt = ours(input_ids=ids).logits, theirs(input_ids=ids).logits
    torch.testing.assert_close(lo, lt, rtol=0, atol=TOL)
    causal_lm_loss(lo, ids).backward(); causal_lm_loss(lt, ids).backward()
    for n, l in lora_layers(ours).items():
        pl = theirs.base_model.model.get_submodule(n)
        assert l.adapters["default"].B.grad.abs().max() > 0
        torch.testing.assert_close(l.adapters["default"].A.grad, pl.lora_A["default"].weight.grad, rtol=0, atol=TOL)
        torch.testing.assert_close(l.adapters["default"].B.grad, pl.lora_B["default"].weight.grad, rtol=0, atol=TOL)
    assert parameter_counts(ours)["trainable"] == theirs.get_nb_trainable_parameters()[0]
    merge_lora(ours)
    merged = theirs.merge_and_unload()
    for n, l in lora_layers(ours).items():
        torch.testing.assert_close(l.base.weight, merged.get_submodule(n).weight, rtol=0, atol=TOL)
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=ids).logits, merged(input_ids=ids).logits, rtol=0, atol=1e-5)


def test_peft_parity_on_linear():
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(0)
    base = nn.Sequential()
    base.add_module("up", nn.Linear(9, 20)); base.add_module("act", nn.Tanh()); base.add_module("down", nn.Linear(20, 5))
    ours = add_lora(copy.deepcopy(base), rank=3, alpha=7, targets=("up", "down"), seed=0)
    randomize_B(ours)
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=3, lora_alpha=7, target_modules=["up", "down"], lora_dropout=0.0))
    copy_to_peft(ours, theirs)
    x = torch.randn(6, 9)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=TOL)
    merge_lora(ours)
    merged = theirs.merge_and_unload()
    for n, l in lora_layers(ours).items():
        torch.testing.assert_close(l.base.weight, merged.get_submodule(n).weight, rtol=0, atol=TOL)


def test_merge_uses_the_conv1d_transpose_and_unmerge_restores():
    torch.manual_seed(0)
    conv = Conv1D(8, 8)                       # square: a wrong transpose would raise no error
    w0 = conv.weight.detach().clone()
    layer = LoRALayer(conv)
    a = layer.add_adapter("a", rank=2, alpha=3)
    layer.active = ["a"]
    with torch.no_grad(): a.B.normal_()
    x = torch.randn(5, 8)
    with torch.no_grad():
        expected = x @ w0 + conv.bias + x @ (1.5 * a.B @ a.A).T      # W0 x + (alpha/r) B A x, written out
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)
        layer.merge()
        torch.testing.assert_close(conv.weight, w0 + (1.5 * a.B @ a.A).T, rtol=0, atol=1e-6)
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)
        layer.unmerge()
        torch.testing.assert_close(conv.weight, w0, rtol=0, atol=1e-6)


def test_only_adapters_train_and_the_start_is_the_base_model():
    base = tiny_gpt2()
    m = add_lora(copy.deepcopy(base), rank=2, alpha=4)
    assert all(("adapters" in n) == p.requires_grad for n, p in m.named_parameters())
    ids = torch.randint(0, 61, (2, 10))
    with torch.no_grad(): torch.testing.assert_close(m(input_ids=ids).logits, base(input_ids=ids).logits)
    assert parameter_counts(m)["lora"] == 2 * 2 * (16 + 48)


@pytest.mark.parametrize("call, msg", [
    (lambda m: add_lora(m, rank=0, alpha=1), "rank must be an integer >= 1"),
    (lambda m: add_lora(m, rank=2.5, alpha=1), "rank must be an integer >= 1"),
    (lambda m: add_lora(m, rank=17, alpha=1, targets="attn.c_proj"), "larger than the smaller dimension of transformer.h.0.attn.c_proj"),
    (lambda m: add_lora(m, rank=2, alpha=0), "alpha must be a finite number > 0"),
    (lambda m: add_lora(m, rank=2, alpha=-1.0), "alpha must be a finite number > 0"),
    (lambda m: add_lora(m, rank=2, alpha=float("nan")), "alpha must be a finite number > 0"),
    (lambda m: add_lora(m, rank=2, alpha=4, targets="q_proj"), "Layers LoRA can wrap here: c_attn, c_fc, c_proj, lm_head"),
    (lambda m: add_lora(m, rank=2, alpha=4, targets=()), "targets must be"),
    (lambda m: add_lora(m, rank=2, alpha=4, targets="mlp"), "not an nn.Linear or Conv1D"),
    (lambda m: add_lora(add_lora(m, rank=2, alpha=4), rank=2, alpha=4), "LoRA was already added to transformer.h.0.attn.c_attn"),
    (lambda m: merge_lora(merge_lora(add_lora(m, rank=2, alpha=4))), "already merged"),
    (lambda m: unmerge_lora(add_lora(m, rank=2, alpha=4)), "Nothing is merged"),
    (lambda m: merge_lora(add_lora(m, rank=2, alpha=4, targets="lm_head")), "tied"),
    (lambda m: add_adapter(m, "x", rank=2, alpha=4), "no LoRA layers"),
    (lambda m: set_active_adapters(add_lora(m, rank=2, alpha=4), ["nope"]), "Unknown adapter"),
    (lambda m: lora_method("lora"), "Unknown LoRA variant 'lora'; choose from shared, per-task, o-lora"),
    (lambda m: lora_method("o-lora", lambda_orth=-0.5), "lambda_orth must be"),
    (lambda m: lora_method("shared", lr=-1.0), "lr must be"),
    (lambda m: lora_method("shared", rank=20).setup(m), "smaller dimension"),
])
def test_bad_input(call, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        call(tiny_gpt2())


def test_failed_add_lora_leaves_the_model_unchanged():
    m = tiny_gpt2()
    with pytest.raises(ValueError):
        add_lora(m, rank=2, alpha=4, targets=("c_attn", "nope"))
    assert lora_layers(m) == {} and all(p.requires_grad for p in m.parameters())


def test_per_task_select_task_picks_the_task_adapter_and_the_base_model_for_unseen_tasks():
    base = tiny_gpt2()
    method = PerTaskLoRA(rank=2, alpha=4, targets="c_attn")
    m = method.setup(copy.deepcopy(base))
    for t in range(2): method.before_task(m, t, None)
    randomize_B(m)
    batch = dict(input_ids=torch.randint(0, 61, (2, 10)), attention_mask=torch.ones(2, 10, dtype=torch.long))

    def logits(t):
        method.select_task(m, t)
        return method.forward(m, batch, t).logits

    with torch.no_grad():
        for t in range(2):
            ref = copy.deepcopy(m)
            set_active_adapters(ref, [f"task{t}"])
            torch.testing.assert_close(logits(t), ref(**batch).logits)
        torch.testing.assert_close(logits(5), base(**batch).logits)
        assert not torch.allclose(logits(0), logits(1))
        # forward never switches adapters itself: the wrong task's adapter is an error, not another task's logits
        method.select_task(m, 0)
        with pytest.raises(ValueError, match=r"call select_task\(model, 1\) first"):
            method.forward(m, batch, 1)


def test_olora_penalty_is_the_l1_overlap_with_earlier_adapters():
    method = OLoRA(rank=3, alpha=6, targets=("c_attn", "mlp.c_proj"), lambda_orth=0.7)
    m = method.setup(tiny_gpt2())
    method.before_task(m, 0, None)
    assert method.penalty(m, 0) is None
    for t in (1, 2): method.before_task(m, t, None)
    hand = 0.0
    for l in lora_layers(m).values():
        new = l.adapters["task2"].A
        for old in ("task0", "task1"):
            hand += sum(abs(float((new[i] @ l.adapters[old].A[j]).detach())) for i in range(3) for j in range(3))
    assert math.isclose(method.penalty(m, 2).item(), 0.7 * hand, rel_tol=1e-5)
    method.penalty(m, 2).backward()
    for l in lora_layers(m).values():
        assert l.adapters["task2"].A.grad is not None and l.adapters["task0"].A.grad is None


@pytest.mark.parametrize("variant", ["shared", "per-task", "o-lora"])
def test_state_rebuilds_adapters_on_a_fresh_model(variant, tmp_path):
    method = lora_method(variant, rank=2, alpha=4, targets=("c_attn", "c_fc"))
    m = method.setup(tiny_gpt2())
    for t in range(3): method.before_task(m, t, None)
    randomize_B(m)
    save_checkpoint(tmp_path / "c.pt", dict(model=m.state_dict(), method=method.state_dict()))
    state = load_checkpoint(tmp_path / "c.pt")            # weights_only
    other = lora_method(variant, rank=2, alpha=4, targets=("c_attn", "c_fc"))
    fresh = other.setup(tiny_gpt2(seed=5))
    other.load_state_dict(state["method"], fresh)
    fresh.load_state_dict(state["model"])
    assert adapter_names(fresh) == adapter_names(m) and other.adapters == method.adapters
    assert [p.requires_grad for p in lora_parameters(fresh)] == [p.requires_grad for p in lora_parameters(m)]
    assert other.adapter_params() == method.adapter_params()
    batch = dict(input_ids=torch.randint(0, 61, (2, 10)), attention_mask=torch.ones(2, 10, dtype=torch.long))
    with torch.no_grad():
        for t in range(3):
            other.select_task(fresh, t); method.select_task(m, t)
            torch.testing.assert_close(other.forward(fresh, batch, t).logits, method.forward(m, batch, t).logits, rtol=0, atol=0)


QUICK = dict(pretrain_articles=0, max_train_blocks=16, max_eval_blocks=4, epochs=1, n_tasks=3, progress=False)


@pytest.fixture(scope="module")
def stream():
    d = Path(os.environ.get("CL_COURSE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw")
    os.environ.setdefault("CL_COURSE_DATA", str(d))
    return prepare_stream(course_config("small", **QUICK))


class _Crash(PerTaskLoRA):
    def after_task(self, model, task_id, loader):
        if task_id == 1: raise KeyboardInterrupt


def test_resumed_per_task_run_equals_the_uninterrupted_one_and_never_forgets(stream, tmp_path):
    kw = dict(rank=2, alpha=4.0, targets=("c_attn",))
    whole = run_stream(PerTaskLoRA(**kw), stream)
    with pytest.raises(KeyboardInterrupt):
        run_stream(_Crash(**kw), stream, checkpoint_dir=tmp_path)
    # the checkpoint keeps the adapters and nothing of the frozen backbone, which it names by a digest
    state, start = load_checkpoint(tmp_path / "checkpoint.pt"), stream.new_model()
    assert state["done"] == 1 and sorted(state["trained"]) == sorted(k for k in state["model"] if ".adapters.task0." in k)
    assert sum(state["model"][k].numel() for k in state["trained"]) == kw["rank"] * sum(
        sum(m.weight.shape) for n, m in start.named_modules() if n.endswith("c_attn"))   # r·(d_in + d_out) per target layer
    assert not set(state["model"]) & set(start.state_dict())   # not one weight of the backbone
    moved = stream.new_model()
    with torch.no_grad(): moved.transformer.h[0].mlp.c_fc.weight[0, 0] += 1e-3   # one frozen weight differs
    with pytest.raises(ValueError, match="starting model"):
        run_stream(PerTaskLoRA(**kw), stream, checkpoint_dir=tmp_path, resume=True, model=moved)
    resumed = run_stream(PerTaskLoRA(**kw), stream, checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(resumed.perplexity, whole.perplexity)
    for j in range(len(stream)):   # zero forgetting, exactly: a task's column is constant once trained
        np.testing.assert_array_equal(whole.perplexity[j + 1:, j], whole.perplexity[j + 1, j])
    assert (np.diag(whole.perplexity[1:]) < whole.perplexity[0]).all()   # and each adapter did learn its task


def test_reduced_stream_starts_from_the_same_model(stream):
    small = reduced_stream(stream, n_tasks=2, max_train_blocks=8, max_eval_blocks=2)
    assert len(small) == 2 and len(small.loaders[0][0].dataset) == 8 and small.config.n_tasks == 2
    a, b = small.new_model().state_dict(), stream.new_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="n_tasks must be between 1 and 3"):
        reduced_stream(stream, n_tasks=4)

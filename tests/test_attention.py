"Hand-written attention against GPT-2's own (every layer, eager and SDPA), bad input, and the cost measurements."
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from cl_course import attention as A
from cl_course import attention_cost as AC
from cl_course.attention import (attention_by_hand, attention_html, attention_parity, causal_self_attention,
                                 head_scores, split_heads)
from cl_course.attention_cost import (attention_scaling, fit_exponent, measure_attention, naive_attention,
                                      peak_memory_bytes, scaling_exponents, score_matrix_bytes, sdpa_attention,
                                      tiled_attention)
from cl_course.models import load_model

REPO = Path(__file__).resolve().parents[1]


def sharpened(name: str, impl: str, std: float = 0.25, seed: int = 0):
    """A small GPT-2 whose attention projections are redrawn with a large std, so that its attention
    is far from uniform (a fresh model's is nearly uniform, which would make a weak test)."""
    model = load_model(name, attn_implementation=impl, device="cpu").eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in model.transformer.h:
            w = b.attn.c_attn.weight
            w.copy_(torch.randn(w.shape, generator=g) * std)
    return model


@pytest.mark.parametrize("name", ["gpt2-tiny", "gpt2-mini"])
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_parity_every_layer(name, impl):
    model = sharpened(name, impl)
    ids = torch.randint(0, model.config.vocab_size, (3, 64), generator=torch.Generator().manual_seed(1))
    rows = attention_parity(model, ids)
    assert [r["layer"] for r in rows] == list(range(model.config.n_layer))
    for r in rows:
        assert r["implementation"] == impl
        assert r["output_rel_err"] < 1e-5, r
        if impl == "eager": assert r["weights_max_abs_err"] < 1e-6, r
        else: assert r["weights_max_abs_err"] is None
    if impl == "eager":   # the test is meaningful: these heads really are peaked, not uniform
        with torch.no_grad(): att = model(ids, output_attentions=True).attentions
        assert max(a[..., 8:, :].max().item() for a in att) > 0.9


def test_parity_at_full_context():
    model = sharpened("gpt2-tiny", "sdpa")
    ids = torch.randint(0, model.config.vocab_size, (1, model.config.n_positions))
    assert max(r["output_rel_err"] for r in attention_parity(model, ids)) < 1e-5


def test_parity_catches_mistakes():
    model = sharpened("gpt2-tiny", "eager")
    ids = torch.randint(0, model.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(2))

    def unscaled(x, attn, return_weights=True):   # forgets 1/sqrt(d)
        q, k, v = (split_heads(t, attn.num_heads) for t in (x @ attn.c_attn.weight + attn.c_attn.bias).split(x.shape[-1], -1))
        out, w = attention_by_hand(q, k, v, scale=1.0)
        return A.merge_heads(out) @ attn.c_proj.weight + attn.c_proj.bias, w

    def heads_swapped(x, attn, return_weights=True):   # splits the heads in the wrong order
        y, w = causal_self_attention(x, attn, return_weights=True)
        return y, w.flip(1)

    for fn in (unscaled, heads_swapped):
        rows = attention_parity(model, ids, attn_fn=fn)
        assert all(r["weights_max_abs_err"] > 0.05 for r in rows), (fn.__name__, rows)


def test_parity_needs_eval_mode():
    model = load_model("gpt2-tiny", device="cpu")   # training mode: dropout is on
    with pytest.raises(ValueError, match="eval"):
        attention_parity(model, torch.zeros(1, 4, dtype=torch.long))


def test_bad_input():
    model = load_model("gpt2-tiny", device="cpu").eval()
    attn = model.transformer.h[0].attn
    with pytest.raises(ValueError, match="embedding size 96 does not match the attention block's 128"):
        causal_self_attention(torch.randn(1, 4, 96), attn)
    with pytest.raises(ValueError, match="257 tokens is longer than the model's context of 256"):
        causal_self_attention(torch.randn(1, 257, 128), attn)
    with pytest.raises(ValueError, match="n_head=3 does not divide the embedding size 128"):
        causal_self_attention(torch.randn(1, 4, 128), attn, n_head=3)
    with pytest.raises(ValueError, match="n_head=0"):
        split_heads(torch.randn(1, 4, 128), 0)
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        causal_self_attention(torch.randn(4, 128), attn)
    # a longer context can be allowed explicitly (attention itself has no length limit)
    assert causal_self_attention(torch.randn(1, 300, 128), attn, max_positions=512).shape == (1, 300, 128)


def test_attention_weights_need_eager():
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        attention_html((), ["a"])
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        head_scores(())


def test_head_scores():
    T = 6
    prev = torch.zeros(1, 1, T, T)
    prev[0, 0, 0, 0] = 1
    prev[0, 0, torch.arange(1, T), torch.arange(T - 1)] = 1
    first = torch.zeros(1, 1, T, T)
    first[..., 0] = 1
    s = head_scores([torch.cat([prev, first], 1)])
    assert s["previous"].tolist() == [[1.0, pytest.approx(1 / (T - 1))]]
    assert s["first"].tolist() == [[pytest.approx(1 / (T - 1)), 1.0]]
    assert s["uniform"].item() == pytest.approx(sum(1 / (i + 1) for i in range(1, T)) / (T - 1))


def test_tiled_and_kv_cache_match_full_attention():
    q, k, v = torch.randn(3, 2, 3, 70, 16).unbind(0)
    full = naive_attention(q, k, v)
    torch.testing.assert_close(tiled_attention(q, k, v, block=16), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sdpa_attention(q, k, v), full, rtol=1e-5, atol=1e-5)
    last, w = attention_by_hand(q[:, :, -5:], k, v)      # the 5 newest queries against all cached keys
    torch.testing.assert_close(last, full[:, :, -5:], rtol=1e-5, atol=1e-6)
    assert (w[..., 0, -4:] == 0).all()                     # the first of them still cannot see the last 4


def test_peak_memory_measures_tensor_allocations():
    def work():
        a = torch.ones(2**20)          # 4 MiB
        b = torch.ones(2**21)          # 8 MiB, alive with a
        del a
        return b.sum()
    assert peak_memory_bytes(work) == 12 * 2**20
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        peak_memory_bytes(lambda: None, "meta")


def test_naive_memory_is_quadratic_and_sdpa_linear():
    rows = attention_scaling(lengths=(128, 256, 512), modes=("forward",), n_head=4, d_head=32, repeats=1)
    by = {(r["impl"], r["T"]): r for r in rows}
    for T in (128, 256, 512):
        assert 1.9 < by["naive", T]["peak_bytes"] / score_matrix_bytes(T, 4) < 3.1
    e = {x["impl"]: x for x in scaling_exponents(rows, min_length=128)}
    assert e["naive"]["memory_exponent"] == pytest.approx(2.0, abs=0.2)
    assert e["sdpa"]["memory_exponent"] < 1.3
    assert all(r["time_s"] > 0 and not r["oom"] for r in rows)


def test_sweep_records_out_of_memory(monkeypatch):
    real = AC.measure_attention
    def fake(impl, T, **kw):
        if T > 64: raise RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory")
        return real(impl, T, **kw)
    monkeypatch.setattr(AC, "measure_attention", fake)
    rows = attention_scaling(lengths=(32, 64, 128), impls=("naive",), modes=("forward",), n_head=2, d_head=8, repeats=1)
    assert [r["oom"] for r in rows] == [False, False, True]
    assert rows[-1]["time_s"] is None
    def broken(impl, T, **kw): raise RuntimeError("some other bug")
    monkeypatch.setattr(AC, "measure_attention", broken)
    with pytest.raises(RuntimeError, match="other bug"):
        attention_scaling(lengths=(32,), impls=("naive",), modes=("forward",))


def test_sweep_arguments():
    with pytest.raises(ValueError, match="Unknown attention implementation 'flash'"):
        attention_scaling(impls=("flash",))
    with pytest.raises(ValueError, match="Unknown modes"):
        attention_scaling(modes=("backward",))
    with pytest.raises(ValueError, match="at least 2"):
        fit_exponent([1], [1])
    assert fit_exponent([10, 100, 1000], [5, 50, 500]) == pytest.approx(1.0)


def test_measure_keeps_thread_setting():
    before = torch.get_num_threads()
    r = measure_attention("sdpa", 64, n_head=2, d_head=8, repeats=1, threads=1)
    assert r["threads"] == 1 and torch.get_num_threads() == before


def test_benchmark_script(tmp_path):
    spec = importlib.util.spec_from_file_location("attention_scaling_bench", REPO / "benchmarks" / "attention_scaling.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "scaling.json"
    bench.main(["--device", "cpu", "--lengths", "32", "64", "128", "--n-head", "2", "--d-head", "16",
                "--repeats", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["config"]["lengths"] == [32, 64, 128]
    assert len(data["results"]) == 2 * 2 * 3      # impls x modes x lengths
    assert {(e["impl"], e["mode"]) for e in data["exponents"]} == {(i, m) for i in ("naive", "sdpa") for m in ("forward", "forward+backward")}
    assert not list(tmp_path.glob("*.tmp")), "a temporary file was left behind"

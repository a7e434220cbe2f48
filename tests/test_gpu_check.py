"""benchmarks/gpu_check.py at its dry-run size (CPU, tiny stand-in), in an environment without the packages the GPU
machine lacks (datasets, ipywidgets, bertviz, nbdev, fastcore): every part runs and writes what it measured."""
import importlib.util
import json, statistics
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cl_course.config import BUDGETS

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
MISSING_ON_GPU = ("datasets", "ipywidgets", "bertviz", "nbdev", "fastcore")   # not on the GPU machine (device KINDS.md)
PEAK = 0.5   # TFLOP/s given with --peak-tflops, so that the dry run computes an MFU

# Put first on PYTHONPATH, this makes the packages above unimportable, as if not installed: every finder on sys.meta_path
# (the editable install's too) answers "not found" for them, and importlib.metadata no longer lists their distributions.
BLOCKER = f'''
import sys
BLOCKED = {MISSING_ON_GPU!r}
def _blocked(name): return (name or "").split(".")[0].replace("-", "_").lower() in BLOCKED
class _Hide:
    def __init__(self, finder): self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if _blocked(name): return None
        f = getattr(self.finder, "find_spec", None)
        return f(name, path, target) if f else None
    def find_distributions(self, context=None, **kw):
        f = getattr(self.finder, "find_distributions", None)
        if f is None: return iter(())
        ctx = context if context is not None else __import__("importlib.metadata").metadata.DistributionFinder.Context(**kw)
        return (d for d in f(ctx) if not _blocked(d.metadata["Name"]))
    def invalidate_caches(self):
        f = getattr(self.finder, "invalidate_caches", None)
        if f: f()
sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
'''


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("blocker")
    (d / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join([str(d), str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg",
                CL_COURSE_CACHE=str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, blocked_env) -> Path:
    "The dry run, once for this module, with the GPU machine's missing packages blocked; its output folder."
    from standin import shared_data
    wikitext_dir, out = shared_data(), tmp_path_factory.mktemp("gpu_check")
    p = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--data", str(wikitext_dir), "--out", str(out),
                        "--peak-tflops", str(PEAK)], capture_output=True, text=True, timeout=900, env=blocked_env, cwd=REPO)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return out


@pytest.mark.parametrize("name", MISSING_ON_GPU)
def test_blocker_hides_the_package(blocked_env, name):
    code = (f"import importlib.metadata as m, importlib.util as u\nassert u.find_spec({name!r}) is None\n"
            f"try: m.version({name!r}); raise SystemExit('metadata still there')\nexcept m.PackageNotFoundError: pass\n"
            f"import {name}")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=blocked_env, timeout=120)
    assert p.returncode == 1 and f"ModuleNotFoundError: No module named '{name}'" in p.stderr, p.stderr[-2000:]


def test_dry_run_writes_every_part(dry_run):
    from transformers import GPT2Config, GPT2LMHeadModel
    from cl_course.registry import method_specs
    METHODS = list(method_specs())
    from cl_course.models import n_params
    g = _load()
    rec = json.loads((dry_run / "gpu_check.json").read_text())
    assert rec["dry_run"] and rec["device"] == "cpu" and list(rec["parts"]) == ["smoke", "throughput", "attention", "ewc"]
    assert all(p["ok"] for p in rec["parts"].values())
    assert rec["versions"]["datasets"] is None   # run where `datasets` was not to be found
    # the stand-in: GPT-2's vocabulary and positions at the dry run's tiny width, counted independently
    n = n_params(GPT2LMHeadModel(GPT2Config(**g.TINY)))
    assert rec["model"]["n_params"] == n and rec["model"]["vocab_size"] == 50257 and rec["model"]["n_positions"] == 1024

    smoke = rec["parts"]["smoke"]
    assert smoke["methods"] == list(METHODS)
    c = smoke["config"]
    caps = BUDGETS["smoke"].caps
    assert (c["split"], c["budget"], c["block_size"], c["n_tasks"], c["pretrain_articles"]) == ("train", "smoke", caps["block_size"], caps["n_tasks"], 0)
    table = pd.read_csv(dry_run / "smoke_results.csv")
    assert table["method"].tolist() == list(METHODS)
    for m, r in smoke["results"].items():
        row = table.set_index("method").loc[m]
        assert math.isfinite(r["final_ppl"]) and r["final_ppl"] > 1 and r["final_ppl"] == pytest.approx(row["final_ppl"])
        assert 0 <= r["ACC_acc"] <= 1 and math.isfinite(r["general_ppl_change"])
    assert pd.read_csv(dry_run / "smoke_summary.csv", index_col=0).index.tolist() == list(METHODS)

    tp, raw = rec["parts"]["throughput"], json.loads((dry_run / "train_throughput.json").read_text())
    size = g.SIZES["dry-run"]["throughput"]
    assert (tp["block_size"], tp["batch_size"], tp["n_params"], tp["flops_per_token"]) == (size["block_size"], size["batch_size"], n, 6 * n)
    assert set(tp["variants"]) == {"cl_course", "transformers.Trainer", "cl_course fast", "transformers.Trainer fast"}
    assert raw["repeats"] == size["repeats"] and tp["compile_backend"] == size["compile_backend"]
    med = {k: raw["timing"][k]["median"] for k in tp["variants"]}
    assert tp["ratio_fast_over_plain"] == pytest.approx(med["cl_course"] / med["cl_course fast"], rel=1e-12)
    assert tp["ratio_fast_over_trainer_fast"] == pytest.approx(med["transformers.Trainer fast"] / med["cl_course fast"], rel=1e-12)
    assert 0 < tp["tokens_per_epoch"] <= size["max_train_blocks"] * size["block_size"]
    assert tp["peak_bf16_dense_tflops"] == PEAK and tp["peak_source"] == "given with --peak-tflops"
    for k, v in tp["variants"].items():
        tps = raw["tokens"] / raw["timing"][k]["median"]
        assert v["tokens_per_second"] == pytest.approx(tps, rel=1e-12)
        assert v["mfu"] == pytest.approx(6 * n * tps / (PEAK * 1e12), rel=1e-12)
    sweep = json.loads((dry_run / "train_throughput_batches.json").read_text())   # the fast path by batch size
    assert list(tp["fast_batch_sweep"]) == [str(b) for b in size["fast_batch_sizes"]] == list(sweep["rows"])
    for k, v in tp["fast_batch_sweep"].items():
        row = sweep["rows"][k]
        assert row["blocks"] == size["max_train_blocks"] and row["steps"] == math.ceil(row["blocks"] / int(k)) and row["batch_size"] == int(k)
        tps = row["tokens"] / row["timing"]["median"]
        assert v["tokens_per_second"] == pytest.approx(tps, rel=1e-12) and v["mfu"] == pytest.approx(6 * n * tps / (PEAK * 1e12), rel=1e-12)
    assert tp["fast_best_batch"]["tokens_per_second"] == max(v["tokens_per_second"] for v in tp["fast_batch_sweep"].values())

    att, raw = rec["parts"]["attention"], json.loads((dry_run / "attention_scaling.json").read_text())
    assert att["lengths"] == raw["config"]["lengths"] == g.SIZES["dry-run"]["attention"]["lengths"]
    assert {(e["impl"], e["mode"]) for e in att["exponents"]} == {(i, m) for i in ("naive", "sdpa") for m in ("forward", "forward+backward")}
    assert all(e["time_exponent"] is not None and e["memory_exponent"] is not None for e in att["exponents"])
    assert not att["out_of_memory"] and set(att["longest_without_oom"].values()) == {256}

    ewc = rec["parts"]["ewc"]
    small, stand = (json.loads((dry_run / f).read_text()) for f in ("ewc_overhead_small.json", "ewc_overhead_gpt2_standin.json"))
    step = small["train_step"]   # one process in the dry run: its ratio of medians is the record's
    assert small["step_processes"] == 1 and ewc["ewc_over_naive_step_per_process"] == small["ewc_over_naive_step_per_process"]
    paired = statistics.median(e / n for e, n in zip(step["ewc"]["seconds"], step["naive"]["seconds"]))   # repeat by repeat
    assert ewc["ewc_over_naive_step"] == small["ewc_over_naive_step_per_process"][0] == pytest.approx(paired, rel=1e-12)
    assert small["ewc_over_naive_step_ratio_of_medians"] == pytest.approx(step["ewc"]["median"] / step["naive"]["median"], rel=1e-12)
    assert small["repeats"] == stand["repeats"] == 5 and "exact" not in small   # the dry run's sizes reached the script
    assert stand["params"] == n == ewc["standin_params"] and stand["fisher"]["blocks"] == ewc["standin_fisher"]["blocks"] == 4
    for rec_f, f in ((ewc["small_fisher"], small["fisher"]), (ewc["standin_fisher"], stand["fisher"])):
        t = f["timing"]
        assert rec_f["hooks_over_batched_floor"] == pytest.approx(t["hooks"]["median"] / t["batched_floor"]["median"], rel=1e-12)
        assert rec_f["max_rel_diff_hooks_vs_loop"] <= 1e-5   # the layer-by-layer Fisher agrees with the loop of backward passes
        assert isinstance(f["peak_memory_MB"], str)   # --no-peak-memory: no extra processes in the dry run

    md = (dry_run / "gpu_check.md").read_text()
    assert "## (d) EWC and the per-sample Fisher" in md
    assert f"all {len(METHODS)} methods" in md and all(f"| {m} |" in md for m in METHODS) and "MFU" in md and "FAILED" not in md


def test_peak_table():
    g = _load()
    for name, tflops in [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H100 NVL", 835), ("NVIDIA H200", 989),
                         ("NVIDIA H200 NVL", 835), ("NVIDIA GH200 480GB", 989), ("NVIDIA A100-SXM4-80GB", 312),
                         ("NVIDIA A100-PCIE-40GB", 312), ("NVIDIA A10", 125), ("NVIDIA L40S", 362), ("NVIDIA L40", 181),
                         ("NVIDIA L4", 121), ("NVIDIA GeForce RTX 4090", 165)]:
        assert g.bf16_peak(name)[0] == tflops, name
    for unknown in ("Tesla T4", "NVIDIA A10G", "Tesla V100-SXM2-16GB"):   # no bf16 tensor cores, or no published peak in the table
        peak, note = g.bf16_peak(unknown)
        assert peak is None and "MFU left out" in note and "BF16_DENSE_PEAK_TFLOPS" in note
    assert g.mfu(124_439_808, 100_000, None) is None
    assert g.mfu(124_439_808, 100_000, 989) == pytest.approx(6 * 124_439_808 * 100_000 / 989e12)


def test_refusals(tmp_path, capsys):
    g = _load()
    with pytest.raises(SystemExit):   # the committed GPU results are never overwritten by a dry run
        g.parse_args(["--dry-run", "--out", str(g.RESULTS / "x")])
    assert "never writes to benchmarks/results/gpu" in capsys.readouterr().err
    if not g.torch.cuda.is_available():
        with pytest.raises(SystemExit): g.parse_args(["--out", str(tmp_path)])
        assert "--dry-run" in capsys.readouterr().err

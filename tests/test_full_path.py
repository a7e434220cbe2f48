"""The full-size path offline: GPT-2 from a folder written by save_pretrained (a 124M stand-in for the hub's `gpt2`),
CL_COURSE_MODEL_DIR, the smoke budget, and a clear error for every bad model folder or budget."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cl_course.models import (MODEL_DIR_ENV, load_model, load_tokenizer, model_context, model_dir, model_fingerprint,
                              n_params, tokenizer_name_for)
from cl_course.config import BUDGETS, TrainConfig, course_config
from cl_course.stream import prepare_stream
from cli_helpers import one_line_of, run_main


def cli(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "cl_course.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_folder_loads_bit_for_bit(standin_gpt2):
    model = load_model(standin_gpt2)
    saved = load_file(standin_gpt2 / "model.safetensors")   # read independently of transformers
    state = model.state_dict()
    for k, v in saved.items(): assert torch.equal(state[k], v), k
    assert torch.equal(model.lm_head.weight, saved["transformer.wte.weight"])   # tied, as in gpt2
    assert n_params(model) == 124_439_808 and model.config.n_positions == 1024 == model_context(standin_gpt2)
    assert "transformer.h.11.attn.c_attn" in dict(model.named_modules())   # GPT-2's real module names


def test_gpt2_resolves_to_the_model_dir(standin_gpt2, monkeypatch):
    monkeypatch.setenv(MODEL_DIR_ENV, str(standin_gpt2))
    assert model_dir("gpt2") == standin_gpt2 and tokenizer_name_for("gpt2") == "gpt2"
    a, b = load_model("gpt2").state_dict(), load_model(standin_gpt2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    tok = load_tokenizer("gpt2")
    assert len(tok) == 50257 and tok("Hello world")["input_ids"] == [15496, 995] and tok.pad_token == tok.eos_token
    assert model_fingerprint("gpt2")["weights"] == model_fingerprint(standin_gpt2)["weights"]
    monkeypatch.setenv(MODEL_DIR_ENV, str(standin_gpt2 / "missing"))
    with pytest.raises(FileNotFoundError, match="not a folder"): load_model("gpt2")


def test_fingerprint_follows_the_weights(tmp_path):
    for i in (0, 1):
        load_model("gpt2-tiny", seed=i).save_pretrained(tmp_path / f"m{i}")
    a, b = model_fingerprint(tmp_path / "m0"), model_fingerprint(tmp_path / "m1")
    assert a["weights"] != b["weights"] and a == model_fingerprint(str(tmp_path / "m0"))


def _tiny_folder(path: Path) -> Path:
    load_model("gpt2-tiny").save_pretrained(path)
    return path


@pytest.mark.parametrize("breakage, msg", [
    (lambda d: (d / "model.safetensors").unlink(), "has a config but no weights"),
    (lambda d: (d / "config.json").unlink(), "has no config.json"),
    (lambda d: (d / "config.json").write_text(json.dumps(dict(json.loads((d / "config.json").read_text()), model_type="llama"))),
     "supports GPT-2-family causal LMs"),
])
def test_bad_model_folders(tmp_path, breakage, msg):
    d = _tiny_folder(tmp_path / "m"); breakage(d)
    with pytest.raises(ValueError, match=msg): load_model(d)
    code, err = run_main("run", "--model", d, "--methods", "naive", "--out", tmp_path / "o")
    assert code == 2 and msg in one_line_of(err)


def test_missing_folder_and_vocabulary_mismatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"): load_model(tmp_path / "nothing")
    code, err = run_main("run", "--model", tmp_path / "nothing", "--methods", "naive", "--out", tmp_path / "o")
    assert code == 2 and "does not exist" in one_line_of(err)
    d = _tiny_folder(tmp_path / "tiny")   # 1,024 embeddings, and no tokenizer saved: it would get GPT-2's 50,257
    with pytest.raises(ValueError, match="50,257 tokens but the model"): load_model(d, tokenizer=load_tokenizer(d))


def test_budgets(monkeypatch):
    smoke = course_config("full", "smoke")
    for k, cap in BUDGETS["smoke"].caps.items(): assert getattr(smoke, k) == min(cap, getattr(course_config("full", "default"), k) or cap)
    assert smoke.model == "gpt2" and smoke.split == "train"   # the full size's model and data: only sizes change
    assert smoke.replace(max_train_blocks=1000).max_train_blocks == BUDGETS["smoke"].caps["max_train_blocks"]   # caps hold
    with pytest.raises(ValueError, match="Unknown budget 'huge'"): TrainConfig(budget="huge")
    monkeypatch.setenv("CL_COURSE_BUDGET", "huge")
    with pytest.raises(ValueError, match="CL_COURSE_BUDGET must be one of"): course_config()
    code, err = run_main("run", "--budget", "huge")
    assert code == 2 and "invalid choice: 'huge'" in one_line_of(err)


def test_full_size_offline_names_both_ways_out(tmp_path, full_data):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), MODEL_DIR_ENV: "", "CL_COURSE_DATA": str(full_data)}
    r = cli("run", "--size", "full", "--methods", "naive", "--out", str(tmp_path / "o"), "--quiet", env=env)
    assert r.returncode == 2
    line = one_line_of(r.stderr)
    assert "Could not load the pretrained weights of 'gpt2'" in line and MODEL_DIR_ENV in line and "--model" in line


def test_full_stream_with_the_standin(standin_gpt2, full_data, monkeypatch):
    "The full size's stream from the train split, GPT-2's tokenizer from the folder, the model checked against it."
    monkeypatch.setenv(MODEL_DIR_ENV, str(standin_gpt2)); monkeypatch.setenv("CL_COURSE_DATA", str(full_data))
    stream = prepare_stream(course_config("full", "smoke", progress=False))
    assert len(stream.tokenizer) == 50257 and stream.pretrain is None and stream.general is not None
    tr, ev = stream.loaders[0]
    caps = BUDGETS["smoke"].caps
    assert next(iter(tr))["input_ids"].shape == (caps["batch_size"], caps["block_size"]) and len(stream) == caps["n_tasks"]
    model = stream.new_model()
    assert n_params(model) == 124_439_808


def test_full_smoke_run_resumes_after_sigkill(standin_gpt2, full_data, tmp_path, monkeypatch):
    "cl-course run at full size within the smoke budget: killed (SIGKILL) during its second method, resumed to the end (in this process)."
    out, env = tmp_path / "bench", {MODEL_DIR_ENV: "", "CL_COURSE_DATA": str(full_data)}
    args = ["run", "--size", "full", "--model", str(standin_gpt2), "--budget", "smoke", "--methods", "naive,lora-per-task",
            "--out", str(out)]
    p = subprocess.Popen([sys.executable, "-m", "cl_course.cli", *args, "--quiet"], env={**os.environ, **env},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not (out / "runs" / "lora-per-task-seed0" / "checkpoint.pt").exists():
            assert p.poll() is None and time.time() < deadline, p.communicate()
            time.sleep(0.2)
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        try: os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError: pass
        p.wait(timeout=60)
    for k, v in env.items(): monkeypatch.setenv(k, v)
    code, err = run_main(*args, "--resume")
    assert code == 0, err
    assert "naive (seed 0): finished earlier, read back" in err and "resuming lora-per-task seed 0 at task" in err
    import pandas as pd
    table = pd.read_csv(out / "results.csv")
    assert list(table["method"]) == ["naive", "lora-per-task"] and table["general_ppl_change"].notna().all()

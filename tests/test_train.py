"The training core: the loss against an independent computation, resuming after a real kill, bad input."
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cl_course.train import LMOutput, Method, causal_lm_loss, evaluate, model_logits

from cl_course.config import TrainConfig, course_config
from cl_course.stream import cached_run_dir, load_checkpoint, prepare_stream, run_cached, run_stream


def lm_loss(model, batch):
    "The model's causal-LM loss on `batch` (04_training's notebook cell, written out)."
    return causal_lm_loss(model_logits(model, batch), batch["labels"])


QUICK = dict(pretrain_articles=0, max_train_blocks=16, max_eval_blocks=4, epochs=1, progress=False)


@pytest.fixture(scope="module")
def stream(wikitext_dir_module):
    return prepare_stream(course_config("small", **QUICK))


@pytest.fixture(scope="module")
def wikitext_dir_module():
    d = Path(os.environ.get("CL_COURSE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw")
    os.environ.setdefault("CL_COURSE_DATA", str(d))
    return d


def test_lm_loss_matches_an_independent_computation_with_padding(stream):
    model = stream.new_model().eval()
    batch = next(iter(stream.loaders[0][1]))
    # pad the second half of the last block: attention mask 0, labels -100
    batch = {k: v.clone() for k, v in batch.items()}
    batch["attention_mask"][-1, 64:] = 0
    batch["labels"][-1, 64:] = -100
    batch["input_ids"][-1, 64:] = stream.tokenizer.eos_token_id
    with torch.no_grad():
        loss = lm_loss(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # independent: HF's own loss on the same labels (it shifts internally and ignores -100) ...
    with torch.no_grad():
        hf = model(**batch).loss
    torch.testing.assert_close(loss, hf, rtol=1e-5, atol=1e-5)
    # ... and a hand loop over positions
    nll = []
    for b in range(batch["input_ids"].shape[0]):
        for t in range(batch["input_ids"].shape[1] - 1):
            y = batch["labels"][b, t + 1].item()
            if y != -100: nll.append(-torch.log_softmax(logits[b, t].double(), -1)[y])
    torch.testing.assert_close(loss.double(), torch.stack(nll).mean(), rtol=1e-5, atol=1e-5)
    # evaluate's perplexity is exp of the token-weighted loss
    r = evaluate(model, [batch])
    assert r["tokens"] == len(nll)
    assert abs(r["perplexity"] - np.exp(loss.item())) < 1e-3 * r["perplexity"]


def test_a_method_forward_returns_the_labels_it_scores_and_leaves_the_batch_alone(stream):
    "A forward that cuts the text (as Progressive Prompts does) returns the labels that match; evaluate and the loss read those."
    model = stream.new_model().eval()
    batch = next(iter(stream.loaders[0][1]))
    short = {k: v[:, :40] for k, v in batch.items()}
    ref_logits = model_logits(model, short)

    class Cut(Method):
        def forward(self, m, b, task_id):
            s = {k: v[:, :40] for k, v in b.items()}
            return LMOutput(model_logits(m, s), s["labels"])

    class Bare(Method):   # a forward that returns bare logits: paired with the batch's own labels
        def forward(self, m, b, task_id): return model_logits(m, b)

    with torch.no_grad():
        out = Method().forward(model, batch, 0)
        assert isinstance(out, LMOutput) and out.labels is batch["labels"]
        torch.testing.assert_close(Cut().loss(model, batch, 0), causal_lm_loss(ref_logits, short["labels"]))
        torch.testing.assert_close(Bare().loss(model, batch, 0), lm_loss(model, batch))
    assert batch["input_ids"].shape[1] == stream.config.block_size             # nobody cut the caller's batch
    assert evaluate(model, [batch], forward=lambda m, b: Cut().forward(m, b, 0)) == evaluate(model, [short])


def test_resume_after_a_real_kill_gives_the_uninterrupted_result(stream, tmp_path, wikitext_dir_module):
    full = run_stream(Method(), stream)
    ck = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, time
        from cl_course.train import Method
        from cl_course.config import course_config
        from cl_course.stream import prepare_stream, run_stream
        class Slow(Method):
            def after_task(self, model, task_id, loader):
                if task_id >= 1: time.sleep(600)   # stay inside task 2 until killed
        s = prepare_stream(course_config("small", **{QUICK!r}))
        run_stream(Slow(), s, checkpoint_dir={str(ck)!r})
    """)
    env = dict(os.environ, CL_COURSE_DATA=str(wikitext_dir_module))
    p = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            f = ck / "checkpoint.pt"
            if f.exists() and load_checkpoint(f)["done"] >= 1: break
            assert p.poll() is None, "the run ended before it could be killed"
            time.sleep(0.5)
        else: pytest.fail("no checkpoint within 300 s")
    finally:
        try: os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError: pass   # it had already ended: the assertion above says why
        p.wait()
    assert load_checkpoint(ck / "checkpoint.pt")["done"] == 1
    # "Slow" and Method share the name "naive" and the configuration, so the fingerprint matches
    resumed = run_stream(Method(), stream, checkpoint_dir=ck, resume=True)
    np.testing.assert_array_equal(resumed.accuracy, full.accuracy)
    np.testing.assert_array_equal(resumed.loss, full.loss)


def test_resume_refuses_a_different_configuration(stream, tmp_path):
    run_stream(Method(), stream, checkpoint_dir=tmp_path)
    other = prepare_stream(stream.config.replace(lr=stream.config.lr / 2))
    with pytest.raises(ValueError, match="different configuration.*config"):
        run_stream(Method(), other, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(FileExistsError, match="resume=True"):
        run_stream(Method(), stream, checkpoint_dir=tmp_path)


def test_nan_loss_stops_with_task_and_step_and_saves_nothing_poisoned(stream, tmp_path):
    class NaNOnTask2(Method):
        def penalty(self, model, task_id):
            return torch.tensor(float("inf")) if task_id == 2 else None
    with pytest.raises(FloatingPointError, match="task 2.*step 0"):
        run_stream(NaNOnTask2(), stream, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["done"] == 2 and state["frozen"] is None and state["model"].keys() == stream.new_model().state_dict().keys()   # every weight trains
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("kw, msg", [(dict(lr=0), "lr must be"), (dict(lr=-1.0), "lr must be"), (dict(lr=float("inf")), "lr must be"),
                                     (dict(epochs=0), "epochs"), (dict(schedule="step"), "schedule"),
                                     (dict(pretrain_articles=-1), "pretrain_articles")])
def test_bad_config(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**kw)


def test_loss_shapes_must_agree():
    with pytest.raises(ValueError, match="disagree"):
        causal_lm_loss(torch.zeros(2, 5, 7), torch.zeros(2, 4, dtype=torch.long))


def test_the_pretrained_start_depends_on_the_corpus_not_on_the_task_split(tmp_path, monkeypatch, wikitext_dir_module):
    "Changing n_tasks or the stream seed reuses the small model's tokenizer and pretraining; changing pretraining does not."
    import cl_course.stream as stream_module   # prepare_stream pretrains through its own reference to train_task
    monkeypatch.setenv("CL_COURSE_CACHE", str(tmp_path / "cache"))
    calls = []
    real = stream_module.train_task
    def counting(model, loader, method, config, task_id, **kw):
        if task_id == -1: calls.append(config.epochs)
        return real(model, loader, method, config, task_id, **kw)
    monkeypatch.setattr(stream_module, "train_task", counting)
    cfg = course_config("small", pretrain_epochs=1, pretrain_articles=4, max_train_blocks=8, max_eval_blocks=2, epochs=1, progress=False)
    first = prepare_stream(cfg)
    w0 = first.new_model().state_dict()
    for other in (cfg.replace(n_tasks=3), cfg.replace(stream_seed=1), cfg.replace(n_tasks=2, stream_seed=5)):
        s = prepare_stream(other)
        assert s.tokenizer.get_vocab() == first.tokenizer.get_vocab()
        assert all(torch.equal(w0[k], v) for k, v in s.new_model().state_dict().items())
    assert len(calls) == 1
    prepare_stream(cfg.replace(pretrain_epochs=2)).new_model()   # other pretraining settings: a new start
    assert calls == [1, 2]


def test_run_cached_keeps_a_finished_runs_results_not_its_weights(stream, tmp_path, monkeypatch):
    "A finished cached run: its results are read back equal to the run's, without running again, and its checkpoint is gone."
    monkeypatch.setenv("CL_COURSE_CACHE", str(tmp_path))
    first = run_cached(Method(), stream)
    d = cached_run_dir(Method(), stream)
    assert sorted(p.name for p in d.iterdir()) == ["result.json"]
    import cl_course.stream as stream_module
    monkeypatch.setattr(stream_module, "run_stream", lambda *a, **k: pytest.fail("a finished run was run again"))
    again = run_cached(Method(), stream)
    for m in ("accuracy", "perplexity", "loss"): np.testing.assert_array_equal(getattr(again, m), getattr(first, m))
    assert again.to_dict() == first.to_dict()
    assert run_stream(Method(), stream).perplexity.tolist() == first.perplexity.tolist()   # the same as a plain run


def test_first_task_model_is_naive_after_its_first_task_and_is_trained_once(stream, tmp_path, monkeypatch):
    "`first_task_model`: the weights naive's own run has after task 0 (kept by a hook), then read back from the cache, not trained again."
    from cl_course.stream import first_task_model
    monkeypatch.setenv("CL_COURSE_CACHE", str(tmp_path))

    class _Keep(Method):
        def after_task(self, model, task_id, loader):
            if task_id == 0: self.after0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    keep = _Keep(); run_stream(keep, stream)
    first = first_task_model(stream).state_dict()
    after = torch.rand(4), [b["input_ids"][:, 0].tolist() for b in stream.loaders[0][0]]   # the random state it leaves
    assert first.keys() == keep.after0.keys() and all(torch.equal(first[k], keep.after0[k]) for k in first)
    start = stream.new_model().state_dict()
    assert not all(torch.equal(first[k], start[k]) for k in first), "training changed nothing: the test would be vacuous"
    assert (cached_run_dir(Method(), stream) / "first-task-model.pt").exists()
    import cl_course.stream as stream_module
    monkeypatch.setattr(stream_module, "train_task", lambda *a, **k: pytest.fail("the cached model was trained again"))
    again = first_task_model(stream).state_dict()
    assert all(torch.equal(again[k], first[k]) for k in first)
    again_after = torch.rand(4), [b["input_ids"][:, 0].tolist() for b in stream.loaders[0][0]]
    assert torch.equal(again_after[0], after[0]) and again_after[1] == after[1], "reading the cache left another random state than training"

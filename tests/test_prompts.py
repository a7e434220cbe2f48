"Progressive Prompts: zero forgetting bit for bit, PEFT equivalence, the decoder-only layout, context limits, checkpoints, bad input."
import copy
import warnings

import numpy as np
import pytest
import torch

from cl_course.models import load_model, train_bpe_tokenizer
from cl_course.prompts import (ProgressivePrompts, ResidualPromptMLP, fit_to_context, init_prompt, prompt_labels,
                               prompt_token_ids, prompted_logits)
from cl_course.train import IGNORE_INDEX, Method, causal_lm_loss, evaluate, train_task
from cl_course.config import TrainConfig
from cl_course.stream import load_checkpoint, run_stream, save_checkpoint

CFG = TrainConfig(progress=False, epochs=1, lr=1e-3, batch_size=4)


class Loader(list):
    "Batches of random blocks (the last block padded) with a `.dataset.blocks`, like the course's DataLoaders."
    def __init__(self, seed, n_batches=3, B=4, T=24, vocab=1024):
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, vocab, (n_batches * B, T), generator=g)
        am = torch.ones_like(ids)
        am[-1, T // 2:] = 0
        blocks = dict(input_ids=ids, attention_mask=am, labels=ids.masked_fill(am == 0, IGNORE_INDEX))
        super().__init__({k: v[i:i + B] for k, v in blocks.items()} for i in range(0, n_batches * B, B))
        self.dataset = type("D", (), {"blocks": blocks})()


def tiny():
    return load_model("gpt2-tiny", device="cpu", seed=0)


def train(pp, model, task_id, loader, config=CFG):
    pp.before_task(model, task_id, loader)
    train_task(model, loader, pp, config, task_id=task_id)
    pp.after_task(model, task_id, loader)


@pytest.mark.parametrize("mlp", [None, 8])
def test_two_tasks_leave_backbone_and_first_prompt_bit_identical(mlp):
    pp = ProgressivePrompts(prompt_len=4, mlp_bottleneck=mlp, lr=3e-2)
    model = pp.setup(tiny())
    weights = copy.deepcopy(model.state_dict())
    ev0 = Loader(100)
    train(pp, model, 0, Loader(0))
    p0, r0 = pp.prompts[0].clone(), pp.evaluate_task(model, ev0, 0)
    pp.before_task(model, 1, Loader(1))
    p1_init = pp.trainable_parameters(model)[0].detach().clone()
    train_task(model, Loader(1), pp, CFG, task_id=1)
    pp.after_task(model, 1, None)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert torch.equal(pp.prompts[0], p0)
    assert not torch.equal(pp.prompts[1], p1_init)          # task 1 did train its own prompt
    assert pp.evaluate_task(model, ev0, 0) == r0             # exactly the same numbers
    assert len(pp.prompts) == 2 and all(p.shape == (4, model.config.n_embd) for p in pp.prompts)


class FakeStream:
    "The parts of a `Stream` that `run_stream` uses, on random data."
    def __init__(self, n_tasks=3):
        self.config = CFG
        self.loaders = [(Loader(t), Loader(100 + t)) for t in range(n_tasks)]
        self.names = [f"t{t}" for t in range(n_tasks)]
        self.general = Loader(200)   # general text: scored before the stream and after each task
    def __len__(self): return len(self.loaders)
    joint = False
    def new_model(self): return tiny()
    def fingerprint(self): return dict(data="fake", tokenizer="fake")
    def train_loaders(self): return [tr for tr, _ in self.loaders]


class CrashAfter(ProgressivePrompts):
    "Progressive Prompts that is 'interrupted' when task `at` ends (before its checkpoint)."
    def __init__(self, at, **kw): super().__init__(**kw); self.at = at
    def after_task(self, model, task_id, loader=None):
        if task_id == self.at: raise KeyboardInterrupt
        super().after_task(model, task_id, loader)


def test_stream_columns_are_constant_and_a_resumed_run_is_identical(tmp_path):
    stream = FakeStream()
    full = run_stream(ProgressivePrompts(prompt_len=3), stream)
    for R in (full.accuracy, full.perplexity, full.loss):
        for j in range(len(stream)):
            assert (R[j + 1:, j] == R[j + 1, j]).all()
    assert full.trainable_params == 3 * 128 and full.extra_memory_bytes == 3 * 3 * 128 * 4
    with pytest.raises(KeyboardInterrupt):
        run_stream(CrashAfter(1, prompt_len=3), stream, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")   # the prompts are the method's state: no weight of the backbone is kept
    assert state["trained"] == [] and len(state["method"]["prompts"]) == 1 and state["frozen"] is not None
    assert not set(state["model"]) & {n for n, _ in stream.new_model().named_parameters(remove_duplicate=False)}
    resumed = run_stream(ProgressivePrompts(prompt_len=3), stream, checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(resumed.loss, full.loss)
    again = run_stream(ProgressivePrompts(prompt_len=3), stream, checkpoint_dir=tmp_path, resume=True)   # all read back
    np.testing.assert_array_equal(again.loss, full.loss)
    assert again.trainable_params == full.trainable_params


def peft_model(model, n, **kw):
    from peft import PromptTuningConfig, get_peft_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(copy.deepcopy(model), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n, **kw))


def test_logits_loss_gradient_and_training_match_peft():
    pp = ProgressivePrompts(prompt_len=6, seed=3)
    model = pp.setup(tiny())
    pm = peft_model(model, 6)
    pp.before_task(model, 0, None)
    P, Q = pp.trainable_parameters(model)[0], pm.prompt_encoder["default"].embedding.weight
    with torch.no_grad(): Q.copy_(P)
    model.eval(); pm.eval()
    b = Loader(5)[-1]                                               # includes a padded block
    ours = pp.forward(model, b, 0).logits
    theirs = pm(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    torch.testing.assert_close(ours, theirs[:, 6:], rtol=0, atol=1e-5)
    lab = b["labels"].clone(); lab[:, 0] = IGNORE_INDEX            # the course never scores the first token
    l_ours = causal_lm_loss(ours, b["labels"])
    l_peft = pm(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=lab).loss
    torch.testing.assert_close(l_ours, l_peft, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(causal_lm_loss(theirs, prompt_labels(lab, 6)), l_peft, rtol=1e-6, atol=1e-6)
    g1, = torch.autograd.grad(l_ours, [P]); g2, = torch.autograd.grad(l_peft, [Q])
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-7)

    class Peft(Method):
        lr = pp.lr
        def trainable_parameters(self, m): return [Q]
        def forward(self, m, batch, task_id): return m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 6:]
    data = Loader(7, n_batches=4)
    start = P.detach().clone()
    train_task(model, data, pp, CFG.replace(epochs=2), task_id=0)
    train_task(pm, data, Peft(), CFG.replace(epochs=2), task_id=0)
    assert (P - start).norm() > 0.05
    torch.testing.assert_close(P.detach(), Q.detach(), rtol=0, atol=1e-4)


def test_text_init_matches_peft(tmp_path):
    texts = ["The ship was launched in 1911 and served in the Atlantic .", "Her guns were replaced in 1917 ."] * 20
    tok = train_bpe_tokenizer(texts, vocab_size=300, cache_dir=tmp_path)
    tok.save_pretrained(tmp_path / "tok")
    model = load_model("gpt2-tiny", tokenizer=tok, device="cpu")
    for n in (3, 17):   # shorter than the text (cut) and longer (repeated)
        pm = peft_model(model, n, prompt_tuning_init="TEXT", prompt_tuning_init_text="The ship was launched",
                        tokenizer_name_or_path=str(tmp_path / "tok"))
        pp = ProgressivePrompts(prompt_len=n, init="text", init_text="The ship was launched", tokenizer=tok)
        pp.before_task(pp.setup(model), 0, None)
        assert torch.equal(pp.trainable_parameters(model)[0].detach(), pm.prompt_encoder["default"].embedding.weight.detach())


def test_random_init_uses_vocabulary_embeddings_and_is_a_copy():
    model = tiny()
    E = model.get_input_embeddings()
    ids = prompt_token_ids(5, "random", vocab_size=E.num_embeddings, generator=torch.Generator().manual_seed(1))
    P = init_prompt(E, ids)
    assert torch.equal(P, E.weight.detach()[ids])
    P += 1
    assert not torch.equal(P[0], E.weight.detach()[ids[0]])
    assert prompt_token_ids(5, "text", text_ids=[1, 2]).tolist() == [1, 2, 1, 2, 1]


def test_prompt_of_token_embeddings_is_a_text_prefix():
    "Independent check of positions, mask and order: a prompt made of token embeddings acts exactly as those tokens."
    model = tiny().eval()
    b = Loader(9)[-1]
    u = torch.tensor([3, 14, 15, 92])
    with torch.no_grad():
        ours = prompted_logits(model, b, init_prompt(model.get_input_embeddings(), u))
        ref = model(input_ids=torch.cat([u.expand(4, -1), b["input_ids"]], 1),
                    attention_mask=torch.cat([torch.ones(4, 4, dtype=torch.long), b["attention_mask"]], 1)).logits[:, 4:]
    real = b["attention_mask"].bool()
    torch.testing.assert_close(ours[real], ref[real], rtol=0, atol=1e-4)


def test_newest_prompt_comes_first_and_untrained_tasks_use_the_prompts_so_far():
    pp = ProgressivePrompts(prompt_len=2)
    model = pp.setup(tiny())
    assert pp.prompt_stack(0) is None                                # row 0: the bare backbone
    for t in range(3):
        pp.before_task(model, t, None); pp.after_task(model, t)
    P = pp.prompts
    assert torch.equal(pp.prompt_stack(2), torch.cat([P[2], P[1], P[0]]))
    assert torch.equal(pp.prompt_stack(1), torch.cat([P[1], P[0]]))
    assert torch.equal(pp.prompt_stack(7), pp.prompt_stack(2))      # not trained yet: the prompts that exist
    with pytest.raises(ValueError, match="has no prompt yet"):
        pp.prompt_stack(3, strict=True)
    with pytest.raises(ValueError, match="has no prompt yet"):
        pp.evaluate_task(model, Loader(0), 3)
    with pytest.raises(ValueError, match="has no prompt yet"):
        ProgressivePrompts(strict=True).forward(model, Loader(0)[0], 0)


def test_mlp_is_folded_into_the_prompt_exactly():
    pp = ProgressivePrompts(prompt_len=3, mlp_bottleneck=5)
    model = pp.setup(tiny()).eval()
    pp.before_task(model, 0, None)
    params = pp.trainable_parameters(model)
    assert sum(p.numel() for p in params) == 3 * 128 + 128 * 5 + 5 + 5 * 128 + 128
    with torch.no_grad():
        for p in params: p.add_(0.05 * torch.randn_like(p))
        b = Loader(2)[0]
        live = pp.forward(model, b, 0).logits
        mlp_out = ResidualPromptMLP.forward(pp._live[2], params[0])
    pp.after_task(model, 0)
    assert torch.equal(pp.prompts[0], mlp_out)
    with torch.no_grad(): assert torch.equal(pp.forward(model, b, 0).logits, live)
    assert pp.extra_memory_bytes() == 3 * 128 * 4


def test_text_is_truncated_never_the_prompts():
    pp = ProgressivePrompts(prompt_len=240)
    model = pp.setup(tiny()).eval()
    b = Loader(4, T=30)[0]
    with pytest.warns(UserWarning, match="truncated to its first 16 tokens"):
        pp.before_task(model, 0, Loader(4, T=30))
    batch = dict(b)
    with torch.no_grad():
        logits, labels = pp.forward(model, batch, 0)
        loss = pp.loss(model, batch, 0)
        ref = prompted_logits(model, {k: v[:, :16] for k, v in b.items()}, pp.trainable_parameters(model)[0])
    assert logits.shape[1] == 16 and labels.shape[1] == 16 and torch.equal(labels, b["labels"][:, :16])
    assert all(batch[k] is b[k] for k in b) and batch.keys() == b.keys()           # forward leaves the batch it was given alone
    torch.testing.assert_close(logits, ref, rtol=0, atol=0)
    torch.testing.assert_close(loss, causal_lm_loss(ref, b["labels"][:, :16]))
    r = evaluate(model, [b], forward=lambda m, x: pp.forward(m, x, 0))           # the shared evaluation works unchanged
    assert r["tokens"] == 4 * 15
    assert b["input_ids"].shape[1] == 30                                          # the caller's batch is untouched


def test_prompts_that_no_longer_fit_are_refused():
    pp = ProgressivePrompts(prompt_len=100)
    model = pp.setup(tiny())
    for t in range(2): pp.before_task(model, t, None); pp.after_task(model, t)
    with pytest.raises(ValueError, match="prompt vectors leave 0 of the model's 256 positions"):
        pp.before_task(model, 2, None)
    with pytest.raises(ValueError, match="at least 2 are needed"):
        fit_to_context(Loader(0)[0], n_prompt=255, context=256)


def test_tasks_must_arrive_in_order():
    pp = ProgressivePrompts(prompt_len=2)
    model = pp.setup(tiny())
    with pytest.raises(ValueError, match="next task is 0, not 1"):
        pp.before_task(model, 1, None)
    pp.before_task(model, 0, None)
    with pytest.raises(ValueError, match="after_task\\(1\\) without before_task\\(1\\)"):
        pp.after_task(model, 1)


def test_state_round_trips_and_other_backbone_sizes_are_refused(tmp_path):
    pp = ProgressivePrompts(prompt_len=3)
    model = pp.setup(tiny())
    for t in range(2): pp.before_task(model, t, None); pp.after_task(model, t)
    save_checkpoint(tmp_path / "c.pt", {"method": pp.state_dict()})
    state = load_checkpoint(tmp_path / "c.pt")["method"]             # weights_only=True
    other = ProgressivePrompts(prompt_len=3)
    other.load_state_dict(state, other.setup(tiny()))
    assert all(torch.equal(a, b) for a, b in zip(other.prompts, pp.prompts)) and len(other.prompts) == 2
    with pytest.raises(ValueError, match="embeddings of size 128, but this model's are of size 256"):
        ProgressivePrompts(prompt_len=3).load_state_dict(state, load_model("gpt2-mini", device="cpu"))
    with pytest.raises(ValueError, match="prompt_len=4"):
        ProgressivePrompts(prompt_len=4).load_state_dict(state, model)


@pytest.mark.parametrize("kw, msg", [
    (dict(prompt_len=0), "prompt_len must be"), (dict(prompt_len=-3), "prompt_len must be"),
    (dict(prompt_len=1.5), "prompt_len must be"), (dict(prompt_len=True), "prompt_len must be"),
    (dict(init="zeros"), "init must be one of"), (dict(init="text"), "needs init_text"),
    (dict(init="text", init_text="x"), "needs the tokenizer"), (dict(init_text="x"), "only used with init='text'"),
    (dict(mlp_bottleneck=0), "mlp_bottleneck"), (dict(lr=0), "lr must be"), (dict(lr=float("nan")), "lr must be")])
def test_bad_input(kw, msg):
    with pytest.raises(ValueError, match=msg):
        ProgressivePrompts(**kw)


def test_bad_task_ids():
    pp = ProgressivePrompts(prompt_len=2)
    for bad in (-1, 1.0, "0"):
        with pytest.raises(ValueError, match="task_id must be"):
            pp.prompt_stack(bad)

"Tokenizer and model loading: the hub is tried first, the offline tokenizer matches it, bad names fail clearly."
import pytest
import torch

from cl_course import models
from cl_course.models import load_model, load_tokenizer, gpt2_tokenizer_offline


def test_hub_tokenizer_is_tried_first(monkeypatch):
    calls = []
    def fake_hub(name):
        calls.append(name)
        return gpt2_tokenizer_offline()   # stands in for the hub's copy
    monkeypatch.setattr(models, "_tokenizer_from_hub", fake_hub)
    tok = load_tokenizer("gpt2")
    assert calls == ["gpt2"]
    assert tok.pad_token_id == tok.eos_token_id == 50256


def test_offline_fallback_has_the_same_structure(monkeypatch):
    def offline(name): raise OSError("no network")
    monkeypatch.setattr(models, "_tokenizer_from_hub", offline)
    tok = load_tokenizer("gpt2")
    assert len(tok) == 50257 and tok.eos_token == "<|endoftext|>"
    # ids of GPT-2's tokenizer, as published (e.g. in the tiktoken/GPT-2 encoder.json)
    assert tok("Hello world")["input_ids"] == [15496, 995]
    assert tok(" = Robert Boulter = ")["input_ids"] == tok.encode(" = Robert Boulter = ")
    assert tok.decode(tok("naïve café @-@ 1 @,@ 000")["input_ids"]) == "naïve café @-@ 1 @,@ 000"


def test_unknown_names():
    with pytest.raises(ValueError, match="Unknown model 'gpt-j'.*gpt2-tiny"):
        load_model("gpt-j")
    with pytest.raises(ValueError, match="Unknown tokenizer"):
        load_tokenizer("llama")
    with pytest.raises(ValueError, match="pass train_texts"):
        load_tokenizer("bpe-512")
    with pytest.raises(ValueError, match="attn_implementation"):
        load_model("gpt2-tiny", attn_implementation="flash")


def test_tiny_model_matches_its_tokenizer():
    tok = load_tokenizer("bpe-300", ["the cat sat on the mat. " * 50, "a dog ran. " * 50])
    model = load_model("gpt2-tiny", tokenizer=tok, device="cpu")
    assert model.config.vocab_size == len(tok) <= 300   # a tiny corpus may run out of merges
    assert model.config.eos_token_id == tok.eos_token_id
    out = model(**{k: torch.tensor([v]) for k, v in tok("the cat").items() if k != "token_type_ids"})
    assert out.logits.shape[-1] == len(tok)

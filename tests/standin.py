"""Offline stand-ins for what the full-size path downloads: GPT-2 (124M, random weights, GPT-2's real configuration,
module names and exact tokenizer) saved with `save_pretrained`, and a WikiText folder whose train/valid/test files are
the local test-split slice. They stand in for the hub and nothing else: the course loads them as it loads any folder.

    python tests/standin.py OUT    # writes OUT/gpt2 and OUT/wikitext, prints the environment that points at them
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

SPLITS = ("train", "valid", "test")

def make_standin_model(folder: str | os.PathLike, seed: int = 0, config=None) -> Path:
    "GPT-2 124M (or `config`, a `GPT2Config`) with random weights and GPT-2's tokenizer, saved to `folder` (reused if already there)."
    folder = Path(folder)
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists(): return folder
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from cl_course.models import gpt2_tokenizer_offline
    torch.manual_seed(seed)
    GPT2LMHeadModel(config or GPT2Config()).save_pretrained(folder)   # GPT2Config(): gpt2's sizes (12 x 768, 1,024 positions, 50,257 tokens)
    gpt2_tokenizer_offline().save_pretrained(folder)
    return folder

def make_full_data(folder: str | os.PathLike, source: str | os.PathLike) -> Path:
    "A WikiText folder whose wiki.{train,valid,test}.raw are the local slice `source` (the full size reads the train split)."
    folder, source = Path(folder), Path(source)
    src = source / "wiki.test.raw" if source.is_dir() else source
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        f = folder / f"wiki.{split}.raw"
        if not f.exists(): f.write_bytes(src.read_bytes())
    return folder

def shared_data() -> Path:
    "The local WikiText slice: $CL_COURSE_DATA, else ../shared beside the repository."
    env = os.environ.get("CL_COURSE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw"

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/standin").resolve()
    model, data = make_standin_model(out / "gpt2"), make_full_data(out / "wikitext", shared_data())
    print(f"export CL_COURSE_MODEL_DIR={model} CL_COURSE_DATA={data}")

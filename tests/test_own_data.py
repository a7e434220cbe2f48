"""`own_stream` and `cl-course run --tasks`: every format is a task, formats mix, the blocks are the WikiText path's
own, every mistake is one line with exit status 2 through the real command, and a changed file refuses --resume."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cl_course.blocks import task_loaders
from cl_course.config import course_config
from cl_course.data import Task, load_wikitext
from cl_course.models import load_tokenizer
from cl_course.own_data import load_documents, own_stream, task_sources
from cl_course.stream import _tokenizer_definition
from cli_helpers import one_line_of, run_main

QUICK = ["--budget", "smoke", "--methods", "naive", "--quiet"]   # two tasks, blocks of 32, two steps each
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def cli_args(*args):
    return [sys.executable, "-m", "cl_course.cli", "run", *map(str, args)]


def one_line(stderr: str) -> str: return one_line_of(stderr, prefix="cl-course: error: ")   # argparse's form of the line


def doc(a) -> str: return a.title + "\n" + a.text   # an article as the document a learner's file holds


@pytest.fixture(scope="module")
def articles():
    d = Path(os.environ.get("CL_COURSE_DATA") or Path(__file__).resolve().parents[2] / "shared/data/wikitext-103-raw")
    return load_wikitext(d, "test", max_articles=36)


def small(**kw):
    return course_config("small", "default", max_train_blocks=2, max_eval_blocks=2, **kw)


def write_txt(folder: Path, docs: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, d in enumerate(docs): (folder / f"{i:02d}.txt").write_text(d + "\n", encoding="utf-8")
    return folder


def stream_docs(task) -> set[str]:
    return {doc(a) for a in task.articles}


def test_each_format_is_a_task(tmp_path, articles):
    "A task from each format holds exactly the documents written (a reader that drops, merges or reorders records fails)."
    from datasets import Dataset
    groups = [[doc(a) for a in articles[i:i + 3]] for i in range(0, 18, 3)]
    write_txt(tmp_path / "txt", groups[0])
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": d, "n": 1}) + "\n" for d in groups[1]), encoding="utf-8")
    (tmp_path / "t.json").write_text(json.dumps([{"body": d} for d in groups[2]]), encoding="utf-8")
    Dataset.from_dict({"body": groups[3]}).to_parquet(tmp_path / "t.parquet")
    Dataset.from_dict({"body": groups[4]}).save_to_disk(str(tmp_path / "saved"))
    mem = Dataset.from_dict({"body": groups[5]})
    # the text field is 'body' except in the .txt and .jsonl tasks: read those two with the default field
    s1 = own_stream([tmp_path / "txt", tmp_path / "t.jsonl"], small())
    s2 = own_stream([tmp_path / "t.json", tmp_path / "t.parquet", tmp_path / "saved", mem], small(), text_field="body")
    tasks = s1.tasks + s2.tasks
    assert [t.name for t in tasks] == ["txt", "t", "t", "t", "saved", "dataset 4"]
    for t, g in zip(tasks, groups):
        assert stream_docs(t) == set(g) and len(t.articles) == len(g)
        assert len(t.eval) == 1 and not stream_docs(Task("", t.train, [])) & stream_docs(Task("", t.eval, []))


def test_mixed_formats_in_one_task(tmp_path, articles):
    "A folder of several formats is one task, its files read in name order."
    from datasets import Dataset
    d = [doc(a) for a in articles[:6]]
    task = tmp_path / "mixed"; task.mkdir()
    (task / "a.txt").write_text(d[0], encoding="utf-8")
    (task / "b.jsonl").write_text(json.dumps({"text": d[1]}) + "\n" + json.dumps({"text": d[2]}) + "\n", encoding="utf-8")
    Dataset.from_dict({"text": [d[3]]}).to_parquet(task / "c.parquet")
    Dataset.from_dict({"text": [d[4]]}).save_to_disk(str(task / "d_saved"))
    (task / "e.txt").write_text(d[5], encoding="utf-8")
    assert load_documents(task_sources([task, task / "a.txt"])[0][2]) == d
    s = own_stream([task, write_txt(tmp_path / "other", [doc(a) for a in articles[6:10]])], small())
    assert stream_docs(s.tasks[0]) == set(d)


def test_paragraphs_and_single_folder_of_tasks(tmp_path, articles):
    "paragraphs=True cuts a .txt file at blank lines; one folder is a folder of tasks, in name order."
    root = tmp_path / "tasks"
    (root / "2-second").mkdir(parents=True)
    (root / "2-second" / "all.txt").write_text("\n\n".join(doc(a) for a in articles[:4]), encoding="utf-8")
    write_txt(root / "1-first", [doc(a) for a in articles[4:8]])
    s = own_stream([root], small(), paragraphs=True)
    assert s.names == ["1-first", "2-second"]
    assert stream_docs(s.tasks[1]) == {p.strip() for a in articles[:4] for p in doc(a).split("\n\n")}
    with pytest.raises(ValueError, match="has 1 document"): own_stream([root], small())   # one file, one document


def test_blocks_equal_the_wikitext_path(tmp_path, articles):
    """WikiText articles written as one file per article, read back as a stream, give block for block what the WikiText
    path (the same articles as `Task`s through `task_loaders`) gives, with the tokenizer `prepare_stream` trains on them.
    (The same grouping through `prepare_stream` itself is not practical: it groups articles by TF-IDF clustering, so the
    comparison takes the tasks and the train/eval split from the own stream and feeds the WikiText path the articles.)"""
    groups = [articles[0:8], articles[8:16], articles[16:24]]
    paths = [write_txt(tmp_path / f"task{i}", [doc(a) for a in g]) for i, g in enumerate(groups)]
    cfg = course_config("small", "default", max_eval_blocks=None)
    s = own_stream(paths, cfg)
    by_doc = {doc(a): a for a in articles}
    tasks = [Task(t.name, [by_doc[doc(a)] for a in t.train], [by_doc[doc(a)] for a in t.eval]) for t in s.tasks]
    tok = load_tokenizer("bpe-1024", [doc(a) for t in tasks for a in t.train])   # as prepare_stream trains it without pretraining
    assert _tokenizer_definition(tok) == _tokenizer_definition(s.tokenizer)
    ref = task_loaders(tasks, tok, cfg.block_size, cfg.batch_size, cfg.max_train_blocks, cfg.max_eval_blocks, seed=cfg.seed)
    for (tr, ev), (rtr, rev) in zip(s.loaders, ref):
        for a, b in ((tr, rtr), (ev, rev)):
            assert len(a.dataset) > 0
            for k in ("input_ids", "attention_mask", "labels"): assert torch.equal(a.dataset.blocks[k], b.dataset.blocks[k])


# ---- every mistake through the real command: exit status 2, one line, no traceback ----

def _tiny_model(folder: Path, tokenizer_texts=None, pickled=False) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    if tokenizer_texts: load_tokenizer("bpe-512", tokenizer_texts).save_pretrained(folder)   # 257 tokens or more: bytes + end-of-text
    if pickled:
        (folder / "model.safetensors").unlink()
        with open(folder / "pytorch_model.bin", "wb") as f: pickle.dump({"w": [1.0]}, f, protocol=4)   # "Unsupported operand 149"
    return folder


def run(*args) -> tuple[int, str]: return run_main("run", *args)   # `cl-course run ...` in this process


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, articles):
    "Every bad input, as (arguments, expected message), and a folder for --out that must stay empty."
    t = tmp_path_factory.mktemp("bad")
    ok1 = write_txt(t / "ok1", [doc(a) for a in articles[:4]])
    ok2 = write_txt(t / "ok2", [doc(a) for a in articles[4:8]])
    (t / "empty").mkdir(); (t / "empty" / "a.txt").write_text(" \n\n", encoding="utf-8")
    write_txt(t / "short", ["a few words", "and a few more"])
    write_txt(t / "single", [doc(articles[9])])
    (t / "bin").mkdir(); (t / "bin" / "a.txt").write_bytes(bytes(range(256)) * 4); (t / "bin" / "b.txt").write_text("text")
    (t / "latin").mkdir(); (t / "latin" / "a.txt").write_bytes("Un café très noir.".encode("latin-1"))
    (t / "nofield.jsonl").write_text(json.dumps({"text": doc(articles[10])}) + "\n" + json.dumps({"body": "x"}) + "\n")
    mismatched = _tiny_model(t / "mismatched", [doc(a) for a in articles[:8]])
    pickled = _tiny_model(t / "pickled", pickled=True)
    cases = {
        "missing path": (["--tasks", ok1, t / "nope"], "does not exist"),
        "empty task": (["--tasks", ok1, t / "empty"], "is empty: it holds no text"),
        "one task only": (["--tasks", ok1 / "00.txt"], "at least 2 tasks"),
        "too little for a block": (["--tasks", ok1, t / "short"], "fewer than one block"),
        "too little for an eval split": (["--tasks", ok1, t / "single"], "has 1 document, too few to split"),
        "binary file": (["--tasks", ok1, t / "bin"], "binary file"),
        "not UTF-8": (["--tasks", ok1, t / "latin"], "not UTF-8 text (byte 0xe9"),
        "JSON line without the field": (["--tasks", ok1, t / "nofield.jsonl"], "line 2 has no 'text' field"),
        "tokenizer and model disagree": (["--tasks", ok1, ok2, "--model", mismatched], "tokens but the model's config.json only 100"),
        "the same files": (["--tasks", ok1, t / "ok1"], "are the same files"),
        "pickled weights": (["--tasks", ok1, ok2, "--model", pickled], "refuses this pickle"),
        "WikiText option": (["--tasks", ok1, ok2, "--n-tasks", "2"], "--n-tasks describes the WikiText stream"),
        "general without tasks": (["--general", ok1], "--general goes with --tasks"),
    }
    return cases, t / "out"


CASES = ["missing path", "empty task", "one task only", "too little for a block", "too little for an eval split", "binary file",
         "not UTF-8", "JSON line without the field", "tokenizer and model disagree", "the same files", "pickled weights",
         "WikiText option", "general without tasks"]

@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_with_one_line(bad_inputs, case):
    "Each mistake through the command's entry point (in this process: the command imports PyTorch for seconds each time)."
    cases, out = bad_inputs
    args, msg = cases[case]
    code, err = run(*args, *QUICK, "--out", out / case.replace(" ", "_"))
    assert code == 2, err
    assert msg in one_line(err), err
    assert not (out / case.replace(" ", "_")).exists()   # refused before anything was written


REAL = ["missing path", "JSON line without the field", "pickled weights"]   # a file, the data, the model: each side once

def test_real_command_exits_2_with_one_line(bad_inputs):
    "The installed command (`python -m cl_course.cli`) in its own process, three mistakes at once: status 2, one line."
    cases, out = bad_inputs
    procs = {k: subprocess.Popen(cli_args(*cases[k][0], *QUICK, "--out", out / "real"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=ENV) for k in REAL}
    errs = {k: p.communicate(timeout=600)[1] for k, p in procs.items()}
    for k, p in procs.items():
        assert p.returncode == 2, errs[k]
        assert cases[k][1] in one_line(errs[k]), errs[k]
    line = one_line(errs["pickled weights"])
    assert "pytorch_model.bin" in line and "weights_only=True" in line and "safetensors weights load safely" in line
    assert not (out / "real").exists()


def test_run_then_resume_refused_after_a_file_changes(tmp_path, articles):
    "A run on two folders writes its table; after one file of task 2 changes, --resume is refused naming that task."
    a = write_txt(tmp_path / "alpha", [doc(x) for x in articles[:4]])
    b = write_txt(tmp_path / "beta", [doc(x) for x in articles[4:8]])
    out = tmp_path / "out"
    code, err, stdout = run_main("run", "--tasks", a, b, *QUICK[:2], "--methods", "naive,replay", "--out", out, stdout=True)
    assert code == 0, err
    assert "naive" in stdout and "replay" in stdout and "ACC" in stdout
    assert f"tasks, in order: 1 alpha ({a}); 2 beta ({b})" in err and "column (Δ general ppl) is absent" in err
    with open(b / "02.txt", "a", encoding="utf-8") as f: f.write("One more sentence.\n")
    code, err = run_main("run", "--tasks", a, b, *QUICK[:2], "--methods", "naive,replay", "--out", out, "--resume", "--quiet")
    assert code == 2
    line = one_line(err)
    assert "different configuration" in line and "data.task 2 'beta'" in line and "task 1" not in line, line

"Every function that takes a file or folder accepts a str, a pathlib.Path and any os.PathLike (bytes ones included)."
import json
import os
from pathlib import Path

import pytest
import torch

from cl_course.benchmark import load_runs, run_benchmark
from cl_course.config import as_path
from cl_course.data import load_wikitext
from cl_course.models import train_bpe_tokenizer
from cl_course.train import Method
from cl_course.config import TrainConfig, course_config
from cl_course.stream import load_checkpoint, prepare_stream, run_stream, save_checkpoint

TINY = dict(pretrain_articles=0, n_tasks=2, max_train_blocks=4, max_eval_blocks=2, epochs=1, progress=False)


class StrPath:
    "A path-like object that is not a pathlib.Path (as a library's own path class would be)."
    def __init__(self, p): self.p = str(p)
    def __fspath__(self): return self.p
    def __repr__(self): return f"StrPath({self.p!r})"


class BytesPath(StrPath):
    "A path-like object whose path is bytes (os.PathLike[bytes])."
    def __fspath__(self): return os.fsencode(self.p)


KINDS = {"str": str, "Path": Path, "StrPath": StrPath, "BytesPath": BytesPath}


@pytest.fixture(params=list(KINDS))
def kind(request):
    return KINDS[request.param]


@pytest.fixture(scope="module")
def stream(wikitext_dir_module):
    return prepare_stream(course_config("small", data=str(wikitext_dir_module), **TINY))


@pytest.fixture(scope="module")
def wikitext_dir_module():
    d = Path(os.environ.get("CL_COURSE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw")
    assert (d / "wiki.test.raw").exists(), f"no WikiText slice at {d}"
    return d


def test_the_kinds_are_path_like():
    assert all(isinstance(k("x"), os.PathLike) for k in (Path, StrPath, BytesPath))
    assert as_path(BytesPath("~/x")) == Path("~/x").expanduser()
    with pytest.raises(TypeError, match="Expected a file or folder path"):
        as_path(3)
    with pytest.raises(TypeError, match="Expected a file or folder path"):
        load_wikitext(None)


def test_load_wikitext_folder_and_file(kind, wikitext_dir):
    want = load_wikitext(str(wikitext_dir), "test", max_articles=4)
    assert load_wikitext(kind(wikitext_dir), "test", max_articles=4) == want
    assert load_wikitext(kind(wikitext_dir / "wiki.test.raw"), max_articles=4) == want
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_wikitext(kind(wikitext_dir / "no-such-file"))


def test_config_data_becomes_plain_text(kind, wikitext_dir):
    cfg = TrainConfig(data=kind(wikitext_dir))
    assert cfg.data == str(wikitext_dir) and json.loads(json.dumps(cfg.to_dict()))["data"] == str(wikitext_dir)
    assert load_wikitext(cfg.data, "test", max_articles=2) == load_wikitext(str(wikitext_dir), "test", max_articles=2)


def test_checkpoint_files(kind, tmp_path):
    state = {"w": torch.arange(6.0).view(2, 3), "done": 2}
    save_checkpoint(kind(tmp_path / "a" / "ck.pt"), state)   # the folder is created
    back = load_checkpoint(kind(tmp_path / "a" / "ck.pt"))
    assert torch.equal(back["w"], state["w"]) and back["done"] == 2
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["ck.pt"]   # no temporary file left


def test_run_stream_checkpoint_dir(kind, stream, tmp_path):
    first = run_stream(Method(), stream, checkpoint_dir=kind(tmp_path / "run"))
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["done"] == len(stream)
    again = run_stream(Method(), stream, checkpoint_dir=str(tmp_path / "run"), resume=True)   # read back under another spelling
    assert (again.accuracy == first.accuracy).all()


def test_run_benchmark_out_dir_and_load_runs(kind, wikitext_dir, tmp_path):
    cfg = course_config("small", data=str(wikitext_dir), **TINY)
    table = run_benchmark(["naive"], cfg, [0], out_dir=kind(tmp_path / "bench"))
    assert (tmp_path / "bench" / "results.csv").exists() and list(table["method"]) == ["naive"]
    assert sorted(p.name for p in (tmp_path / "bench" / "runs").iterdir()) == ["naive-seed0.json"]   # the finished run's checkpoint is gone
    runs = load_runs(kind(tmp_path / "bench"))
    assert list(runs) == ["naive"] and runs["naive"].accuracy.shape == (3, 2)
    log = []
    run_benchmark(["naive"], cfg, [0], out_dir=kind(tmp_path / "bench"), resume=True, on_progress=log.append)
    assert log == ["naive (seed 0): finished earlier, read back"]


def test_tokenizer_cache_dir(kind, tmp_path):
    tok = train_bpe_tokenizer(["a small text to learn a few merges from", "another one"], vocab_size=300, cache_dir=kind(tmp_path / "tok"))
    assert [p.suffix for p in (tmp_path / "tok").iterdir()] == [".json"]
    assert tok.decode(tok("a small text")["input_ids"]) == "a small text"

"""Identity from content: a run's checkpoint and a benchmark folder know the data, tokenizer, model and method they were
made with; resuming on other data (another $CL_COURSE_DATA) is refused naming the data fingerprint; --overwrite with
--resume is refused; the dashboard keeps one folder per configuration."""
import dataclasses
import json
import os
from pathlib import Path

import pytest

from cl_course.benchmark import run_benchmark
from cl_course.dashboard import dashboard_run
from cl_course.data import Article, load_wikitext
from cl_course.models import load_tokenizer
from cl_course.train import Method
from cl_course.config import course_config
from cl_course.stream import identity_diff, prepare_stream, run_stream
from cli_helpers import one_line_of, run_main

TINY = dict(pretrain_articles=0, n_tasks=2, max_train_blocks=4, max_eval_blocks=2, epochs=1, progress=False)


def write_wikitext(articles: list[Article], folder: Path, split: str = "test") -> Path:
    "`articles` as the WikiText file `folder/wiki.<split>.raw` (the same articles when read back)."
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"wiki.{split}.raw").write_text("".join(f" = {a.title} = \n" + "".join(f" {l} \n" for l in a.text.split("\n"))
                                                      for a in articles), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    "Three data folders: `a` (the shared slice, rewritten), `a2` (the same articles elsewhere), `b` (one eval-side word changed)."
    d = Path(os.environ.get("CL_COURSE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw")
    arts = load_wikitext(str(d), "test")
    root = tmp_path_factory.mktemp("corpora")
    changed = arts[:-1] + [dataclasses.replace(arts[-1], text=arts[-1].text.replace(" the ", " a ", 1))]
    out = dict(a=write_wikitext(arts, root / "a"), a2=write_wikitext(arts, root / "a2"), b=write_wikitext(changed, root / "b"))
    assert load_wikitext(str(out["a"]), "test") == arts and load_wikitext(str(out["b"]), "test") != arts
    return out


def hub_config(**kw):
    "The course's default data name (a hub config), which $CL_COURSE_DATA redirects to a local folder."
    return course_config("small", data="wikitext-103-raw-v1", **{**TINY, **kw})


def test_identity_diff_names_what_differs():
    old = dict(config=dict(lr=0.001, epochs=1), data="aaaa", tokenizer="tttt", method="ewc")
    new = dict(config=dict(lr=0.002, epochs=1), data="bbbb", tokenizer="tttt", method="ewc")
    assert identity_diff(old, new) == ["config.lr: 0.001 → 0.002", "data fingerprint aaaa → bbbb"]
    assert identity_diff(new, new) == []


def test_stream_fingerprint_is_content(corpora):
    a = prepare_stream(course_config("small", data=str(corpora["a"]), **TINY))
    a2 = prepare_stream(course_config("small", data=str(corpora["a2"]), **TINY))
    b = prepare_stream(course_config("small", data=str(corpora["b"]), **TINY))
    assert a.fingerprint() == a2.fingerprint()                   # the same articles, wherever they are
    assert a.fingerprint()["data"] != b.fingerprint()["data"]    # one word differs
    other_tok = dataclasses.replace(a, tokenizer=load_tokenizer("gpt2"))
    assert other_tok.fingerprint() == dict(a.fingerprint(), tokenizer=other_tok.fingerprint()["tokenizer"])
    assert other_tok.fingerprint()["tokenizer"] != a.fingerprint()["tokenizer"]


def test_run_resume_refuses_other_data_behind_the_same_name(corpora, tmp_path, monkeypatch):
    monkeypatch.setenv("CL_COURSE_DATA", str(corpora["a"]))
    run_stream(Method(), prepare_stream(hub_config()), checkpoint_dir=tmp_path)
    monkeypatch.setenv("CL_COURSE_DATA", str(corpora["a2"]))          # another folder, the same articles: resumes
    run_stream(Method(), prepare_stream(hub_config()), checkpoint_dir=tmp_path, resume=True)
    monkeypatch.setenv("CL_COURSE_DATA", str(corpora["b"]))           # the same name, other text: refused
    with pytest.raises(ValueError, match="different configuration.*data fingerprint [0-9a-f]{16} → [0-9a-f]{16}"):
        run_stream(Method(), prepare_stream(hub_config()), checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="pass one of them"):
        run_stream(Method(), prepare_stream(hub_config()), checkpoint_dir=tmp_path, resume=True, overwrite=True)


def test_run_resume_refuses_another_tokenizer_or_method_configuration(corpora, tmp_path):
    s = prepare_stream(course_config("small", data=str(corpora["a"]), **TINY))
    from cl_course.baselines import ExperienceReplay
    run_stream(ExperienceReplay(memory_size=4), s, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="tokenizer fingerprint"):
        run_stream(ExperienceReplay(memory_size=4), dataclasses.replace(s, tokenizer=load_tokenizer("gpt2")), checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match=r"method_config.memory_size: 4 → 8"):
        run_stream(ExperienceReplay(memory_size=8), s, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match=r"method_config.seed: 0 → 1"):
        run_stream(ExperienceReplay(memory_size=4, seed=1), s, checkpoint_dir=tmp_path, resume=True)


def test_benchmark_resume_refuses_other_data_and_reads_back_the_same(corpora, tmp_path, monkeypatch):
    out = tmp_path / "bench"
    monkeypatch.setenv("CL_COURSE_DATA", str(corpora["a"]))
    first = run_benchmark(["naive"], hub_config(), [0], out_dir=out)
    monkeypatch.setenv("CL_COURSE_DATA", str(corpora["a2"]))
    log = []
    again = run_benchmark(["naive"], hub_config(), [0], out_dir=out, resume=True, on_progress=log.append)
    assert log == ["naive (seed 0): finished earlier, read back"] and again.equals(first)
    monkeypatch.setenv("CL_COURSE_DATA", str(corpora["b"]))
    with pytest.raises(ValueError, match="different configuration.*data fingerprint"):
        run_benchmark(["naive"], hub_config(), [0], out_dir=out, resume=True)
    # a finished run whose own identity no longer matches (here: edited by hand) is refused when read back
    monkeypatch.setenv("CL_COURSE_DATA", str(corpora["a"]))
    f = out / "runs" / "naive-seed0.json"
    d = json.loads(f.read_text()); d["identity"]["method_config"]["lr"] = 0.5; f.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"naive-seed0.json was written by a different run.*method_config.lr: 0.5 → None"):
        run_benchmark(["naive"], hub_config(), [0], out_dir=out, resume=True)


def test_overwrite_and_resume(corpora, tmp_path):
    cfg, out = course_config("small", data=str(corpora["a"]), **TINY), tmp_path / "bench"
    with pytest.raises(ValueError, match="resume=True .*overwrite=True .*choose one"):
        run_benchmark(["naive"], cfg, [0], out_dir=out, resume=True, overwrite=True)
    run_benchmark(["naive"], cfg, [0], out_dir=out)
    with pytest.raises(FileExistsError, match="resume=True"):
        run_benchmark(["naive"], cfg, [0], out_dir=out)
    log = []   # overwrite: this configuration's results are deleted and computed again
    run_benchmark(["naive"], cfg, [0], out_dir=out, overwrite=True, on_progress=log.append)
    assert log[0] == "naive (seed 0): running"
    other = cfg.replace(lr=2 * cfg.lr)
    with pytest.raises(ValueError, match="different configuration.*config.lr"):
        run_benchmark(["naive"], other, [0], out_dir=out, resume=True)
    run_benchmark(["naive"], other, [0], out_dir=out, overwrite=True)   # another configuration replaces it
    assert json.loads((out / "benchmark.json").read_text())["identity"]["config"]["lr"] == other.lr


def test_dashboard_keeps_one_folder_per_configuration(corpora, tmp_path, monkeypatch):
    from cl_course import dashboard
    real = dashboard.course_config
    monkeypatch.setattr(dashboard, "course_config", lambda **kw: real("small", data=str(corpora["a"]), **{**TINY, **kw}))
    out, log = tmp_path / "dash", []
    say = lambda s: log.append(s)
    first = dashboard_run(["naive", "prompts"], n_tasks=2, quick=False, out_dir=out, on_progress=say)
    other = dashboard_run(["naive", "prompts"], {"prompt_len": 5}, n_tasks=2, quick=False, out_dir=out, on_progress=say)
    log.clear()
    back = dashboard_run(["naive", "prompts"], n_tasks=2, quick=False, out_dir=out, on_progress=say)
    assert back["out_dir"] == first["out_dir"] != other["out_dir"]
    assert sorted(p.name for p in out.iterdir()) == sorted([first["out_dir"].name, other["out_dir"].name])
    assert log == ["naive (seed 0): finished earlier, read back", "prompts (seed 0): finished earlier, read back"]
    assert back["table"].equals(first["table"])


def test_cli_resume_after_changing_cl_course_data_is_refused(corpora, tmp_path, monkeypatch):
    "`cl-course run` in this process (its real command is tested in test_cli), with $CL_COURSE_DATA changed between runs."
    quick = ["--methods", "naive", "--n-tasks", "2", "--max-train-blocks", "4", "--max-eval-blocks", "4", "--epochs", "1", "--quiet", "--out", str(tmp_path / "o")]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CL_COURSE_DATA", str(corpora["a"]))
    code, err = run_main("run", *quick)
    assert code == 0, err
    code, err = run_main("run", *quick, "--resume", "--overwrite")
    assert code == 2 and "choose one" in one_line_of(err), err
    monkeypatch.setenv("CL_COURSE_DATA", str(corpora["b"]))
    code, err = run_main("run", *quick, "--resume")
    assert code == 2 and "data fingerprint" in one_line_of(err), err

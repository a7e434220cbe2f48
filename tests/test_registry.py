"""The house the methods live in: a method registered in one place reaches the command line, the benchmark and the
dashboard; a method's learning rate comes from the run's configuration, never from the machine; the library's modules
import only modules of earlier notebooks (function-level imports included), so there is no import cycle."""
import ast
import contextlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from cl_course import config as C, registry as R
from cl_course.train import Method

LIB = Path(C.__file__).parent


@dataclass
class ToyParams:
    toy_strength: float = R.param(0.25, "toy: how strongly the toy does nothing", lo=0)
    def __post_init__(self): R.check_params(self)


class Toy(Method):
    "Naive fine-tuning under another name, with a parameter and a seed."
    name = "toy"
    def __init__(self, strength: float, seed: int): self.strength, self.seed = strength, seed
    def config(self) -> dict: return dict(strength=self.strength, seed=self.seed)


def _build_toy(p: ToyParams, seed: int, config) -> Toy: return Toy(p.toy_strength, seed)


@pytest.fixture
def toy():
    R.register_method("toy", _build_toy, ToyParams, help="a toy method (tests only)")
    yield
    R._REGISTRY.pop("toy", None)


def test_a_registered_method_reaches_the_command_line(toy):
    from cl_course.cli import config_from_args, make_parser
    p = make_parser()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit): p.parse_args(["run", "--help"])
    text = " ".join(out.getvalue().split())
    assert "toy" in text and "--toy-strength" in text and "how strongly the toy does nothing (default: 0.25)" in text
    args = p.parse_args(["run", "--methods", "naive,toy", "--toy-strength", "2"])
    assert args.methods == ["naive", "toy"]
    assert config_from_args(args)[1]["ToyParams"].toy_strength == 2.0
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
        p.parse_args(["run", "--toy-strength", "-1"])   # the declared range, on the command line too


def test_a_registered_method_reaches_the_benchmark_and_the_dashboard(toy, tmp_path):
    from cl_course.benchmark import run_benchmark
    from cl_course.dashboard import dashboard
    d = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw"
    cfg = C.course_config("small", "smoke", data=str(d), progress=False)
    table = run_benchmark(["naive", "toy"], cfg, [3], {"toy_strength": 0.5}, out_dir=tmp_path / "b")
    assert list(table["method"]) == ["naive", "toy"]
    import json
    run = json.loads((tmp_path / "b" / "runs" / "toy-seed3.json").read_text())
    assert run["config"]["method_config"] == dict(strength=0.5, seed=3)
    # a toy run is naive fine-tuning: the same numbers
    naive = json.loads((tmp_path / "b" / "runs" / "naive-seed3.json").read_text())
    assert run["perplexity"] == naive["perplexity"]
    panel = dashboard(out_dir=tmp_path / "d")
    methods, knobs = panel.children[0].children
    assert "toy" in methods.options
    (strength,) = [w for w in knobs.children if getattr(w, "description", "") == "toy_strength"]   # its parameter, unlabelled: its name
    assert strength.value == 0.25 and 2.5 in dict(strength.options).values() and 0.0 in dict(strength.options).values()


def test_registry_refuses_clashes():
    @dataclass
    class Clash:
        ewc_lambda: float = R.param(1.0, "another λ", lo=0)
    R.method_specs()
    with pytest.raises(ValueError, match="parameter names must be unique"):
        R.register_method("clash", lambda p, s, c: Method(), Clash)
    with pytest.raises(ValueError, match="registered twice"):
        R.register_method("ewc", lambda p, s, c: Method())
    assert "clash" not in R._REGISTRY


def test_a_notebooks_registration_and_the_librarys_replace_each_other():
    "A notebook that defines what the library defines (or a re-run cell) replaces the registration; nothing clashes."
    specs = R.method_specs()
    lib = specs["ewc"]
    def build(p, s, c): return Method()
    build.__module__ = "__main__"
    try:
        @dataclass
        class EWCParams:   # the notebook's own copy: same field names as the library's
            ewc_lambda: float = R.param(1.0, "λ", lo=0)
        EWCParams.__module__, EWCParams.__qualname__ = "__main__", "EWCParams"
        assert R.register_method("ewc", build, EWCParams).module == "__main__"
        assert R.register_method("ewc", build, EWCParams).module == "__main__"   # the cell run again
        assert R.register_method("ewc", lib.build, lib.params, lib.help).module == lib.module
    finally:
        R._REGISTRY["ewc"] = lib
    assert R.method_specs()["ewc"] is lib


@pytest.mark.parametrize("size, cuda", [("small", True), ("full", False), ("small", False), ("full", True)])
def test_lora_learning_rate_follows_the_runs_size_not_the_machine(size, cuda, monkeypatch):
    "`--size small` on a GPU trains LoRA at the small size's rate, `--size full` on a CPU at the full size's."
    from cl_course.cli import config_from_args, make_parser
    from cl_course.lora_methods import LORA_LR
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.delenv("CL_COURSE_SIZE", raising=False)
    args = make_parser().parse_args(["run", "--size", size])
    cfg, params = config_from_args(args)
    assert cfg.size == size
    for name in ("lora-shared", "lora-per-task", "o-lora"):
        m = R.build_method(name, params, 0, cfg)
        assert m.lr_for(cfg) == LORA_LR[size], name
    assert LORA_LR["small"] != LORA_LR["full"]


def test_course_size_default_follows_the_machine(monkeypatch):
    monkeypatch.delenv("CL_COURSE_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert C.course_config().size == "full"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert C.course_config().size == "small"


def _notebook_of(path: Path) -> str:
    m = re.search(r"File to edit: \S*?/nbs/(\S+?)\.ipynb", path.read_text())
    assert m, f"{path.name} names no notebook"
    return m.group(1)


def _imports(path: Path) -> set[str]:
    "Modules of the package that `path` imports anywhere in it (function-level imports included)."
    found = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom):
            if n.level: base = n.module or ""
            elif n.module and n.module.startswith("cl_course."): base = n.module[len("cl_course."):]
            elif n.module == "cl_course": base = ""
            else: continue
            found |= {base.split(".")[0]} if base else {a.name for a in n.names}
        elif isinstance(n, ast.Import):
            found |= {a.name.split(".")[1] for a in n.names if a.name.startswith("cl_course.")}
    return found - {""}


def test_modules_import_only_earlier_notebooks_modules():
    mods = {p.stem: p for p in LIB.glob("*.py") if not p.stem.startswith("_")}
    order = {m: _notebook_of(p) for m, p in mods.items()}
    bad = [f"{m} ({order[m]}) imports {d} ({order[d]})" for m, p in mods.items() for d in _imports(p)
           if d in order and d != m and order[d] >= order[m]]
    assert not bad, bad
    assert "train" in _imports(mods["stream"]) and "config" in _imports(mods["train"])   # the scan reads real imports


def test_configuration_imports_no_torch():
    import subprocess, sys
    code = ("import sys, cl_course.config as c; c.course_config('small'); c.fingerprint([1.0, 'a']); "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_the_method_order_is_the_course_order_whatever_was_imported_first():
    "The command line, the benchmark and the dashboard list methods in the notebooks' order, not in import order."
    code = ("import cl_course.lora_methods, cl_course.prompts, cl_course.ewc\n"
            "from cl_course.registry import method_specs\nprint(','.join(method_specs()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip().split(",")
    assert out == [n for n in R.method_specs() if n in out]
    assert out[:3] == ["naive", "joint", "replay"] and out.index("ewc") < out.index("prompts") < out.index("lora-shared"), out


def test_a_notebooks_re_registration_keeps_the_course_order():
    "A notebook (`__main__`) registering again a method its module already registered: the method keeps its place."
    import cl_course.registry as r
    before = list(r.method_specs())
    old = r._REGISTRY["derpp"]
    def build(p, seed, config): return old.build(p, seed, config)
    build.__module__ = "__main__"
    try:
        r.register_method("derpp", build, old.params, help=old.help)
        assert r.method_specs()["derpp"].module == "__main__"
        assert list(r.method_specs()) == before
    finally: r._REGISTRY["derpp"] = old

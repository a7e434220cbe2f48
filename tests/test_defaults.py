"""Every default of the course lives once: no hyper-parameter of the library has the same literal default written in two
places (a default restated elsewhere drifts when one copy changes). Read from the source with `ast`: the defaults of
every function's parameters and of every class's annotated fields, grouped by the names one setting goes by."""
import ast
from collections import defaultdict
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "cl_course"
# the names one setting goes by: on a method's signature, in a method's parameters dataclass / TrainConfig, on the command line's dataclass
GROUPS = [{"lam", "ewc_lambda"}, {"gamma", "ewc_gamma"}, {"fisher_kind", "ewc_fisher"}, {"rank", "lora_rank"},
          {"alpha", "lora_alpha"}, {"prompt_len"}, {"memory_size"}, {"mix", "replay_mix"}, {"max_fisher_samples"},
          {"fisher_positions"}, {"lambda_orth"}, {"block_size"}, {"batch_size"}, {"max_train_blocks"}, {"max_eval_blocks"},
          {"epochs"}, {"n_tasks"}, {"lr"}, {"pretrain_articles"}, {"general_articles"}]


def literal_defaults(path: Path):
    "(name, value, line) of each literal (not None) default of a parameter or an annotated class field in `path`."
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults):], a.defaults)) + [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults) if d]
            for arg, d in pairs:
                if isinstance(d, ast.Constant) and d.value is not None: yield arg.arg, d.value, d.lineno
        elif isinstance(node, ast.ClassDef):
            for s in node.body:
                if not (isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)): continue
                v = s.value
                if isinstance(v, ast.Call) and getattr(v.func, "id", None) == "param" and v.args: v = v.args[0]   # param(default, help, ...)
                if isinstance(v, ast.Constant) and v.value is not None: yield s.target.id, v.value, s.lineno


def test_scan_finds_defaults(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("class C:\n    lr: float = 1e-3\n    n: int | None = None\n    k: int = param(3, 'k')\ndef f(x, lam=30.0, *, rank: int = 8, seed=None): pass\n")
    assert sorted(literal_defaults(f)) == [("k", 3, 4), ("lam", 30.0, 5), ("lr", 0.001, 2), ("rank", 8, 5)]


def test_each_default_is_written_once():
    seen = defaultdict(list)
    for path in sorted(LIB.glob("*.py")):
        for name, value, line in literal_defaults(path):
            for i, g in enumerate(GROUPS):
                if name in g: seen[i, repr(value)].append(f"{path.name}:{line} {name}={value!r}")
    repeated = {k: v for k, v in seen.items() if len(v) > 1}
    assert not repeated, "defaults written more than once (declare each once and read it elsewhere): " + "; ".join(
        " = ".join(v) for v in repeated.values())
    assert seen[0, repr(30.0)] and seen[3, repr(8)], "the scan found neither λ = 30 nor rank 8: has it stopped reading the library?"

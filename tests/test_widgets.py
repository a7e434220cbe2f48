"""The widgets' controls without a browser: each starts at the default the library declares, can select every value the
notebooks name (the λ sweep, the rank study, the γ compared), and the untouched widget's Run asks for exactly the
default run. No control is a float slider: in JupyterLab those send back their value snapped to the slider's steps
(a probe gave 30 -> 31.622776601683825 on the old log slider of λ, 0.9 -> 0.9000000000000001 on γ's slider), so an
untouched widget would not run its default. tests/test_widgets_browser.py checks the same in a real browser."""
import ipywidgets as W
import pytest

from cl_course import dashboard as dashboard_module, ewc_experiments, lora_experiments
from types import SimpleNamespace
from cl_course.dashboard import dashboard
from cl_course.registry import method_params, method_specs
from cl_course.ewc import DEFAULT_LAMBDA, EWC, ONLINE_GAMMA
from cl_course.ewc_experiments import LAMBDA_CHOICES, SWEEP_LAMBDAS, ewc_widget, lambda_slider
from cl_course.lora_experiments import SWEEP_RANKS, lora_widget
from cl_course.lora_methods import DEFAULT_ALPHA, DEFAULT_RANK, DEFAULT_TARGETS, lora_method
from cl_course.config import course_config

DRIFTING = (W.FloatSlider, W.FloatLogSlider, W.FloatRangeSlider)


class _Stop(Exception):
    "Raised by a stand-in for the expensive call, once it has recorded what it was asked."


def controls(panel) -> dict:
    "Every control of a panel, by its description."
    found, todo = {}, [panel]
    while todo:
        w = todo.pop()
        todo += list(getattr(w, "children", ()))
        assert not isinstance(w, DRIFTING), f"{w.description!r} is a float slider: the browser would change its value"
        if getattr(w, "description", ""): found[w.description] = w
    return found


def values(w) -> list:
    "The values a selection control offers."
    return [o[1] if isinstance(o, tuple) else o for o in w.options]


def selectable(w, v) -> bool:
    "Whether choosing `v` in control `w` gives exactly `v`."
    w.value = v
    return w.value == v and type(w.value) is type(v)


def click_run(panel) -> None:
    "Press the panel's Run button (its callback runs here, synchronously)."
    controls(panel)["Run"].click()


def test_the_sweeps_declare_the_defaults():
    assert DEFAULT_LAMBDA == 30.0 and DEFAULT_LAMBDA in SWEEP_LAMBDAS and set(SWEEP_LAMBDAS) < set(LAMBDA_CHOICES)
    assert {0.0, 30_000.0} < set(LAMBDA_CHOICES)   # naive fine-tuning, and the batched Fisher's match for the default
    assert DEFAULT_RANK == 8 and DEFAULT_RANK in SWEEP_RANKS
    p = SimpleNamespace(**{k: v for q in method_params().values() for k, v in vars(q).items()})
    assert (p.ewc_lambda, p.ewc_gamma, p.lora_rank, p.lora_alpha) == (DEFAULT_LAMBDA, ONLINE_GAMMA, DEFAULT_RANK, DEFAULT_ALPHA)


def test_ewc_widget_starts_at_the_default_and_offers_the_sweep():
    c = controls(ewc_widget())
    lam, gamma = c["λ"], c["γ (online)"]
    assert lam.value == 30.0 and type(lam.value) is float and lam.label == "30"
    for v in (*SWEEP_LAMBDAS, 0.0, 30_000.0): assert selectable(lam, v), v
    assert gamma.value == ONLINE_GAMMA == 0.9 and gamma.disabled
    for g in (1.0, 0.9, 0.5): assert selectable(gamma, g), g   # γ = 1 and 0.9 are compared in 08_ewc
    assert c["Fisher"].value == EWC().fisher_kind and c["EWC"].value == "separate"


def test_untouched_ewc_widget_asks_for_the_cached_default_run(monkeypatch):
    asked = []
    def run_cached(method, stream):
        asked.append((method, stream)); raise _Stop
    monkeypatch.setattr(ewc_experiments, "run_cached", run_cached)
    stream = object()   # never used: run_cached stops first
    panel = ewc_widget(stream)
    click_run(panel)
    (method, s), = asked
    assert s is stream and method.name == EWC().name
    assert method.config() == EWC().config()   # the run `run_cached(EWC(), stream)` made in 08_ewc: same cache entry


def test_lambda_slider_always_offers_its_value():
    s = lambda_slider(12.5, "λ")
    assert s.value == 12.5 and set(LAMBDA_CHOICES) < set(values(s))
    with pytest.raises(ValueError, match="lam"): lambda_slider(-1.0)


def test_lora_widget_starts_at_the_defaults_and_offers_the_rank_study(monkeypatch):
    panel = lora_widget(stream=[None, None])   # a stand-in: the widget reads only its length before the experiment
    c = controls(panel)
    assert (c["rank"].value, c["alpha"].value, c["targets"].value) == (DEFAULT_RANK, DEFAULT_ALPHA, DEFAULT_TARGETS)
    assert type(c["alpha"].value) is float
    for r in SWEEP_RANKS:
        assert selectable(c["rank"], r) and selectable(c["alpha"], 2.0 * r), r   # the study's alpha = 2r
    assert {"c_attn", "attn.c_proj", "mlp.c_proj", *DEFAULT_TARGETS} <= set(c["targets"].options)
    c["rank"].value, c["alpha"].value = DEFAULT_RANK, DEFAULT_ALPHA
    asked = []
    def run_lora_experiment(variant, rank, alpha, targets, stream, metric):
        asked.append(dict(variant=variant, rank=rank, alpha=alpha, targets=tuple(targets))); raise _Stop
    monkeypatch.setattr(lora_experiments, "run_lora_experiment", run_lora_experiment)
    click_run(panel)
    (a,) = asked
    assert lora_method(**a).config() == lora_method("shared").config()   # the defaults, exactly


def test_dashboard_starts_at_the_defaults(monkeypatch, tmp_path):
    "One control per registered parameter, each at its declared default; Run passes exactly those values."
    panel = dashboard(out_dir=tmp_path)
    c = controls(panel)
    p = SimpleNamespace(**{k: v for q in method_params().values() for k, v in vars(q).items()})
    assert c["EWC λ"].value == p.ewc_lambda == 30.0 and c["LoRA rank"].value == p.lora_rank
    assert c["prompt len"].value == p.prompt_len and c["tasks"].value == course_config().n_tasks
    assert c["EWC Fisher"].value == p.ewc_fisher and c["replay memory"].value == p.memory_size
    for v in SWEEP_LAMBDAS: assert selectable(c["EWC λ"], v), v
    for r in SWEEP_RANKS: assert selectable(c["LoRA rank"], r), r
    assert set(c["methods"].options) == set(method_specs())
    c["EWC λ"].value, c["LoRA rank"].value = p.ewc_lambda, p.lora_rank   # `selectable` moved them
    asked = []
    def dashboard_run(methods, params, n_tasks, **kw):
        asked.append(dict(params=params, n_tasks=n_tasks)); raise _Stop
    monkeypatch.setattr(dashboard_module, "dashboard_run", dashboard_run)
    click_run(panel)
    (a,) = asked
    assert set(a["params"]) == set(vars(p))   # every parameter, by name
    assert method_params(a["params"]) == method_params()
    assert type(a["params"]["ewc_lambda"]) is float and a["n_tasks"] == course_config().n_tasks
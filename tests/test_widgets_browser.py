"""The widgets where learners use them: JupyterLab in headless Chromium, one small notebook per widget (the EWC panel,
the LoRA panel, the benchmark dashboard) on a reduced stream. Each must render as controls (not as a text fallback),
start at the defaults the library declares, and redraw for the new value after a control is changed and Run pressed.

Needs jupyterlab, the playwright Python package and Debian's `chromium` (apt-get install -y chromium); the test skips,
saying so, when one of them is missing. JupyterLab runs on 127.0.0.1 with a fresh token and its own temporary config,
data, runtime and settings folders, and is stopped by its process group at the end. The kernels inherit CL_COURSE_DATA
(default: ../shared/data/wikitext-103-raw), CL_COURSE_CACHE, PYTHONPATH and HF_HUB_OFFLINE. Screenshots go to
tests/artifacts/."""
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ARTIFACTS = HERE / "artifacts"
SHARED_DATA = REPO.parent / "shared" / "data" / "wikitext-103-raw"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_MS = 300_000   # a Run, or the first render: generous, for a cold cache that pretrains the small model first

# The notebooks: a reduced 2-task stream from the course's own stream (the dashboard builds its own, with tiny caps).
PID_CELL = 'import os\nopen("{name}.pid", "w").write(str(os.getpid()));   # the test ends this kernel by its id if it must'
STREAM_CELLS = ["from cl_course.config import course_config\nfrom cl_course.stream import prepare_stream, reduced_stream",
                "stream = prepare_stream(course_config(progress=False))\n"
                "small = reduced_stream(stream, n_tasks=2, max_train_blocks=16, max_eval_blocks=8)"]
NOTEBOOKS = {
    "ewc": STREAM_CELLS + ["from cl_course.ewc_experiments import ewc_widget", "ewc_widget(small, new_model=stream.new_model)"],
    "lora": STREAM_CELLS + ["from cl_course.lora_experiments import lora_widget", "lora_widget(small)"],
    "dashboard": ["from cl_course.dashboard import dashboard",
                  'dashboard(out_dir="dashboard-runs", quick_caps=dict(max_train_blocks=16, epochs=1, max_eval_blocks=8))'],
}
TEXT_FALLBACK = ("VBox(children", "Loading widget", "Error displaying widget", "Failed to load model class")


def _requirements():
    "Skip (never pass silently) when the browser, playwright or JupyterLab is missing."
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is missing: pip install -e '.[dev]'")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is missing: apt-get install -y chromium (Debian's package, /usr/bin/chromium)")
    try:
        import jupyterlab  # noqa: F401
        import jupyterlab_widgets  # noqa: F401
    except ImportError as e:
        pytest.skip(f"JupyterLab or its widget extension is missing ({e.name}): pip install jupyterlab ipywidgets")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_notebook(path: Path, name: str, cells: list[str]) -> None:
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in [PID_CELL.format(name=name), *cells]])
    nb.metadata["kernelspec"] = dict(name="python3", display_name="Python 3", language="python")
    nbformat.write(nb, path)


def _lab_env(home: Path) -> dict:
    "The server's (and so the kernels') environment: ours, with Jupyter's folders in `home` and the course's variables."
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}   # the kernel's inline backend draws, as for a learner
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")]:
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    env["CL_COURSE_DATA"] = os.environ.get("CL_COURSE_DATA") or str(SHARED_DATA)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    notify = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notify.parent.mkdir(parents=True, exist_ok=True)
    notify.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))   # no news toasts over the widgets
    return env


def _api(url: str, token: str, path: str, method: str = "GET"):
    "A call to the server's REST API (no proxy), parsed JSON or None."
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(f"{url}{path}", method=method, headers={"Authorization": f"token {token}"})
    with opener.open(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


def _stop(proc: subprocess.Popen, grace: float = 15) -> None:
    "End the server's process group: SIGTERM (it shuts its kernels down), SIGKILL after `grace` s; a group already gone is fine."
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait(5)


def _end_kernels(root: Path) -> None:
    "SIGKILL any of our notebooks' kernels still alive (their pids are in root/*.pid; checked to be a kernel first)."
    for f in root.glob("*.pid"):
        pid = int(f.read_text())
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ipykernel" in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Lab:
    "A JupyterLab server (own process group) and a headless Chromium driving it."

    def __init__(self, home: Path):
        self.home, self.root = home, home / "notebooks"
        self.root.mkdir()
        self.port, self.token = _free_port(), secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyterlab.log"
        self.proc = self.pw = self.browser = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=_lab_env(self.home), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                _api(self.url, self.token, "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline: raise RuntimeError(f"JupyterLab did not answer in 90 s:\n{self.log_tail()}")
                time.sleep(0.25)
        from playwright.sync_api import sync_playwright
        self.pw = sync_playwright().start()
        self.browser = self.pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def end_kernels(self) -> None:
        "Shut every kernel down through the server (each test's notebook ends its own before the next one starts)."
        for k in _api(self.url, self.token, "/api/kernels") or []:
            with contextlib.suppress(OSError):
                _api(self.url, self.token, f"/api/kernels/{k['id']}", method="DELETE")

    def stop(self) -> None:
        "Close the browser, stop the server by its process group, kill any kernel left; the first error is raised at the end."
        errors = []
        steps = [lambda: self.browser and self.browser.close(), lambda: self.pw and self.pw.stop(),
                 lambda: self.proc and _stop(self.proc), lambda: _end_kernels(self.root)]
        for step in steps:
            try:
                step()
            except Exception as e:   # keep going: the server must be stopped whatever else failed
                errors.append(e)
        if errors: raise errors[0]

    def open(self, name: str):
        "Write notebook `name`, open it in JupyterLab and run all its cells; the page, once its widget has rendered."
        _write_notebook(self.root / f"{name}.ipynb", name, NOTEBOOKS[name])
        page = self.browser.new_page(viewport={"width": 1500, "height": 1100})
        page.errors, page.blocked = [], []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        local = f"127.0.0.1:{self.port}"

        def route(r):
            if r.request.url.split("/")[2] == local: r.continue_()
            else: page.blocked.append(r.request.url); r.abort()
        page.route("**/*", route)
        with page.expect_websocket(lambda ws: "/api/kernels/" in ws.url, timeout=120_000):   # the kernel's channel
            page.goto(f"{self.url}/lab/workspaces/{name}/tree/{name}.ipynb?token={self.token}")   # own workspace: no other tabs
        _run_all(page, name)
        try:
            page.locator(".jp-OutputArea-output button.widget-button").first.wait_for(timeout=RUN_TIMEOUT_MS)
        except Exception:
            _shot(page, f"{name}_not_rendered")
            raise AssertionError(f"the {name} widget did not render; outputs: {_outputs(page)}\n"
                                 f"page errors: {page.errors}\nserver log:\n{self.log_tail()}")
        return page


def _run_all(page, name: str, tries: int = 3) -> None:
    "Run → Run All Cells, once the kernel is idle; again if no cell started (a click before the kernel is connected is lost)."
    for _ in range(tries):
        page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for(timeout=120_000)
        page.locator(".jp-Notebook").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        try:
            page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]")).first.wait_for(timeout=10_000)
            return
        except Exception:
            continue
    _shot(page, f"{name}_not_run")
    raise AssertionError(f"Run → Run All Cells did not start the {name} notebook ({tries} tries); page errors: {page.errors}")


def _shot(page, stage: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"widgets_{stage}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _outputs(page) -> list[str]:
    return page.locator(".jp-OutputArea-output").all_inner_texts()


def _assert_real_controls(page, name: str) -> None:
    "Rendered by the widget manager: controls on the page, no text fallback in any output."
    for text in _outputs(page):
        bad = [t for t in TEXT_FALLBACK if t in text]
        assert not bad, f"the {name} widget rendered as text ({bad}): {text[:300]!r}"
    assert page.locator(".jp-OutputArea-output .jupyter-widgets.widget-hslider, "
                        ".jp-OutputArea-output .jupyter-widgets.widget-dropdown").count() >= 1


def _control(page, kind: str, label: str):
    "The control of class `.widget-<kind>` whose label is exactly `label`."
    return page.locator(f".jp-OutputArea-output .widget-{kind}").filter(
        has=page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$")))


def _readout(page, label: str) -> str:
    return _control(page, "hslider", label).locator(".widget-readout").inner_text().strip()


def _step_slider(page, label: str, steps: int) -> None:
    "Move a slider `steps` steps (negative: to the left) with the keyboard, as a learner can."
    handle = _control(page, "hslider", label).locator(".noUi-handle")
    handle.focus()
    for _ in range(abs(steps)):   # one key at a time, each given time to reach the kernel (slider updates are throttled)
        page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")
        page.wait_for_timeout(300)
    page.wait_for_timeout(500)


def _status(page) -> str:
    return " | ".join(t.strip() for t in page.locator(".jp-OutputArea-output .widget-html-content").all_inner_texts())


def _run_and_wait(page, expect: str, stage: str, images: int = 1) -> str:
    "Click Run, wait until the status line contains `expect` and `images` figures are shown; fail at once on an error."
    page.locator(".jp-OutputArea-output button.widget-button", has_text="Run").click()
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        status = _status(page)
        if "error:" in status: break
        if expect in status:
            figures = page.locator(".widget-output img")
            figures.nth(images - 1).wait_for(timeout=30_000)
            assert figures.count() == images, f"{figures.count()} figures shown, expected {images}"
            page.wait_for_function("() => Array.from(document.querySelectorAll('.widget-output img')).every(i => i.complete)")
            page.wait_for_timeout(500)   # let the figures paint before the screenshot
            _shot(page, stage)
            return status
        time.sleep(0.25)
    _shot(page, f"{stage}_failed")
    raise AssertionError(f"after Run, the status line is {status!r}, expected it to contain {expect!r}; page errors: {page.errors}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _requirements()
    data = Path(os.environ.get("CL_COURSE_DATA") or SHARED_DATA)
    if not (data / "wiki.test.raw").exists():
        pytest.fail(f"No WikiText slice at {data}: set CL_COURSE_DATA to a folder holding wiki.test.raw")
    lab = Lab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        lab.start()
    except BaseException:
        with contextlib.suppress(Exception): lab.stop()   # the start's error is the one to report
        raise
    yield lab
    lab.stop()


@pytest.fixture
def page_of(lab):
    "Opens a notebook's page; closes it and ends its kernel after the test."
    pages = []
    def open_(name):
        pages.append(lab.open(name))
        return pages[-1]
    yield open_
    for p in pages:
        with contextlib.suppress(Exception): p.close()
    lab.end_kernels()


def test_ewc_widget_in_jupyterlab(page_of):
    from cl_course.ewc import DEFAULT_LAMBDA
    from cl_course.ewc_experiments import LAMBDA_CHOICES
    page = page_of("ewc")
    _assert_real_controls(page, "EWC")
    _shot(page, "ewc_rendered")
    assert _readout(page, "λ") == f"{DEFAULT_LAMBDA:g}" == "30"   # the log slider's readout said 31.6
    status = _run_and_wait(page, "done: EWC, λ=30,", "ewc_default_run")   # the kernel ran exactly λ = 30
    first = page.locator(".widget-output img").first.get_attribute("src")
    new = LAMBDA_CHOICES[LAMBDA_CHOICES.index(DEFAULT_LAMBDA) + 2]
    _step_slider(page, "λ", 2)
    assert _readout(page, "λ") == f"{new:g}" == "300"
    status = _run_and_wait(page, f"done: EWC, λ={new:g},", "ewc_lambda_300")
    assert "empirical Fisher" in status
    assert page.locator(".widget-output img").first.get_attribute("src") != first, "the figure was not redrawn"
    assert page.errors == [], page.errors


def test_lora_widget_in_jupyterlab(page_of):
    from cl_course.lora_methods import DEFAULT_ALPHA, DEFAULT_RANK, DEFAULT_TARGETS
    from cl_course.models import SMALL_CONFIGS
    page = page_of("lora")
    _assert_real_controls(page, "LoRA")
    _shot(page, "lora_rendered")
    rank = _control(page, "dropdown", "rank").locator("select")
    assert rank.evaluate("s => s.options[s.selectedIndex].text") == str(DEFAULT_RANK) == "8"
    assert _readout(page, "alpha") == f"{DEFAULT_ALPHA:g}" == "16"
    targets = _control(page, "select-multiple", "targets").locator("select")
    assert targets.evaluate("s => Array.from(s.selectedOptions).map(o => o.text)") == list(DEFAULT_TARGETS)
    rank.select_option(label="2")
    targets.select_option(label=["c_attn", "mlp.c_proj"])
    status = _run_and_wait(page, "done: shared LoRA, r=2, α=16, targets c_attn, mlp.c_proj:", "lora_rank_2")
    c = SMALL_CONFIGS["gpt2-tiny"]   # rank 2 on each block's c_attn (d -> 3d) and mlp.c_proj (4d -> d)
    expected = c.n_layer * 2 * ((c.n_embd + 3 * c.n_embd) + (4 * c.n_embd + c.n_embd))
    assert f"{expected:,} trainable parameters" in status, status
    assert page.locator(".widget-output table").count() == 1
    assert page.errors == [], page.errors


def test_dashboard_in_jupyterlab(page_of):
    from types import SimpleNamespace
    from cl_course.registry import method_params
    page = page_of("dashboard")
    _assert_real_controls(page, "dashboard")
    _shot(page, "dashboard_rendered")
    p = SimpleNamespace(**{k: v for q in method_params().values() for k, v in vars(q).items()})
    assert _readout(page, "EWC λ") == f"{p.ewc_lambda:g}" == "30"
    assert _readout(page, "prompt len") == str(p.prompt_len)
    assert _readout(page, "tasks") == "4"
    quick = _control(page, "checkbox", "quick (CPU-sized)").locator("input")
    if quick.count() == 0: quick = page.locator(".jp-OutputArea-output .widget-checkbox input")
    if not quick.is_checked(): quick.check()   # a GPU machine starts unticked: keep the run CPU-sized
    _control(page, "select-multiple", "methods").locator("select").select_option(label=["ewc"])
    _step_slider(page, "EWC λ", 2)
    _step_slider(page, "tasks", -1)   # 3 tasks: the benchmark notebook's dashboard test pretrains that stream's model
    assert (_readout(page, "EWC λ"), _readout(page, "tasks")) == ("300", "3")
    status = _run_and_wait(page, "done: ewc on 3 tasks (quick); EWC λ=300,", "dashboard_run", images=2)   # matrices, accuracy vs forgetting
    assert f"online EWC γ={p.ewc_gamma:g}" in status and "LoRA rank" not in status, status   # the chosen methods' parameters only
    rows = page.locator(".widget-output table tbody th").all_inner_texts()
    assert [r.strip() for r in rows] == ["ewc"], rows
    assert page.errors == [], page.errors

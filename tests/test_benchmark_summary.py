"""benchmarks/summarize.py: results/SUMMARY.md is what the committed records make, a changed record changes it, and
benchmarks/README.md types no measured number (it points to SUMMARY.md instead)."""
import importlib.util
import json
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
spec = importlib.util.spec_from_file_location("summarize", REPO / "benchmarks" / "summarize.py")
summarize = importlib.util.module_from_spec(spec); spec.loader.exec_module(summarize)
EWC_ROW = "| EWC step / naive step (`ewc_over_naive_step`) |"


def ewc_step_cell(text: str) -> str:
    "The value cell of the EWC-step row in the section of ewc_overhead.json."
    section = text.split("## `ewc_overhead.json`", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(EWC_ROW)]
    assert len(rows) == 1, rows
    return rows[0][len(EWC_ROW):].split("|")[0].strip().strip("*")


def test_the_committed_summary_is_what_the_records_make(capsys):
    assert summarize.main(["--check"]) == 0, capsys.readouterr().out


def test_a_changed_record_changes_the_summary(tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    path = results / "ewc_overhead.json"
    rec = json.loads(path.read_text())
    rec["ewc_over_naive_step"] = 1.777
    path.write_text(json.dumps(rec, indent=1))
    text = summarize.summarize(results)
    assert text != (RESULTS / "SUMMARY.md").read_text(encoding="utf-8")
    assert ewc_step_cell(text) == "1.777"
    # the copied SUMMARY.md is now stale: --check says so in one line; writing it makes --check pass
    assert summarize.main(["--results", str(results), "--check"]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "SUMMARY.md" in out
    assert summarize.main(["--results", str(results), "--out", str(tmp_path / "S.md")]) == 0
    assert (tmp_path / "S.md").read_text(encoding="utf-8") == text
    assert summarize.main(["--results", str(results), "--out", str(tmp_path / "S.md"), "--check"]) == 0


def test_the_ewc_step_ratio_is_the_records():
    rec = json.loads((RESULTS / "ewc_overhead.json").read_text())   # read again, apart from the script
    text = (RESULTS / "SUMMARY.md").read_text(encoding="utf-8")
    assert ewc_step_cell(text) == summarize.r3(rec["ewc_over_naive_step"]) == f"{rec['ewc_over_naive_step']:.3f}"


def test_a_record_missing_keys_is_left_out_not_a_crash(tmp_path):
    (tmp_path / "gpu").mkdir()
    rec = json.loads((RESULTS / "ewc_overhead.json").read_text())
    for k in [k for k in rec if k.startswith("ewc_over_naive_step_") or k.startswith("ewc_autograd")] + ["exact", "step_processes"]:
        rec.pop(k, None)
    (tmp_path / "ewc_overhead.json").write_text(json.dumps(rec))
    (tmp_path / "gpu" / "ewc_overhead_small.json").write_text(json.dumps({"fisher": {}}))
    text = summarize.summarize(tmp_path)
    assert ewc_step_cell(text) == summarize.r3(rec["ewc_over_naive_step"])
    assert "Exact Fisher" not in text and "Not summarised" in text


def test_the_readme_types_no_measured_number_and_its_links_resolve():
    readme = (REPO / "benchmarks" / "README.md").read_text()
    decimals = re.findall(r"(?<![\w.])\d[\d,]*\.\d+(?![\d+])", readme)
    assert not decimals, f"benchmarks/README.md types measured numbers {decimals}: point to results/SUMMARY.md instead"
    summary = (RESULTS / "SUMMARY.md").read_text(encoding="utf-8")
    anchors = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", summary, re.M)}
    links = re.findall(r"results/SUMMARY\.md#([\w-]+)", readme)
    assert links and not set(links) - anchors, set(links) - anchors

"""benchmarks/same_results.py: the check that a refactor kept `cl-course run`'s results bit for bit, timings aside."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("same_results", REPO / "benchmarks" / "same_results.py")
same_results = importlib.util.module_from_spec(spec); spec.loader.exec_module(same_results)

HEAD = "method,seed,final_ppl,train_seconds,tokens_per_second\n"


def folder(tmp_path: Path, name: str, rows: str) -> Path:
    d = tmp_path / name; d.mkdir(); (d / "results.csv").write_text(HEAD + rows); return d


def test_timings_may_differ_results_may_not(tmp_path, capsys):
    a = folder(tmp_path, "a", "naive,0,105.91843033977935,26.1,19209.5\n")
    assert same_results.main([a, folder(tmp_path, "b", "naive,0,105.91843033977935,39.0,12001.2\n")]) == 0
    assert "identical" in capsys.readouterr().out
    # the last bit of a float is a different result
    assert same_results.main([a, folder(tmp_path, "c", "naive,0,105.91843033977937,26.1,19209.5\n")]) == 1
    assert "DIFFERENT in final_ppl" in capsys.readouterr().out
    assert same_results.main([a, folder(tmp_path, "d", "naive,0,105.91843033977935,26.1,19209.5\nnaive,1,1.0,1,1\n")]) == 1

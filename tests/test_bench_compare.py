"""benchmarks/compare.py matches the rows of two runs and prints both timings."""
import importlib.util
import io
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def _compare_module():
    spec = importlib.util.spec_from_file_location("bench_compare", os.path.join(HERE, "..", "benchmarks", "compare.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compare_matches_rows_and_reports_ratio(tmp_path):
    rows_a = [dict(case="a 3x3", dtype="float32", threads=1, ms=2.0, ratio=1.5),
              dict(case="a 3x3", dtype="float32", threads=2, ms=1.0, ratio=1.4),
              dict(case="only in A", dtype="float64", threads=1, ms=9.0)]
    rows_b = [dict(case="a 3x3", dtype="float32", threads=2, ms=0.5, ratio=2.8),
              dict(case="a 3x3", dtype="float32", threads=1, ms=3.0, ratio=1.0)]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"meta": {"cpu": "CPU-A", "simd variant": "avx2"}, "rows": rows_a}))
    b.write_text(json.dumps({"meta": {"cpu": "CPU-B", "simd variant": "avx512"}, "rows": rows_b}))
    out = io.StringIO()
    assert _compare_module().compare(str(a), str(b), out=out) == 2
    text = out.getvalue()
    assert "CPU-A" in text and "CPU-B" in text and "avx512" in text
    assert "ms 2->3 (B/A 1.50)" in text and "ms 1->0.5 (B/A 0.50)" in text
    assert "2 rows matched (3 in A, 2 in B)" in text


def test_compare_matches_rows_whose_plans_differ(tmp_path):
    # the plan is an outcome of the run, not part of the case: a row whose plan changed
    # between the runs is still matched, and the change is printed
    rows_a = [dict(layer="b", grad="input", threads=1, plan="gemm", pyconv_ms=4.0),
              dict(layer="c", grad="input", threads=1, plan="panel", pyconv_ms=2.0)]
    rows_b = [dict(layer="b", grad="input", threads=1, plan="phases", pyconv_ms=3.0),
              dict(layer="c", grad="input", threads=1, plan="panel", pyconv_ms=2.0)]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"meta": {}, "rows": rows_a}))
    b.write_text(json.dumps({"meta": {}, "rows": rows_b}))
    out = io.StringIO()
    assert _compare_module().compare(str(a), str(b), out=out) == 2
    lines = out.getvalue().splitlines()
    assert any(line.startswith("b  input  1: plan gemm->phases;") and "B/A 0.75" in line for line in lines)
    assert any(line.startswith("c  input  1: plan panel;") for line in lines)

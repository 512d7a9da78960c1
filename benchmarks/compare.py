"""Print two benchmark runs side by side: ``python benchmarks/compare.py A.json B.json``.

Rows are matched on every field that names a case (the strings and integers: case,
function, dtype, threads, ...; not the plan that ran, which may differ between the runs);
each timing field (``*ms``) and ratio of both runs is printed with B/A for the times
(< 1: B is faster), and the plans when they differ.  The two runs' machines (CPU, SIMD
variant, compiler, BLAS) are printed first: compare runs from one machine and sitting
before drawing conclusions.
"""
import argparse
import json
import sys


def _load(path):
    with open(path) as f:
        data = json.load(f)
    return data.get("meta", {}), data.get("rows", [])


# string fields that report an outcome, not name a case
OUTCOMES = ("plan", "error")


def _key(row):
    return tuple((k, v) for k, v in row.items()
                 if k not in OUTCOMES and (isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))))


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


def compare(a_path, b_path, out=sys.stdout):
    meta_a, rows_a = _load(a_path)
    meta_b, rows_b = _load(b_path)
    for k in ("date", "cpu", "simd variant", "compiler", "blas", "malloc", "pyconv", "torch"):
        if k in meta_a or k in meta_b:
            print(f"{k:14s} A: {meta_a.get(k, '?')}\n{'':14s} B: {meta_b.get(k, '?')}", file=out)
    b_by_key = {_key(r): r for r in rows_b}
    matched = 0
    for ra in rows_a:
        rb = b_by_key.get(_key(ra))
        if rb is None:
            continue
        matched += 1
        name = "  ".join(f"{v}" for _, v in _key(ra))
        cells = []
        if ra.get("plan") != rb.get("plan"):
            cells.append(f"plan {ra.get('plan', '?')}->{rb.get('plan', '?')}")
        elif "plan" in ra:
            cells.append(f"plan {ra['plan']}")
        for f, va in ra.items():
            vb = rb.get(f)
            if isinstance(va, float) and isinstance(vb, float):
                if f.endswith("ms"):
                    cells.append(f"{f} {_fmt(va)}->{_fmt(vb)} (B/A {vb / va:.2f})" if va else f"{f} {_fmt(vb)}")
                elif f in ("ratio", "gflops", "vs_1t") or f.startswith("ratio"):
                    cells.append(f"{f} {_fmt(va)}->{_fmt(vb)}")
        print(f"{name}: " + "; ".join(cells), file=out)
    print(f"{matched} rows matched ({len(rows_a)} in A, {len(rows_b)} in B)", file=out)
    return matched


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a")
    p.add_argument("b")
    args = p.parse_args(argv)
    compare(args.a, args.b)


if __name__ == "__main__":
    main()

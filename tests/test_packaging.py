"""Packaging: the `test` extra names every third-party package the tests, examples and
tour import (PyTorch aside, which README.md adds by hand), and the distribution ships
its license."""
import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
tomllib = pytest.importorskip("tomllib", reason="tomllib is in Python >= 3.11")


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _requirement_names(reqs):
    import re
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower().replace("_", "-") for r in reqs}


def _imported_top_level(paths):
    names = set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value.split(".")[0])
    return names


def test_test_extra_covers_what_the_tests_import():
    from importlib.metadata import packages_distributions

    files = [os.path.join(d, f) for d in ("tests", "examples") for f in os.listdir(os.path.join(ROOT, d))
             if f.endswith(".py")]
    files.append(os.path.join(ROOT, "pyconv", "__main__.py"))
    local = {os.path.splitext(os.path.basename(f))[0] for f in files} | {"pyconv", "conftest", "tests"}
    third_party = {m for m in _imported_top_level(files)
                   if m not in sys.stdlib_module_names and m not in local and m != "torch"}
    meta = _pyproject()["project"]
    have = _requirement_names(meta["dependencies"] + meta["optional-dependencies"]["test"])
    dists = packages_distributions()
    missing = []
    for mod in sorted(third_party):
        names = {d.lower().replace("_", "-") for d in dists.get(mod, [mod])}
        if not names & have:
            missing.append(f"{mod} ({', '.join(sorted(names))})")
    assert not missing, f"add to the test extra in pyproject.toml: {missing}"
    assert "torch" not in have        # PyTorch stays out: README.md says how to add it


def test_license_is_declared_and_shipped():
    meta = _pyproject()["project"]
    assert meta["license"] == "BSD-3-Clause" and meta["license-files"] == ["LICENSE"]
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("BSD 3-Clause License") and "the pyconv developers" in text
    # a distribution name of our own: "pyconv" on the package index is another project
    assert meta["name"] != "pyconv"


def test_wheel_takes_headers_and_no_generated_sources():
    tool = _pyproject()["tool"]["setuptools"]
    assert "*.pxd" in tool["package-data"]["pyconv._kernels"]
    assert {"*.c", "*.pyx"} <= set(tool["exclude-package-data"]["pyconv._kernels"])
    assert "guide.md" in tool["package-data"]["pyconv"]

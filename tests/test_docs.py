"""Documentation: every public module opens with a map of what it holds, and every
public function documents its own parameters, returns and an example (numpydoc)."""
import importlib
import inspect
import pkgutil
import re

import pytest

import pyconv

# every public module of the package, so modules added later are checked too
MODULES = ["pyconv"] + sorted(f"pyconv.{m.name}" for m in pkgutil.iter_modules(pyconv.__path__)
                              if not m.name.startswith("_"))
MAP_SECTIONS = ("Kinds of convolution", "Contents")


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError as e:            # a module built on an optional package (dask, ...)
        pytest.skip(f"{name} needs a package that is not installed: {e}")


def _sections(doc):
    """numpydoc sections: {title: body lines}, in order."""
    lines = doc.splitlines()
    out, title = {}, None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip()) and line.strip() \
                and len(lines[i + 1].strip()) >= len(line.strip()) - 1:
            title = line.strip()
            out[title] = []
        elif title is not None and not re.fullmatch(r"-{3,}", line.strip()):
            out[title].append(line)
    return out


def _documented_params(lines):
    names = set()
    for line in lines:
        if line and not line[0].isspace():
            head = line.split(" : ")[0]
            names.update(n.strip() for n in head.split(","))
    return names


def _public_functions(mod):
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield name, obj


def test_every_public_module_is_listed():
    assert {"pyconv.signal", "pyconv.nn", "pyconv.grad", "pyconv.arithmetic"} <= set(MODULES)
    assert "pyconv.__main__" not in MODULES


@pytest.mark.parametrize("modname", MODULES)
def test_module_docstring_opens_with_a_map(modname):
    mod = _import(modname)
    doc = inspect.getdoc(mod)
    sections = list(_sections(doc))
    maps = [s for s in sections if s.startswith(MAP_SECTIONS)]
    assert maps, f"{modname}'s docstring has no '{MAP_SECTIONS[0]}' (or 'Contents') section"
    # the map comes first (after an optional "Where to start")
    assert sections.index(maps[0]) <= (1 if sections[0] == "Where to start" else 0), sections
    body = "\n".join(_sections(doc)[maps[0]])
    if modname == "pyconv":     # the top level: its own functions may be named after the map
        body = doc
    missing = [n for n, _ in _public_functions(mod) if not re.search(rf"\b{n}\b", body)]
    assert not missing, f"{modname}'s map does not say where these are: {missing}"


def _cases():
    for modname in MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        for name, fn in _public_functions(mod):
            if modname == "pyconv" and name in pyconv.signal.__all__:
                continue        # re-exported, and checked, from pyconv.signal
            yield pytest.param(fn, id=f"{modname}.{name}")


@pytest.mark.parametrize("fn", list(_cases()))
def test_function_docstring_lists_its_own_parameters_returns_and_an_example(fn):
    doc = inspect.getdoc(fn) or ""
    sections = _sections(doc)
    params = [p.name if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) else
              ("*" if p.kind == p.VAR_POSITIONAL else "**") + p.name
              for p in inspect.signature(fn).parameters.values()]
    for title in ("Parameters", "Returns", "Examples") if params else ("Returns", "Examples"):
        assert title in sections, f"{fn.__qualname__}: no {title} section"
    assert ">>>" in "\n".join(sections["Examples"])
    assert not re.search(r"arguments as\b|see :func:`\w+` for the arguments", doc, flags=re.I), \
        f"{fn.__qualname__} refers to another function for its arguments"
    documented = _documented_params(sections.get("Parameters", []))
    missing = [p for p in params if p not in documented]
    assert not missing, f"{fn.__qualname__}: parameters not documented: {missing}"
    extra = documented - set(params)
    assert not extra, f"{fn.__qualname__}: documents parameters it does not have: {extra}"
    assert any(line.strip() for line in sections["Returns"])


def test_the_checks_catch_a_bad_docstring():
    def bad(a, b=1):
        """Do something; arguments as :func:`conv`.

        Parameters
        ----------
        a : int

        Examples
        --------
        >>> bad(1)
        """

    with pytest.raises(AssertionError, match="no Returns"):
        test_function_docstring_lists_its_own_parameters_returns_and_an_example(bad)
    bad.__doc__ = bad.__doc__.replace("Examples", "Returns\n        -------\n        int\n\n        Examples")
    with pytest.raises(AssertionError, match="refers to another function"):
        test_function_docstring_lists_its_own_parameters_returns_and_an_example(bad)
    bad.__doc__ = bad.__doc__.replace("; arguments as :func:`conv`", "")
    with pytest.raises(AssertionError, match=r"not documented: \['b'\]"):
        test_function_docstring_lists_its_own_parameters_returns_and_an_example(bad)

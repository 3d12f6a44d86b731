"""The benchmarks keep up with the code they measure, read without running them (a run
takes minutes): every `args.NAME` a benchmark reads is a flag its parser declares (a lost
`--ema` once stopped a two-hour run at its first fine-tuning), every name it imports from
kssl exists, and every keyword it passes to a kssl callable is one that callable takes."""

import ast
import importlib
import inspect
import pathlib

import pytest

BENCHMARKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def declared_flags(tree) -> set:
    """The `dest` of every `add_argument` call: its `dest=`, else its first long flag."""
    dests = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            keywords = {k.arg: k.value for k in node.keywords}
            if "dest" in keywords:
                dests.add(keywords["dest"].value)
                continue
            names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            long = [n for n in names if n.startswith("--")] or names
            dests.add(long[0].lstrip("-").replace("-", "_"))
    return dests


def read_flags(tree) -> set:
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "args"
    }


def kssl_imports(tree) -> dict:
    """`{local name: (module, name)}` of every `from kssl... import name` in the file."""
    return {
        alias.asname or alias.name: (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kssl"
        for alias in node.names
    }


def test_the_checks_find_a_flag_read_but_not_declared():
    tree = ast.parse("p.add_argument('--semi-passes', type=float)\np.add_argument('-x', dest='y')\nargs.ema\n")
    assert declared_flags(tree) == {"semi_passes", "y"} and read_flags(tree) - declared_flags(tree) == {"ema"}


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_a_benchmark_reads_only_flags_it_declares_and_calls_kssl_as_it_is(path):
    tree = ast.parse(path.read_text())
    declared = declared_flags(tree)
    for node in ast.walk(tree):  # flags a sibling benchmark adds (`add_common_arguments`)
        if isinstance(node, ast.ImportFrom) and (path.parent / f"{node.module}.py").is_file():
            declared |= declared_flags(ast.parse((path.parent / f"{node.module}.py").read_text()))
    if declared:
        assert read_flags(tree) <= declared, f"{path.name} reads undeclared flags"
    imported = {}
    for local, (module, name) in kssl_imports(tree).items():
        owner = importlib.import_module(module)
        if not hasattr(owner, name):
            importlib.import_module(f"{module}.{name}")  # a submodule; else the error names it
        else:
            imported[local] = getattr(owner, name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and callable(imported.get(node.func.id)):
            function = imported[node.func.id]
            try:
                parameters = inspect.signature(function).parameters
            except (TypeError, ValueError):  # a builtin without a signature
                continue
            if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
                continue
            unknown = {k.arg for k in node.keywords if k.arg is not None} - set(parameters)
            assert not unknown, f"{path.name}:{node.lineno}: {node.func.id}() takes no {sorted(unknown)}"

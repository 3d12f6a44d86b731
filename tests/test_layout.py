"""The package's shape: no import cycle among kssl's modules, counting the imports inside
functions (each one a cycle Python only hides until the function runs)."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "kssl"


def module_names():
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph():
    """`{module: {kssl modules it imports anywhere in its file}}`; `from a import b` counts
    as importing `a.b` when that is a module, else `a`."""
    modules = module_names()

    def owner(name):
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
        graph[name] = {owner(t) for t in targets if t.split(".")[0] == "kssl"} - {name}
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while not component or node not in component:
                component.add(stack.pop())
            on_stack.difference_update(component)
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    assert {"kssl.app.cli", "kssl.encoders.loading", "kssl.data.tfds_stream"} <= set(graph)
    assert "kssl.encoders.loading" in graph["kssl.encoders"]  # imports inside functions count
    assert cycles(graph) == []


def test_the_old_module_name_of_the_jobs_still_imports_with_a_warning():
    import importlib
    import sys
    import warnings

    from kssl.app import config, jobs

    sys.modules.pop("kssl.runs", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = importlib.import_module("kssl.runs")
    assert runs.run is jobs.run and runs.RunConfig is config.RunConfig
    assert any("kssl.runs is kssl.app now" in str(w.message) for w in caught)


def test_the_old_names_of_the_modes_give_the_modes_with_a_warning():
    import kssl.finetuning
    import kssl.finetuning.base

    with pytest.warns(DeprecationWarning, match="kssl.finetuning.STRATEGIES is kssl.finetuning.MODES now"):
        assert kssl.finetuning.STRATEGIES is kssl.finetuning.MODES
    with pytest.warns(DeprecationWarning, match="FineTuningStrategy is kssl.finetuning.base.FineTuningMode"):
        assert kssl.finetuning.base.FineTuningStrategy is kssl.finetuning.base.FineTuningMode
    with pytest.raises(AttributeError):
        getattr(kssl.finetuning, "NO_SUCH_NAME")  # noqa: B009


def test_no_module_is_over_500_lines_and_the_top_level_holds_the_entry_points_alone():
    long = {path.name: n for path in PACKAGE.rglob("*.py") if (n := len(path.read_text().splitlines())) > 500}
    assert long == {}
    # The package, the command, its errors and defaults, the methods' registry and the
    # registration of kssl's Keras classes (and the old `kssl.runs`); the rest by role.
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == [
        "__init__.py", "__main__.py", "defaults.py", "errors.py", "methods.py", "registration.py", "registry.py",
        "runs.py",
    ]  # fmt: skip


def test_no_trained_artifact_or_data_is_committed():
    """Models, weights, exports and arrays stay out of git wherever a run or a docs build writes them."""
    import shutil
    import subprocess

    root = PACKAGE.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    suffixes = (".keras", ".pb", ".h5", ".tflite", ".onnx", ".npz", ".parquet", ".index", ".ckpt")
    committed = [path for path in tracked.splitlines() if path.endswith(suffixes) or ".data-0" in path]
    assert committed == []

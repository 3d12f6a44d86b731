"""The docs as a reader uses them: the site builds strictly (a broken link, anchor, API
reference or generated table fails), every Python block of the README and the pages runs,
every `kssl` command they show parses, and what the registries hold is on the pages."""

import pathlib
import re
import shlex

import pytest

ROOT = pathlib.Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A block preceded by this comment is not run; the comment says why.
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")


def blocks(path, language):
    """`(code, reason not run or None)` of each fenced `language` block of a Markdown file."""
    lines, found = path.read_text().splitlines(), []
    for index, line in enumerate(lines):
        if line.strip() == f"```{language}":
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            before = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            reason = NOT_RUN.search(before)
            found.append(("\n".join(lines[index + 1 : end]), reason and reason[1]))
    return found


def test_the_site_builds_strictly_offline_with_its_generated_tables(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra (mkdocs-material, mkdocstrings) is not installed")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(tmp_path / "site"), strict=True)
    build(config)  # raises on any warning: strict
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "--semi-passes" in cli and "data-service worker" in cli
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert 'id="kssl.training.pretraining.pretrain"' in api and "Examples" in api
    home = (tmp_path / "site" / "index.html").read_text()
    assert "Quickstart in Python" in home and 'href="few-labels/"' in home  # the README, its links the site's
    assert "view_pairs" in (tmp_path / "site" / "notebooks" / "01_pretraining" / "index.html").read_text()


@pytest.mark.parametrize("path", [p for p in PAGES if any(not reason for _, reason in blocks(p, "python"))],
                         ids=lambda p: p.name)  # fmt: skip
def test_every_python_block_runs_in_order(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # what a block writes (saved_models/...) lands here
    namespace = {"__name__": "__docs__"}
    for code, reason in blocks(path, "python"):
        if not reason:
            exec(compile(code, f"{path.name} block", "exec"), namespace)  # noqa: S102 - the docs' own code


def shell_commands(code: str) -> list:
    """The `kssl ...` command lines of a shell block: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.lstrip().startswith("kssl ")]


def test_every_kssl_command_in_the_docs_parses():
    from kssl.app.cli import build_parser

    commands = [command for path in PAGES for code, _ in blocks(path, "bash") for command in shell_commands(code)]
    indented = "\n".join(line[4:] for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("    "))
    commands += shell_commands(indented)  # the README's blocks are indented (GitHub shows both alike)
    assert len(commands) > 30
    for command in commands:
        try:
            build_parser().parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"the docs show a command kssl refuses: {shlex.join(command)}")


def test_the_pages_name_every_registered_method_mode_semi_supervised_method_and_command():
    from kssl.app.reference import commands
    from kssl.finetuning import MODES
    from kssl.methods import METHODS
    from kssl.semi_supervised import SEMI_SUPERVISED

    pages = {path.name: path.read_text() for path in PAGES}
    for page, names in [("methods.md", METHODS), ("fine-tuning.md", MODES), ("few-labels.md", SEMI_SUPERVISED)]:
        missing = [name for name in names if f"`{name}`" not in pages[page] and f"**{name}**" not in pages[page]]
        assert not missing, f"docs/{page} says nothing of {missing} beyond the generated table"
    listed = {command.split()[0] for command in commands()}
    shown = set(re.findall(r"^    kssl ([\w-]+)", pages["README.md"], re.M))
    assert listed <= shown, f"the README's list of commands lacks {sorted(listed - shown)}"


def typed_table(page: str, header: str) -> dict:
    """`{name: row's cells}` of the table whose header row starts with `header`, by the first
    column's backticked name."""
    lines = (ROOT / "docs" / page).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header}"))
    rows = []
    for line in lines[start + 2 :]:  # after the header and its rule, until the table ends
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1:-1])
    return {re.search(r"`([\w-]+)`", cells[0])[1]: cells for cells in rows}


def test_the_typed_tables_of_methods_and_modes_name_each_registered_one_and_its_class():
    from kssl.finetuning import MODES
    from kssl.methods import METHODS

    methods = typed_table("methods.md", "`--method`")
    assert set(methods) == set(METHODS), "docs/methods.md's table and kssl.methods.METHODS disagree"
    for name, cells in methods.items():
        assert re.search(r"`([\w.]+)`", cells[1])[1].rpartition(".")[2] == METHODS[name].target.rpartition(":")[2]
    assert set(typed_table("fine-tuning.md", "mode |")) == set(MODES), "docs/fine-tuning.md's table and MODES disagree"

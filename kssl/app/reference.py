"""The documentation's reference tables, generated from the code they describe: every
command and its flags (from the command line's own parser) and every registered method,
mode and semi-supervised method with its options (from the registries). The docs site's
hook (`docs/hooks.py`) puts them where a page says `<!-- kssl:NAME -->`, so they cannot
drift from the code. Imports no TensorFlow.

Examples:
    >>> row = registry_table("modes").splitlines()[3]
    >>> row.startswith("| `partial` | the head and the encoder's last stage(s) | `trainable_stages=1`: how many")
    True
    >>> "| `--labels` |" in flags_table("finetune")
    True
"""

from __future__ import annotations

import argparse
import importlib


def _escape(text: str) -> str:
    """Help text as one Markdown table cell: `|` escaped, and `<`/`>` too, so that a help's
    `root/<class>/<image>` is shown rather than taken for HTML tags."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _registry(name: str) -> dict:
    module, attribute = REGISTRIES[name]
    return getattr(importlib.import_module(module), attribute)


# The registries the docs show: a table name -> (module, attribute).
REGISTRIES = {
    "methods": ("kssl.methods", "METHODS"),
    "modes": ("kssl.finetuning", "MODES"),
    "semi-supervised": ("kssl.semi_supervised", "SEMI_SUPERVISED"),
}


def registry_table(name: str) -> str:
    """A Markdown table of one registry (`REGISTRIES`): each entry, its summary and its options
    as `key=default` with their help."""
    rows = ["| name | what it does | options (default) |", "| --- | --- | --- |"]
    for key, entry in _registry(name).items():
        described = "<br>".join(f"`{option}={value.default}`: {_escape(value.help)}"
                                for option, value in entry.options.items())  # fmt: skip
        rows.append(f"| `{key}` | {_escape(entry.summary)} | {described} |")
    return "\n".join(rows)


def _subcommands(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:  # argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command_parser(command: str) -> argparse.ArgumentParser:
    from kssl.app.cli import build_parser

    parser = build_parser()
    for word in command.split():
        parser = _subcommands(parser)[word]
    return parser


def python_keywords(setting: str) -> tuple:
    """Where the Python API takes a `RunConfig` setting, as `("pretrain", "epochs")` pairs of a
    public `kssl` function and its keyword (the setting's declared `python`).

    Examples:
        >>> python_keywords("finetune_epochs"), python_keywords("out")
        ((('finetune', 'epochs'),), ())
    """
    from kssl.app.settings import RunConfig

    field = RunConfig.__dataclass_fields__.get(setting)
    declared = field.metadata.get("python", ()) if field is not None else ()
    return tuple(tuple(entry.rstrip(")").split("(")) for entry in declared)


def flags_table(command: str) -> str:
    """A Markdown table of a command's flags (`"run"`, `"data-service worker"`, ...): each as
    `--help` lists it, with its choices and help (where the default is, the help says it), and,
    for a setting the Python API shares (`python_keywords`), the keyword that takes it."""
    parser = _command_parser(command)
    rows = ["| flag | value | what it does |", "| --- | --- | --- |"]
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or "-h" in action.option_strings:
            continue
        flags = ", ".join(f"`{flag}`" for flag in action.option_strings)
        if action.choices:
            value = " \\| ".join(f"`{choice}`" for choice in action.choices)
        elif action.nargs == 0:
            value = ""
        else:
            value = f"`{action.metavar or action.dest.upper()}`"
        help_text = _escape((action.help or "") % {"default": action.default, "prog": parser.prog})
        python = ", ".join(f"`kssl.{function}({keyword}=)`" for function, keyword in python_keywords(action.dest))
        rows.append(f"| {flags} | {value} | {help_text}{f'<br>Python: {python}' if python else ''} |")
    return "\n".join(rows)


def commands() -> list:
    """Every command and subcommand of `kssl`, as `flags_table` takes them."""
    from kssl.app.cli import build_parser

    names = []
    for name, parser in _subcommands(build_parser()).items():
        inner = _subcommands(parser)
        names += [f"{name} {role}" for role in inner] if inner else [name]
    return names


def commands_reference() -> str:
    """Every command's one-line help and its flags' table, as Markdown sections."""
    from kssl.app.cli import build_parser

    helps = {}
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
    sections = []
    for command in commands():
        summary = helps.get(command.split()[0], "")
        sections += [f"## kssl {command}", "", _escape(summary), "", flags_table(command), ""]
    return "\n".join(sections)


# The API page's sections: a public name's defining module's prefix -> the section's title.
API_SECTIONS = {
    "kssl.app": "Runs: `run`, the `kssl run` command's path, and its settings (`RunConfig`)",
    "kssl.training": "Training: `pretrain`, `finetune`, recipes, callbacks",
    "kssl.models": "Pretraining methods and the classifier",
    "kssl.data": "Data: sources, views, batches, subsets",
    "kssl.encoders": "Encoders",
    "kssl.layers": "Layers",
    "kssl.losses": "Losses",
    "kssl.finetuning": "Fine-tuning modes and adversarial training",
    "kssl.evaluation": "Evaluation, label selection and similarity search",
    "kssl.outputs": "Export and logs",
    "kssl.methods": "Registries",
    "kssl.runtime": "Runtime",
    "kssl.errors": "Errors",
}


def api_reference() -> str:
    """mkdocstrings' `::: module.name` for every public name of `kssl` (its `__all__`), under
    the section of the module that defines it (`API_SECTIONS`). Imports kssl's modules."""
    import kssl

    sections = {title: [] for title in API_SECTIONS.values()}
    for name in kssl.__all__:
        value = getattr(kssl, name)
        module = getattr(value, "__module__", None) or kssl._EXPORTS[name]
        if not callable(value) or isinstance(value, dict):  # a registry: shown as tables on the pages
            continue
        prefix = next(prefix for prefix in API_SECTIONS if module.startswith(prefix))
        sections[API_SECTIONS[prefix]].append(f"::: {module}.{value.__qualname__}")
    lines = []
    for title, entries in sections.items():
        if entries:
            lines += [f"## {title}", "", *(line for entry in sorted(entries) for line in (entry, "")), ""]
    return "\n".join(lines)


def expand(markdown: str) -> str:
    """`markdown` with each line `<!-- kssl:NAME -->` replaced by its table: a registry's name
    (`REGISTRIES`), `api` (the Python API), `commands` (every command's flags) or
    `flags:COMMAND` (one command's)."""
    import re

    def table(match):
        name = match.group(1)
        if name == "commands":
            return commands_reference()
        if name == "api":
            return api_reference()
        if name.startswith("flags:"):
            return flags_table(name.removeprefix("flags:"))
        if name in REGISTRIES:
            return registry_table(name)
        expected = ["api", "commands", "flags:COMMAND", *REGISTRIES]
        raise ValueError(f"unknown docs table {name!r}: expected one of {expected}")

    return re.sub(r"^<!-- kssl:([\w:\- ]+?) -->$", table, markdown, flags=re.M)  # a marker on a line of its own

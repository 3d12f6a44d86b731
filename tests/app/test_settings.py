"""The table of settings: each `RunConfig` field declares its flag, and the command reads it."""

import argparse
import dataclasses
import re

import pytest

from kssl.app import cli, config, settings
from kssl.app.settings import RunConfig, add_settings, setting


def flag_fields():
    return [field for field in dataclasses.fields(RunConfig) if field.metadata["flags"]]


def test_every_declared_flag_reaches_its_field_through_the_commands():
    parser = cli.build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    dests = {}
    for name in ("run", "evaluate"):
        for action in commands.choices[name]._actions:
            for flag in action.option_strings:
                dests[flag] = action.dest
    for field in flag_fields():
        for flag in field.metadata["flags"]:
            assert dests.get(flag) == field.name, (flag, field.name)


def test_the_settings_that_may_differ_on_resume_are_the_ones_that_leave_results_alone():
    assert set(settings.not_result_fields()) == {
        "out", "overwrite", "checkpoint_every", "model_name", "version", "augment_on_device", "knn_monitor",
        "tensorboard", "export_formats", "data_service", "data_service_timeout",
    }  # fmt: skip


def test_a_default_said_in_the_help_is_the_fields_default():
    said = 0
    for field in flag_fields():
        match = re.search(r"\(default:? ([0-9][0-9.,]*)[;),]", field.metadata["help"])
        if match is None:
            continue
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        default = ",".join(map(str, default)) if isinstance(default, list) else default
        assert match.group(1).rstrip(",") == f"{default:g}" if isinstance(default, float) else str(default), field.name
        said += 1
    assert said >= 8


def test_a_new_setting_is_one_field(monkeypatch, capsys):
    """Declared once, it is a flag of the commands of its group, in --help, and a field of the run's config."""
    extended = dataclasses.make_dataclass(
        "RunConfig",
        [("shine", float, setting(0.5, "--shine", group="performance", type=float, help="how much to shine"))],
        bases=(RunConfig,),
    )
    monkeypatch.setattr(settings, "RunConfig", extended)
    monkeypatch.setattr(config, "RunConfig", extended)
    parser = cli.build_parser()

    def run_config(argv):
        args = vars(parser.parse_args(argv))
        args.pop("command"), args.pop("verbose", None)
        return cli._run_config(args)

    made = run_config(["pretrain", "--shine", "2"])
    assert made.shine == 2.0 and "shine" in made.result_fields()
    assert run_config(["run"]).shine == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(["finetune", "--help"])
    assert re.search(r"--shine SHINE\s+how much to shine", capsys.readouterr().out)


def test_exclusive_flags_and_yes_or_no_pairs_refuse_both():
    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    add_settings(parser, "data", "pretraining")
    for both in (["--epochs", "1", "--budget", "2"], ["--stream", "--in-memory"]):
        with pytest.raises(SystemExit):
            parser.parse_args(both)
    assert vars(parser.parse_args(["--in-memory"])) == {"stream": False}
    assert vars(parser.parse_args([])) == {}  # unset: RunConfig's default (or, under --config, the recorded value)


# The settings whose Python keyword has another default, on purpose.
DIFFERENT_PYTHON_DEFAULTS = {
    # A Python caller builds an encoder at its published width; the command defaults to a
    # quarter of it, which trains in minutes on a CPU.
    ("width", "build_encoder", "width"),
    # The command's --adversarial defaults to none; AdversarialTraining exists to attack.
    ("adversarial", "AdversarialTraining", "attack"),
}


def test_every_python_keyword_a_setting_names_exists_and_has_its_default():
    import inspect

    import kssl
    from kssl.app.reference import python_keywords

    compared = 0
    for field in dataclasses.fields(RunConfig):
        for function, keyword in python_keywords(field.name):
            parameters = inspect.signature(getattr(kssl, function)).parameters
            assert keyword in parameters, f"{field.name}: kssl.{function} has no keyword {keyword!r}"
            api_default, default = parameters[keyword].default, settings.run_default(field.name)
            comparable = isinstance(api_default, (int, float, str)) and isinstance(default, type(api_default))
            if (field.name, function, keyword) in DIFFERENT_PYTHON_DEFAULTS:
                assert comparable and api_default != default, (field.name, "now agrees: take it off the list")
            elif comparable:
                assert api_default == default, (
                    f"--{field.name}: {default!r}, but kssl.{function}({keyword}={api_default!r})"
                )
                compared += 1
    assert compared >= 10


def test_the_flag_tables_show_the_python_keyword_of_a_shared_setting():
    from kssl.app.reference import flags_table

    rows = {row.split(" | ")[0]: row for row in flags_table("run").splitlines()}
    assert rows["| `--finetune-epochs`"].endswith("<br>Python: `kssl.finetune(epochs=)` |")
    assert "Python:" not in rows["| `--out`"]
    assert "a folder root/&lt;class&gt;/&lt;image&gt;" in rows["| `--data`"]  # not taken for HTML tags

"""The command line's flags that are not settings of a run (`--config`, `--verbose`), and the
epilogs that list the registered methods and modes; a run's settings declare their own flags
(`kssl.app.settings`). Importing it imports no TensorFlow."""

from __future__ import annotations


def config_option(parser):
    parser.add_argument(
        "--config",
        help="run again what a run's config.json records (options given here replace its values)",
    )


def common_options(parser):
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own C++ log lines too (hidden by default)"
    )


def options_lines(spec) -> list:
    return [f"      {key}={option.default}  {option.help}" for key, option in spec.options.items()]


def methods_epilog() -> str:
    from kssl.methods import METHODS  # the registry imports no TensorFlow

    width = max(len(name) for name in METHODS)
    lines = [
        line for name, spec in METHODS.items() for line in [f"  {name:<{width}}  {spec.summary}", *options_lines(spec)]
    ]
    return "pretraining methods (--method) and their options (--method-option KEY=VALUE):\n" + "\n".join(lines)


def modes_epilog() -> str:
    from kssl.finetuning import MODES  # the registry imports no TensorFlow

    width = max(len(name) for name in MODES)
    lines = [
        line for name, spec in MODES.items() for line in [f"  {name:<{width}}  {spec.summary}", *options_lines(spec)]
    ]
    from kssl.semi_supervised import SEMI_SUPERVISED

    semi = [line for name, spec in SEMI_SUPERVISED.items()
            for line in [f"  {name:<{width}}  {spec.summary}", *options_lines(spec)]]  # fmt: skip
    return (
        "fine-tuning modes (--modes) and their options (--mode-option KEY=VALUE):\n"
        + "\n".join(lines)
        + "\n\nsemi-supervised fine-tuning (--semi-supervised) and its options (--semi-option KEY=VALUE):\n"
        + "\n".join(semi)
    )

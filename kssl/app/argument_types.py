"""The command line's value types: each parses one flag's text or says, in argparse's words,
what it expected (`argparse.ArgumentTypeError`, exit code 2). Importing it imports no
TensorFlow."""

from __future__ import annotations

import argparse
import math


def label_budget_list(text: str) -> list:
    return [label_budget(part) for part in text.split(",")]


def label_budget(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction like 0.01 or a count per class like 10, got {text!r}"
        ) from None
    if value.is_integer() and value >= 1:
        return int(value)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction of labels must be in (0, 1], got {text}")
    return value


ANY_SIZE_HELP = (
    "the view size, for a model that takes images of any size (such as an ImageNet model saved with a "
    "None x None input); a model of one size takes its own"
)


# Counts (steps, images, epochs) fit TensorFlow's int32 shapes and counters with room to spare.
LARGEST = 2**31 - 1


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        if not math.isfinite(value) or value > LARGEST:  # inf passed and overflowed later
            raise argparse.ArgumentTypeError(f"must be a finite number up to {LARGEST:,}, got {text}")
        return value

    return parse


def comma_separated(text: str) -> list:
    return [part.strip().lower() for part in text.split(",") if part.strip()]


def in_range(kind, low, high, expected: str, outside: str):
    """An argparse type: `kind(text)` in [low, high] (NaN is not), else a message saying what was expected."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{outside}, got {text}")
        return value

    return parse


port_number = in_range(int, 0, 65535, "a port number", "a port is 0 to 65535 (0: any free one)")


unit_fraction = in_range(float, 0, 1, "a number in [0, 1]", "must be in [0, 1] (pixels are in [0, 1]; 8/255 = 0.031)")


cosine_similarity = in_range(
    float, -1, 1, "a cosine similarity in [-1, 1]", "a cosine similarity is in [-1, 1] (near-duplicates: 0.95)"
)


def export_format_list(text):
    from kssl.defaults import EXPORT_FORMATS  # imports no TensorFlow

    names = comma_separated(text)
    unknown = [name for name in names if name not in EXPORT_FORMATS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(EXPORT_FORMATS)}, got {text!r}")
    return names


def few_shot_spec(text):
    from kssl.evaluation.few_shot import parse_few_shot  # imports no TensorFlow

    try:
        return parse_few_shot(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None

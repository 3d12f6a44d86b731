"""The command line's value types: each parses its flag's text or says, in argparse's words,
what it expected (exit code 2)."""

import argparse

import pytest

from kssl.app.argument_types import (
    LARGEST,
    comma_separated,
    cosine_similarity,
    export_format_list,
    label_budget_list,
    port_number,
    positive,
)


def test_label_budgets_are_fractions_or_counts_per_class():
    assert label_budget_list("0.01,10,1,1.0") == [0.01, 10, 1, 1]
    assert isinstance(label_budget_list("10")[0], int)
    for text, message in [("ten", "a count per class like 10, got 'ten'"), ("1.5", "in \\(0, 1\\], got 1.5"),
                          ("0", "in \\(0, 1\\], got 0")]:  # fmt: skip
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            label_budget_list(text)


REFUSED = [("-3", "must be > 0, got -3"), ("inf", "finite number"), ("x", "expected a number, got 'x'"),
           (str(LARGEST + 1), "up to")]  # fmt: skip


@pytest.mark.parametrize("text, message", REFUSED)
def test_positive_numbers_refuse_what_would_fail_later(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        positive(float if text == "inf" else int)(text)
    assert positive(float)("2.5") == 2.5


def test_ranges_lists_and_defaults():
    assert port_number("0") == 0 and cosine_similarity("-1") == -1.0
    with pytest.raises(argparse.ArgumentTypeError, match="a port is 0 to 65535"):
        port_number("70000")
    with pytest.raises(argparse.ArgumentTypeError, match="cosine similarity is in"):
        cosine_similarity("nan")  # NaN is in no range
    assert comma_separated(" Linear, FULL ,") == ["linear", "full"]
    assert export_format_list("onnx,litert") == ["onnx", "litert"]
    with pytest.raises(argparse.ArgumentTypeError, match="choose among"):
        export_format_list("pickle")
    from kssl import defaults
    from kssl.app.settings import run_default

    assert run_default("finetune_epochs") == defaults.FINETUNE_EPOCHS and run_default("labels") == list(defaults.LABELS)

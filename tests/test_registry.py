"""Registered classes' options (`kssl.registry`): typed from their defaults, unknown keys and
wrong types refused naming what is accepted, old names warning."""

import warnings

import pytest

from kssl.errors import InputError
from kssl.registry import Option, Spec, check_name, renamed, split_options

SPEC = Spec("kssl.finetuning.lora:LoRA", "low-rank updates", {"rank": Option(8, "rank"),
            "alpha": Option(None, "scale", float), "merge": Option(True, "merge for export")})  # fmt: skip


def test_options_are_typed_by_their_defaults():
    assert SPEC.parse_options(["rank=4", "alpha=none", "merge=false"], "--mode-option") == {
        "rank": 4, "alpha": None, "merge": False}  # fmt: skip
    assert SPEC.parse_options({"alpha": 2}) == {"alpha": 2.0}  # an int passes for a float
    assert SPEC.resolved_options({"rank": 2}) == {"rank": 2, "alpha": None, "merge": True}


REFUSED = [(["depth=2"], "has no option 'depth'. Its options: rank, alpha, merge"), (["rank=2.5"], "rank"),
           ({"merge": "maybe"}, "merge=maybe: LoRA.s merge takes bool"), (["rank"], "KEY=VALUE")]  # fmt: skip


@pytest.mark.parametrize("pairs, message", REFUSED)
def test_an_unknown_key_or_a_wrong_value_is_an_input_error(pairs, message):
    with pytest.raises(InputError, match=message):
        SPEC.parse_options(pairs, "--mode-option")


def test_names_are_checked_case_insensitively_and_old_names_warn():
    assert check_name({"lora": SPEC}, "LoRA", "mode") == "lora"
    with pytest.raises(InputError, match="lora"):
        check_name({"lora": SPEC}, "lorax", "mode")
    assert split_options(["a=1", "b=x=y"], "--flag") == {"a": "1", "b": "x=y"}
    getattr_ = renamed("somewhere", {"OLD": ("NEW", 42)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert getattr_("OLD") == 42
    assert "NEW" in str(caught[0].message)
    with pytest.raises(AttributeError):
        getattr_("MISSING")

"""What every registered pretraining method, fine-tuning mode and semi-supervised method
promises, checked the same way for each registry's entries (tests/models/test_method_contract.py,
tests/finetuning/test_mode_contract.py, tests/semi_supervised/test_contract.py)."""

import inspect

import keras
import pytest
from helpers import assert_same_state
from helpers import model_state as state


def assert_options_are_the_constructors(spec, not_options=()):
    """A registry entry's options are its class's constructor arguments (but `not_options`,
    such as layers passed in), with its defaults."""
    parameters = inspect.signature(spec.load().__init__).parameters
    ignored = {"self", "args", "kwargs", *not_options}
    constructor = {k: p.default for k, p in parameters.items() if k not in ignored}
    assert {key: option.default for key, option in spec.options.items()} == constructor


def assert_same_logs(logs, reference, rel=1e-5, abs=1e-6):
    """Two `History.history`s of one step's logs agree, metric by metric."""
    assert logs.keys() == reference.keys()
    for key, value in reference.items():
        assert logs[key][0] == pytest.approx(value[0], rel=rel, abs=abs), key


def assert_round_trip_trains_on_alike(model, path, fit_next, restored_check=None):
    """`model` saved to `path` and loaded back holds every state bit for bit, and its next
    steps (`fit_next(model)`, eagerly as the original) log and end alike."""
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    if restored_check is not None:
        restored_check(restored)
    restored.run_eagerly = True  # as the original: bit-equal steps need the same path
    assert_same_state(state(restored), state(model), rtol=0, atol=0)
    assert fit_next(restored) == fit_next(model)
    assert_same_state(state(restored), state(model), rtol=0, atol=0)

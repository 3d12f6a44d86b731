"""The one set of defaults (`kssl.defaults`): the lengths the command and the Python API share."""

import pytest

from kssl import defaults


def test_pretraining_lasts_20_epochs_but_at_least_the_minimum_steps_and_a_pretrained_start_at_most_its_cap():
    assert defaults.pretraining_epochs(50_000, 256)[0] == defaults.PRETRAIN_EPOCHS
    epochs, reason = defaults.pretraining_epochs(2_934, 256)
    assert (
        defaults.steps_for(epochs, 2_934, 256)
        >= defaults.MIN_PRETRAIN_STEPS
        > defaults.steps_for(epochs - 1, 2_934, 256)
    )
    assert "at least" in reason
    epochs, reason = defaults.pretraining_epochs(50_000, 256, pretrained_start=True)
    assert defaults.steps_for(epochs, 50_000, 256) == defaults.PRETRAINED_START_MAX_STEPS and "at most" in reason
    assert defaults.pretraining_epochs(100, 256, pretrained_start=True)[0] == defaults.PRETRAIN_EPOCHS  # no minimum
    assert defaults.pretraining_epochs(1_437, 256, "digits")[0] == defaults.DIGITS_PRETRAIN_EPOCHS


def test_semi_supervised_length_counts_passes_over_the_pool_but_never_fewer_steps_than_the_labels():
    steps, _ = defaults.semi_supervised_steps(5_000, 224, 10)
    assert steps == round(defaults.SEMI_SUPERVISED_PASSES * 5_000 / 224)
    assert defaults.semi_supervised_steps(500, 350, 100)[0] == 100  # the default length keeps the labels' steps
    assert defaults.semi_supervised_steps(500, 350, 100, passes=5)[0] == 7  # an explicit length is taken as it is
    with pytest.raises(ValueError, match="Received: -1"):
        defaults.semi_supervised_steps(500, 350, 100, passes=-1)


def test_steps_are_at_least_one_and_epochs_must_be_positive():
    assert defaults.steps_for(0.001, 10, 256) == 1
    with pytest.raises(ValueError, match="epochs=0"):
        defaults.steps_for(0, 10, 256)

"""A run's configuration: what changes its results decides whether a run may resume."""

from kssl.app.config import RunConfig


def test_settings_that_do_not_change_results_do_not_block_a_resume():
    first = RunConfig(epochs=3).resolved()
    again = RunConfig(epochs=3, overwrite=True, checkpoint_every=7, model_name="pets", version=2).resolved()
    assert first.result_fields() == again.result_fields()
    assert RunConfig(epochs=4).resolved().result_fields() != first.result_fields()

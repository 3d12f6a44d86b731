import dataclasses

import keras
import pytest

from kssl.methods import recipe_for
from kssl.training.recipes import PretrainingRecipe


def test_simclr_recipe_is_sgd_with_nesterov_and_the_linear_scaling_rule():
    recipe = recipe_for("SimCLR")
    assert recipe.peak_learning_rate(256) == pytest.approx(0.3)
    assert recipe.peak_learning_rate(1024) == pytest.approx(1.2)
    optimizer = recipe.build_optimizer(batch_size=512, total_steps=100)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.nesterov
    assert float(optimizer.momentum) == pytest.approx(0.9) and optimizer.weight_decay == pytest.approx(5e-4)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == 0.0  # warmup from 0
    assert float(schedule(5)) == pytest.approx(0.6)  # peak at 5% of the steps
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-7)  # cosine to 0


def test_batch_norm_and_biases_get_no_weight_decay():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    optimizer = recipe_for("simclr").build_optimizer(batch_size=256, total_steps=10)
    optimizer.build(model.trainable_variables)
    decayed = {v.name for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed == {"kernel"}


def test_without_steps_the_rate_is_a_variable_for_a_time_budget_to_drive():
    optimizer = recipe_for("simclr").build_optimizer(batch_size=128)
    assert float(optimizer.learning_rate) == pytest.approx(0.15)
    optimizer.learning_rate.assign(0.01)
    assert float(optimizer.learning_rate) == pytest.approx(0.01)


def test_adamw_variant_and_replace():
    recipe = dataclasses.replace(recipe_for("simclr"), optimizer="adamw", learning_rate=1e-3, weight_decay=1e-4)
    optimizer = recipe.build_optimizer(batch_size=256, total_steps=10)
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.weight_decay == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "field, value", [("optimizer", "lamb"), ("learning_rate", 0), ("weight_decay", -1), ("warmup_fraction", 1.0)]
)
def test_bad_fields_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        PretrainingRecipe(**{field: value})


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match="simclr"):
        recipe_for("byol-v9")


def test_every_registered_method_has_a_recipe_and_a_class():
    from kssl.methods import METHODS, method_class

    for name, spec in METHODS.items():
        assert isinstance(spec.recipe, PretrainingRecipe) and recipe_for(name) is spec.recipe
        assert spec.target.endswith(":" + method_class(name).__name__) and spec.summary


def test_lars_variant_trains_with_kssls_lars_and_a_budget_can_drive_its_rate():
    from kssl.training.optimizers import LARS

    recipe = dataclasses.replace(recipe_for("byol"), optimizer="lars", weight_decay=1.5e-6)
    optimizer = recipe.build_optimizer(batch_size=512, total_steps=10)
    assert isinstance(optimizer, LARS) and optimizer.lars_weight_decay == pytest.approx(1.5e-6)
    budgeted = recipe.build_optimizer(batch_size=256)
    budgeted.learning_rate.assign(0.01)
    assert float(budgeted.learning_rate) == pytest.approx(0.01)


def test_the_tuned_recipes_build_what_benchmarks_md_measured():
    from kssl.training.optimizers import LARS

    # BENCHMARKS.md, "Recipe tuning": each method's adopted recipe, as the optimizer it builds.
    barlow = recipe_for("barlow").build_optimizer(batch_size=512, total_steps=10)
    assert isinstance(barlow, LARS) and barlow.lars_weight_decay == pytest.approx(1e-4)
    expected = {"moco": (0.3, 1e-4), "byol": (0.3, 5e-4), "simsiam": (0.5, 1e-5), "vicreg": (0.12, 5e-4)}
    for method, (rate, decay) in expected.items():
        optimizer = recipe_for(method).build_optimizer(batch_size=512, total_steps=20)
        assert isinstance(optimizer, keras.optimizers.SGD) and not optimizer.nesterov, method
        assert float(optimizer._learning_rate(1)) == pytest.approx(2 * rate), method  # the peak, at B=512
        assert optimizer.weight_decay == pytest.approx(decay), method

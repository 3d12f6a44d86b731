"""The contract of every registered pretraining method, driven by `kssl.methods.METHODS`.

For each method: its spec's options are its constructor's, with the same defaults; two
steps on 2 replicas, and two steps in one execution, equal two single steps on 1 device;
a `.keras` round trip keeps *all* state (the restored model's next step equals
the original's: momentum networks, MoCo's queue, heads, optimizer); a mixed-precision
step is finite. A registered method without a case here fails
`test_every_registered_method_has_a_case`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from contracts import assert_options_are_the_constructors, assert_round_trip_trains_on_alike, assert_same_logs
from helpers import assert_same_state, digits, two_replicas
from helpers import model_state as state

from kssl.data.pipeline import view_pairs
from kssl.encoders import vit
from kssl.methods import METHODS, method_class
from kssl.models.mae import MAEDecoder

SIZE = 8


def small_encoder():
    """Two convolutions with kssl's batch norm (synchronized across replicas, as in its
    ResNets) and pooling: every part a method's step depends on, a fraction of a
    ResNet-18's graph to trace."""
    from kssl.layers import FusedBatchNormalization

    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for index, filters in enumerate((8, 16)):
        x = keras.layers.Conv2D(filters, 3, strides=1 + index, padding="same", use_bias=False)(x)
        x = FusedBatchNormalization(synchronized=True, momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="small_encoder")


def conv_case(**options):
    return lambda: (small_encoder(), options)


def teacher_case(**options):
    def build():
        inputs = keras.Input((SIZE, SIZE, 3))
        x = keras.layers.Conv2D(12, 3, activation="relu", name="tc")(inputs)
        x = keras.layers.BatchNormalization(name="tbn")(x)  # inference mode: its moving statistics
        teacher = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="teacher")
        return small_encoder(), {"teacher": teacher, **options}

    return build


def mae_case(**options):
    def build():
        encoder = vit(depth=1, width=1 / 12, image_size=SIZE, patch_size=4)  # 4 patches of 48 pixels
        return encoder, {"decoder": MAEDecoder(4, 48, width=16, depth=1, heads=2), **options}

    return build


# How each method is built at test scale: its encoder and any options the scale needs;
# "method+multicrop" cases are the method with local crops (on its own views), "+pretrained-start"
# with the rates and frozen batch norm of a pretrained start's recipe.
CASES = {
    "simclr": conv_case(temperature=0.3),
    "simclr+multicrop": conv_case(temperature=0.3, local_crops=2),
    "moco": conv_case(queue_size=64),
    "byol": conv_case(),
    "byol+multicrop": conv_case(local_crops=2),
    # A pretrained start's recipe (kssl.training.recipes.for_pretrained_start): the encoder at a tenth
    # of the heads' rate, its batch norm frozen (BYOL: its momentum copy too).
    "byol+pretrained-start": conv_case(encoder_rate=0.1, frozen_batch_norm=True),
    "simsiam": conv_case(),
    "barlow": conv_case(),
    "vicreg": conv_case(),
    "vicreg+multicrop": conv_case(local_crops=1),
    "dino": conv_case(prototypes=16, local_crops=2),
    "distillation": teacher_case(),
    "mae": mae_case(mask_ratio=0.5),
}
# Constructor arguments that are layers (serialized as nested objects), not options.
LAYER_ARGUMENTS = {"encoder", "projector", "predictor", "projection_head", "decoder", "teacher", "probe_classes",
                   "kwargs"}  # fmt: skip


def method_of(case: str) -> str:
    return case.split("+")[0]


def test_every_registered_method_has_a_case_and_every_multi_crop_method_a_multi_crop_case():
    assert {method_of(case) for case in CASES} == set(METHODS)
    multi_crop = {name for name in METHODS if method_class(name).supports_local_crops}
    assert multi_crop == {"simclr", "vicreg", "byol", "dino"}
    for name in multi_crop:
        assert "local_crops" in METHODS[name].options
        assert any(
            case == name + "+multicrop" or (case == name and "local_crops" in CASES[case]()[1]) for case in CASES
        )


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_specs_options_are_the_constructors_with_its_defaults(name):
    assert_options_are_the_constructors(METHODS[name], not_options=LAYER_ARGUMENTS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_batch_smaller_than_the_method_learns_from_is_refused(name):
    from kssl.errors import InputError

    model_class = method_class(name)
    assert model_class.min_batch == (1 if name == "mae" else 2)  # MAE's loss is per image
    model_class.check_batch_size(model_class.min_batch)
    if model_class.min_batch > 1:
        with pytest.raises(InputError, match=f"too small for {model_class.__name__}"):
            model_class.check_batch_size(model_class.min_batch - 1)


@pytest.fixture(scope="module")
def pairs():
    views = view_pairs(digits(image_size=SIZE), batch_size=16, seed=0)
    return list(views.take(3))  # one iterator: each costs a pipeline start


@pytest.fixture
def batches(name, pairs):
    """Three batches of the case's views: the default pair, or with local crops the method's own."""
    local_crops = CASES[name]()[1].get("local_crops")
    if not local_crops:
        return pairs
    augmentations = method_class(method_of(name)).view_augmentations(SIZE, local_crops=local_crops)
    views = view_pairs(digits(image_size=SIZE), batch_size=16, augmentation=augmentations, seed=0)
    return list(views.take(3))  # one iterator: each costs a pipeline start


def build(name, strategy=None, steps_per_execution=1, run_eagerly=False):
    strategy = strategy or tf.distribute.get_strategy()
    encoder_factory = CASES[name]
    with strategy.scope():
        keras.utils.set_random_seed(7)
        encoder, options = encoder_factory()
        model = method_class(method_of(name))(encoder, **options)
        # Barlow Twins' and VICReg's losses are sums over D x D matrices: their gradients
        # are large, so a small rate keeps one step's update (and its round-off) moderate.
        model.compile(optimizer=keras.optimizers.SGD(0.001, momentum=0.9), steps_per_execution=steps_per_execution,
                      run_eagerly=run_eagerly)  # fmt: skip
    return model


def fit(model, batches):
    history = model.fit(tf.data.Dataset.from_tensor_slices(stack(batches)), epochs=1, verbose=0, shuffle=False)
    return history.history


def stack(batches):
    return tuple(np.stack([np.asarray(batch[v]) for batch in batches]) for v in range(len(batches[0])))


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_replicas_and_two_steps_per_execution_equal_single_steps_and_a_round_trip_keeps_every_state(
    name, batches, tmp_path
):
    # One reference, two single steps of 15 images on one device, for both set-ups: two
    # replicas (8 images on one, 7 on the other) and two steps in one execution. Keras 3
    # cannot run both at once (see kssl.training.fitting.check_steps_per_execution). The
    # reference runs eagerly: an independent path (no tf.function, no Grappler) that
    # saves one trace; the set-ups users run are traced.
    uneven = [tuple(view[:15] for view in batch) for batch in batches]  # one shape: one trace each
    single = build(name, run_eagerly=True)  # the default strategy: one device
    single_logs = fit(single, uneven[:2])
    mirrored = build(name, two_replicas())
    mirrored_logs = fit(mirrored, uneven[:2])
    # abs: SimSiam's loss is a mean of negative cosines that nearly cancel (-0.0085);
    # round-off reached 1.05e-6 on two threads. A wrong split moves it by ~1e-2.
    assert_same_logs(mirrored_logs, single_logs, abs=5e-6)
    assert_same_state(state(mirrored), state(single))
    if "+" in name:
        return  # a variant's steps per execution and round trip are its method's (tested above)
    several = build(name, steps_per_execution=2)
    fit(several, uneven[:2])
    assert int(several.optimizer.iterations.numpy()) == int(single.optimizer.iterations.numpy()) == 2
    assert_same_state(state(several), state(single))

    assert_round_trip_trains_on_alike(single, tmp_path / "model.keras", lambda model: fit(model, uneven[2:]))


@pytest.mark.parametrize("name", sorted(METHODS))  # DINO's case has local crops: multi-crop under mixed precision
def test_a_mixed_precision_step_is_finite(name, batches):
    keras.mixed_precision.set_global_policy("mixed_float16")  # conftest restores float32
    model = build(name)
    logs = fit(model, batches[:1])
    assert all(np.isfinite(value[0]) for value in logs.values()), logs
    assert all(np.isfinite(v).all() for v in state(model).values())

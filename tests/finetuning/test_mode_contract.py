"""The contract of every registered fine-tuning mode, driven by `kssl.finetuning.MODES`.

For each mode: its spec's options are its constructor's, with the same defaults; a
`Classifier`'s two steps on 2 replicas, and two steps in one execution, equal two single
steps on 1 device (L2-SP included); a `.keras` round trip keeps every state (the restored classifier's next
step equals the original's). A registered mode without a case fails
`test_every_registered_mode_has_a_case`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from contracts import assert_options_are_the_constructors, assert_round_trip_trains_on_alike
from helpers import assert_same_state, digits, tiny_encoder, two_replicas
from helpers import model_state as state

from kssl.data.pipeline import labeled_batches
from kssl.finetuning import MODES
from kssl.models import Classifier

SIZE = 8
# The options each mode is built with here (non-default ones, so that they are checked).
CASES = {
    "linear": {},
    "partial": {"trainable_stages": 2},
    "full": {},  # with L2-SP (CLASSIFIER_OPTIONS)
    "lora": {"rank": 2, "alpha": 4.0},
    "adapter": {"reduction": 2},
    "gradual": {"every_epochs": 1.0},
}


# Classifier options a mode is built with here: L2-SP's penalty pulls toward the
# pretrained weights, non-zero from the second step on (the first moves them off).
CLASSIFIER_OPTIONS = {"full": {"l2_sp": 0.1}}

# Keras' LoRA layers save their kernel with B.A merged in and reload A = B = 0
# (`load_own_variables` of Dense and the convolutions), so an unmerged LoRA classifier
# comes back with the same predictions, not the same state. kssl saves and serves the
# merged classifier (`Classifier.merged()`) and resumes training from tf.train checkpoints,
# which keep A and B; further training of a reloaded unmerged LoRA file starts from zero.
MERGED_ON_SAVE = {"lora"}


def test_every_registered_mode_has_a_case():
    assert set(CASES) == set(MODES)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_specs_options_are_the_constructors_with_its_defaults(mode):
    assert_options_are_the_constructors(MODES[mode], not_options=("options",))


@pytest.fixture(scope="module")
def batches():
    images = digits(image_size=SIZE).subset(range(48))
    return [next(iter(labeled_batches(images.subset(range(16 * i, 16 * i + 16)), 16))) for i in range(3)]


def build(mode, strategy=None, steps_per_execution=1, run_eagerly=False):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        keras.utils.set_random_seed(3)
        encoder = tiny_encoder(SIZE)  # four named stages, as partial and gradual need
        classifier = Classifier(encoder, 10, mode=mode, mode_options=CASES[mode], **CLASSIFIER_OPTIONS.get(mode, {}))
        # SGD: Adam divides by sqrt(v), so round-off in a near-zero gradient can move a
        # weight by ~1e-4 of the rate between two set-ups (seen on 1 of 9,216 entries).
        classifier.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), steps_per_execution=steps_per_execution,
                           run_eagerly=run_eagerly)  # fmt: skip
    return classifier


def fit(classifier, batches):
    images = np.concatenate([np.asarray(b[0]) for b in batches])
    labels = np.concatenate([np.asarray(b[1]) for b in batches])
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    return classifier.fit(data, epochs=1, verbose=0, shuffle=False).history


@pytest.mark.parametrize("mode", sorted(MODES))
def test_two_replicas_and_two_steps_per_execution_equal_single_steps_and_a_round_trip_keeps_every_state(
    mode, batches, tmp_path
):
    # One reference, two single steps on one device, for both set-ups: a wrong split across
    # replicas or a state lost between the steps of one execution would move the weights.
    # The reference runs eagerly (an independent path, one trace fewer); the set-ups are traced.
    single = build(mode, run_eagerly=True)  # the default strategy: one device
    single_loss = fit(single, batches[:2])["loss"][0]
    mirrored = build(mode, two_replicas())
    mirrored_loss = fit(mirrored, batches[:2])["loss"][0]
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)
    assert_same_state(state(mirrored), state(single))
    several = build(mode, steps_per_execution=2)
    fit(several, batches[:2])
    assert int(several.optimizer.iterations.numpy()) == int(single.optimizer.iterations.numpy()) == 2
    assert_same_state(state(several), state(single), rtol=1e-5, atol=1e-6)

    def same_mode(restored):
        assert restored.mode == mode and restored.l2_sp == single.l2_sp
        assert restored.fine_tuning_mode.get_config() == single.fine_tuning_mode.get_config()

    if mode in MERGED_ON_SAVE:
        single.save(tmp_path / "classifier.keras")
        restored = keras.saving.load_model(tmp_path / "classifier.keras")
        same_mode(restored)
        images = np.asarray(batches[2][0])
        np.testing.assert_allclose(restored.predict(images, verbose=0), single.predict(images, verbose=0), atol=1e-5)
        return
    assert_round_trip_trains_on_alike(single, tmp_path / "classifier.keras", lambda model: fit(model, batches[2:]),
                                      same_mode)  # fmt: skip

"""The contract of every registered semi-supervised method, driven by
`kssl.semi_supervised.SEMI_SUPERVISED`: its spec's options are its constructor's; a step
on 2 replicas equals the step on 1 device (for several fine-tuning modes); an
interrupted `finetune` resumes to the uninterrupted weights; the result is a plain
classifier that saves and exports like any other."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from contracts import assert_options_are_the_constructors, assert_same_logs
from helpers import assert_same_state, digits, tiny_encoder, two_replicas
from helpers import model_state as state

from kssl.data.augment import ViewAugmentation
from kssl.data.pipeline import semi_supervised_batches
from kssl.models import Classifier
from kssl.semi_supervised import SEMI_SUPERVISED, semi_supervised_class
from kssl.semi_supervised.base import SemiSupervisedTraining

SIZE = 8
POOL = range(100, 132)  # the unlabeled images: a step's 32, so that FlexMatch's thresholds move within 2 steps
CASES = {
    "fixmatch": {"ratio": 2, "threshold": 0.2},
    "flexmatch": {"ratio": 2, "threshold": 0.2},  # most images confident at once: the thresholds move
    "freematch": {"ratio": 2, "momentum": 0.5, "fairness_weight": 0.5},  # thresholds that move within 2 steps
    "distill": {"ratio": 2, "temperature": 2.0},
}


def test_every_registered_method_has_a_case():
    assert set(CASES) == set(SEMI_SUPERVISED)


@pytest.mark.parametrize("name", sorted(SEMI_SUPERVISED))
def test_the_specs_options_are_the_constructors_with_its_defaults(name):
    assert_options_are_the_constructors(SEMI_SUPERVISED[name])


@pytest.fixture(scope="module")
def batches():
    """Two steps' batches, without and with the unlabeled images' rows (FlexMatch's)."""
    images = digits(image_size=SIZE)
    views = [ViewAugmentation(SIZE)] * 2
    pool = images.subset(POOL)
    return {rows: list(semi_supervised_batches(images.subset(range(32)), pool, 16, 2, views, seed=0,
                                               with_rows=rows).take(2)) for rows in (False, True)}  # fmt: skip


def build(name, mode, strategy, run_eagerly=False, ema=False):
    with strategy.scope():
        keras.utils.set_random_seed(3)
        teacher = None
        if semi_supervised_class(name).needs_teacher:
            teacher = Classifier(tiny_encoder(SIZE), 10, mode="full")
        options = {"l2_sp": 0.1} if mode == "full" else {}
        classifier = Classifier(tiny_encoder(SIZE), 10, mode=mode, mode_options={"rank": 2} if mode == "lora" else {},
                                **options)  # fmt: skip
        averaged = {"use_ema": True, "ema_momentum": 0.5} if ema else {}  # finetune(ema_momentum=)'s optimizer
        classifier.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, **averaged))
        method = semi_supervised_class(name)(**CASES[name])
        if name == "distill":  # a view of one image for the teacher and the student: the weak one
            method.unlabeled_views = lambda size: [ViewAugmentation(size)]
        model = SemiSupervisedTraining(classifier, method, teacher, unlabeled_images=len(POOL))
        model.compile(optimizer=classifier.optimizer, run_eagerly=run_eagerly)
    return model


def fit(model, batches, name):
    needs_rows = model.method.needs_rows
    batches = batches[needs_rows]
    keep = 1 if name == "distill" else 2  # distillation takes one view of each unlabeled image
    rows_spec = (tf.TensorSpec((16, 2), tf.int64),) if needs_rows else ()
    data = tf.data.Dataset.from_generator(
        lambda: ((labeled, (*unlabeled[:keep], *unlabeled[2:])) for labeled, unlabeled in batches),
        output_signature=(
            (tf.TensorSpec((16, SIZE, SIZE, 3)), tf.TensorSpec((16,), tf.int64)),
            (*(tf.TensorSpec((16, 2, SIZE, SIZE, 3)) for _ in range(keep)), *rows_spec),
        ),
    )
    return model.fit(data, epochs=1, steps_per_epoch=len(batches), verbose=0, shuffle=False).history


@pytest.mark.parametrize("name, mode, ema", [("fixmatch", "full", True), ("fixmatch", "gradual", False),
                                             ("flexmatch", "full", False), ("freematch", "full", False),
                                             ("distill", "lora", False)])  # fmt: skip
def test_two_steps_on_two_replicas_equal_two_steps_on_one_device(name, mode, ema, batches):
    single = build(name, mode, tf.distribute.get_strategy(), run_eagerly=True, ema=ema)  # an independent path
    single_logs = fit(single, batches, name)
    mirrored = build(name, mode, two_replicas(), ema=ema)
    mirrored_logs = fit(mirrored, batches, name)
    assert_same_logs(mirrored_logs, single_logs)
    if mode == "full" and name != "distill":  # some pseudo-labels kept, some not: the mask is split over replicas
        assert 0 < single_logs["mask_rate"][0] < 1 and single_logs["unlabeled_loss"][0] > 0
    assert_same_state(state(mirrored.classifier), state(single.classifier))
    if single.method_state is not None:  # the thresholds' EMAs, from the global batch
        for a, b in zip(single.method_state.weights, mirrored.method_state.weights):
            np.testing.assert_allclose(np.asarray(b.value), np.asarray(a.value), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SEMI_SUPERVISED))
def test_an_interrupted_finetune_resumes_to_the_uninterrupted_weights_and_the_classifier_saves(name, tmp_path):
    from kssl.training import finetune

    images = digits(image_size=SIZE)
    labeled = images.subset(range(40))

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:  # step 3, past the checkpoint of step 2
                raise RuntimeError("the machine went away")

    def run(checkpoint_dir=None, callbacks=()):
        keras.utils.set_random_seed(0)
        return finetune(tiny_encoder(SIZE), labeled, mode="full", batch_size=20, semi_supervised=name,
                        unlabeled_set=images.subset(range(80)), unlabeled_passes=4,
                        semi_supervised_options={"ratio": 2}, checkpoint_dir=checkpoint_dir, checkpoint_every=2,
                        callbacks=callbacks, verbose=0)  # fmt: skip

    reference, _ = run()
    with pytest.raises(RuntimeError, match="went away"):
        run(tmp_path / "checkpoints", [Crash()])
    resumed, history = run(tmp_path / "checkpoints")
    assert int(resumed.optimizer.iterations.numpy()) == 8 and history.params["steps"] == 6
    assert_same_state(state(resumed), state(reference), rtol=1e-5, atol=1e-6)
    resumed.save(tmp_path / "classifier.keras")  # a plain Classifier: saved, loaded, served like any other
    restored = keras.saving.load_model(tmp_path / "classifier.keras")
    probe = np.asarray(images.images[:4], "float32") / 255
    np.testing.assert_allclose(restored.predict(probe, verbose=0), resumed.predict(probe, verbose=0), atol=1e-6)


def test_the_length_counts_passes_over_the_unlabeled_images_and_says_why(capsys):
    from kssl.training import finetune

    images = digits(image_size=SIZE)
    labeled = images.subset(range(20))

    def steps(**options):
        classifier, _ = finetune(tiny_encoder(SIZE), labeled, batch_size=10, semi_supervised="fixmatch",
                                 semi_supervised_options={"ratio": 2}, verbose=2, **options)  # fmt: skip
        return int(classifier.optimizer.iterations.numpy())

    # 20 unlabeled images a step: 3 passes over 100 are 15 steps, whatever the labels' epochs.
    assert steps(unlabeled_set=images.subset(range(100)), unlabeled_passes=3, epochs=1) == 15
    assert "FixMatch: 3 passes over the 100 unlabeled images, 15 steps of 20" in capsys.readouterr().out
    # By default 30 passes, but never fewer steps than plain fine-tuning's (here 4 epochs of 2 steps).
    assert steps(unlabeled_set=images.subset(range(20)), epochs=4) == 30
    assert steps(unlabeled_set=images.subset(range(20)), epochs=20) == 40
    assert "at least plain fine-tuning's steps (30 passes would be 30)" in capsys.readouterr().out


def test_semi_supervised_input_errors_name_what_to_do():
    from kssl.errors import InputError
    from kssl.training import finetune

    images = digits(image_size=SIZE)
    with pytest.raises(InputError, match="needs unlabeled_set"):
        finetune(tiny_encoder(SIZE), images.subset(range(20)), semi_supervised="fixmatch")
    with pytest.raises(InputError, match="Unknown semi-supervised method 'mixmatch'"):
        finetune(tiny_encoder(SIZE), images.subset(range(20)), semi_supervised="mixmatch", unlabeled_set=images)
    with pytest.raises(InputError, match="the unlabeled set has 30"):
        finetune(tiny_encoder(SIZE), images.subset(range(20)), batch_size=20, semi_supervised="fixmatch",
                 unlabeled_set=images.subset(range(30)))  # fmt: skip
    with pytest.raises(InputError, match="unlabeled_passes counts passes over unlabeled_set: it needs semi_supervised"):
        finetune(tiny_encoder(SIZE), images.subset(range(20)), unlabeled_passes=3)
    with pytest.raises(InputError, match="passes over the unlabeled images must be > 0. Received: 0"):
        finetune(tiny_encoder(SIZE), images.subset(range(20)), semi_supervised="fixmatch", unlabeled_set=images,
                 unlabeled_passes=0)  # fmt: skip
    with pytest.raises(InputError, match="threshold must be in"):
        finetune(tiny_encoder(SIZE), images.subset(range(20)), semi_supervised="fixmatch", unlabeled_set=images,
                 semi_supervised_options={"threshold": 1.5})  # fmt: skip

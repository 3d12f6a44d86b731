"""Distillation from a frozen teacher: the student learns to reproduce the teacher's features,
the teacher never changes, and the teacher sees the views at its own input size."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kssl
from kssl.callbacks import StepHistory
from kssl.models.distillation import Distillation


def teacher_of(size):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu", name="teacher_conv")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="teacher")


def test_the_student_learns_the_teachers_features_and_the_teacher_stays_frozen():
    teacher = teacher_of(8)
    before = [w.copy() for w in teacher.get_weights()]
    keras.utils.set_random_seed(0)
    images = kssl.load_digits(image_size=8).subset(range(256))
    curve = StepHistory(every=4)
    model, _ = kssl.pretrain(images, kssl.conv4(width=0.25, image_size=8), method="distillation", teacher=teacher,
                             epochs=8, batch_size=64, callbacks=[curve], verbose=0)  # fmt: skip
    losses, cosines = curve.logs["loss"], curve.logs["teacher_cosine"]
    assert isinstance(model, Distillation) and losses[-1] < 0.5 * losses[0] and cosines[-1] > cosines[0]
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not any(id(v) in {id(t) for t in teacher.weights} for v in model.optimized_variables)


def test_the_teacher_sees_the_views_resampled_to_its_own_size(rng):
    teacher = teacher_of(16)
    model = Distillation(kssl.conv4(width=0.125, image_size=8), teacher)
    views = rng.random((3, 8, 8, 3)).astype("float32")
    expected = teacher(tf.image.resize(views, (16, 16), antialias=True), training=False)
    np.testing.assert_allclose(model.teacher_features(views), expected, atol=1e-6)


@pytest.mark.eager_steps  # the command's plumbing: see conftest
def test_the_command_distills_a_teacher_file_of_any_size_and_says_what_it_costs(tmp_path, capsys):
    from helpers import write_image_folder

    from kssl.cli import main

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(12, 3, activation="relu", name="teacher_conv")(inputs)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)).save(tmp_path / "teacher.keras")
    data = write_image_folder(tmp_path / "photos", classes=("a", "b"), per_class=8, shapes=((12, 16),))
    args = ["pretrain", "--data", str(data), "--image-size", "8", "--encoder", "conv4", "--width", "0.125",
            "--epochs", "1", "--batch-size", "8"]  # fmt: skip
    assert main([*args, "--method", "distillation", "--teacher", str(tmp_path / "teacher.keras"),
                 "--out", str(tmp_path / "student")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "teacher: " in printed and "12-d features of 8-px views, frozen" in printed
    assert re.search(r"teacher: about \d+ ms of each \d+ ms step \(\d+%", printed)
    assert keras.saving.load_model(tmp_path / "student" / "encoder.keras").output_shape == (None, 8)  # the student
    assert main([*args, "--method", "distillation", "--out", str(tmp_path / "x")]) == 2
    assert "--method distillation needs --teacher" in capsys.readouterr().err
    assert main([*args, "--teacher", str(tmp_path / "teacher.keras"), "--out", str(tmp_path / "x")]) == 2
    assert "--teacher goes with --method distillation" in capsys.readouterr().err
    assert main([*args, "--method", "distillation", "--teacher", "/no/such.keras", "--out", str(tmp_path / "x")]) == 2
    assert "No teacher at" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_an_interrupted_distillation_resumes_to_the_uninterrupted_weights(tmp_path):
    images = kssl.load_digits(image_size=8).subset(range(128))

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise RuntimeError("the machine went away")

    def run(checkpoint_dir=None, callbacks=()):
        keras.utils.set_random_seed(0)
        return kssl.pretrain(images, kssl.conv4(width=0.125, image_size=8), method="distillation",
                             teacher=teacher_of(8), epochs=2, batch_size=32, checkpoint_dir=checkpoint_dir,
                             checkpoint_every=2, callbacks=list(callbacks), verbose=0)[0]  # fmt: skip

    reference = run()
    with pytest.raises(RuntimeError, match="went away"):
        run(tmp_path / "checkpoints", [Crash()])
    resumed = run(tmp_path / "checkpoints")
    assert int(resumed.optimizer.iterations.numpy()) == 8
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

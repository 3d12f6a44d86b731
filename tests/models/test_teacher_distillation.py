"""Distillation from a frozen teacher: the student learns to reproduce the teacher's features,
the teacher never changes, and the teacher sees the views at its own input size."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kssl
from kssl.models.distillation import Distillation
from kssl.training.curves import StepHistory


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

    from kssl.app.cli import main

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


def conv_model(size, channels, stride, name):
    """images -> Conv2D (a `stride`-strided `channels`-map) -> global average pooling."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(channels, 3, strides=stride, padding="same", name=f"{name}_conv")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name=name)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_feature_maps_are_regressed_position_by_position_as_numpy_computes_it(rng):
    keras.utils.set_random_seed(2)
    student, teacher = conv_model(8, 6, 4, "student"), conv_model(8, 5, 4, "teacher")  # both 2 x 2 maps
    model = Distillation(student, teacher)
    assert model.regresses_feature_maps
    views = [rng.random((3, 8, 8, 3)).astype("float32") for _ in range(2)]
    result = model.views_loss(views, training=False)

    images = views[0]  # one view of each image is distilled (LightlyTrain's), by default
    student_map = student.get_layer("student_conv")(images).numpy()  # (3, 2, 2, 6)
    teacher_map = teacher.get_layer("teacher_conv")(images).numpy()  # (3, 2, 2, 5)
    kernel, bias = (w.numpy() for w in model.projection_head.weights)
    predictions = student_map @ kernel + bias
    per_position = 2 - 2 * np.sum(unit(predictions) * unit(teacher_map), axis=-1)  # (3, 2, 2)
    np.testing.assert_allclose(result.metrics["loss"], per_position.mean(), rtol=1e-5)
    np.testing.assert_allclose(result.features, student(images), rtol=1e-5, atol=1e-6)  # the pooled features
    pooled_cosine = np.sum(unit(predictions.mean((1, 2))) * unit(teacher_map.mean((1, 2))), axis=-1)
    np.testing.assert_allclose(result.metrics["teacher_cosine"], pooled_cosine.mean(), rtol=1e-5)


def test_a_finer_student_map_is_resized_to_the_teachers_and_raw_features_use_the_squared_error(rng):
    keras.utils.set_random_seed(3)
    student, teacher = conv_model(8, 4, 2, "student"), conv_model(8, 3, 4, "teacher")  # 4 x 4 against 2 x 2
    model = Distillation(student, teacher, normalize=False, views=2)  # both views, stacked
    views = [rng.random((2, 8, 8, 3)).astype("float32") for _ in range(2)]
    images = np.concatenate(views)
    kernel, bias = (w.numpy() for w in model.projection_head.weights)
    predictions = student.get_layer("student_conv")(images).numpy() @ kernel + bias
    predictions = tf.image.resize(predictions, (2, 2), method="bilinear").numpy()
    teacher_map = teacher.get_layer("teacher_conv")(images).numpy()
    expected = np.mean((predictions - teacher_map) ** 2)
    np.testing.assert_allclose(model.views_loss(views, training=False).metrics["loss"], expected, rtol=1e-5)


def test_without_a_feature_map_or_when_asked_the_pooled_features_are_compared(rng):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(5, 3, name="t_conv")(inputs))
    dense_teacher = keras.Model(inputs, keras.layers.Dense(4, name="t_dense")(pooled))  # no map at its end
    views = [rng.random((3, 8, 8, 3)).astype("float32") for _ in range(2)]
    images = np.concatenate(views)
    for model in (Distillation(conv_model(8, 6, 4, "student"), dense_teacher, views=2),
                  Distillation(conv_model(8, 6, 4, "student"), conv_model(8, 5, 4, "teacher"), feature_map=False,
                               views=2)):  # fmt: skip
        assert not model.regresses_feature_maps
        predictions = model.projection_head(model.encoder(images)).numpy()
        targets = model.teacher(images).numpy()
        expected = np.mean(2 - 2 * np.sum(unit(predictions) * unit(targets), axis=-1))
        np.testing.assert_allclose(model.views_loss(views, training=False).metrics["loss"], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="feature_map must be True or False"):
        Distillation(conv_model(8, 6, 4, "student"), dense_teacher, feature_map="yes")
    with pytest.raises(ValueError, match="views must be 1 or 2"):
        Distillation(conv_model(8, 6, 4, "student"), dense_teacher, views=3)
    config = Distillation(conv_model(8, 6, 4, "student"), dense_teacher, feature_map=False).get_config()
    assert config["feature_map"] is False

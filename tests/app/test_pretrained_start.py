"""A pretrained start: the recipe made for it (the encoder at a fraction of the heads' rate, its
batch norm frozen), chosen when the encoder brings weights; `kssl run` measures the start
itself beside the adapted encoder, may export the start's classifier, and says whether
adapting it paid."""

import dataclasses
import json

import keras
import numpy as np
import pytest
from helpers import write_image_folder

from kssl.app.cli import main
from kssl.app.config import RunConfig, pretraining_recipe
from kssl.errors import InputError
from kssl.methods import recipe_for
from kssl.models.base import batch_norm_layers
from kssl.models.simclr import SimCLR
from kssl.training.recipes import for_pretrained_start


def small_start(size=None):
    """A tiny pretrained-like image model: preprocessing, a convolution, batch norm, a softmax head."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((size, size, 3), name="images")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="preprocessing")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(features)
    return keras.Model(inputs, outputs, name="tiny_imagenet")


def test_the_recipe_for_a_pretrained_start_is_chosen_when_the_encoder_brings_weights():
    adapted = for_pretrained_start(recipe_for("simclr"))
    brings = (("start.keras", None), ("keras_hub:resnet_18_imagenet", None), ("keras:ResNet50", "imagenet"))
    for encoder, weights in brings:
        recipe, why = pretraining_recipe(RunConfig(encoder=encoder, weights=weights))
        assert recipe == adapted and "the encoder brings weights" in why
    for encoder in ("resnet18", "keras:ResNet50"):  # random weights
        assert pretraining_recipe(RunConfig(encoder=encoder))[0] == recipe_for("simclr")
    assert pretraining_recipe(RunConfig(encoder="start.keras", recipe_kind="from-scratch"))[0] == recipe_for("simclr")
    assert pretraining_recipe(RunConfig(encoder="resnet18", recipe_kind="pretrained-start"))[0] == adapted
    with pytest.raises(InputError, match="--recipe 'fast': choose one of auto, pretrained-start, from-scratch"):
        pretraining_recipe(RunConfig(recipe_kind="fast"))
    # LARS (Barlow Twins) would normalise the encoder's lower rate away: the adapted recipe is SGD.
    assert for_pretrained_start(recipe_for("barlow")).optimizer == "sgd"


def test_a_pretrained_start_is_adapted_for_20_epochs_but_at_most_300_steps(capsys):
    from kssl.app.config import with_pretraining_length
    from kssl.defaults import steps_for

    def steps(config, images):
        config = dataclasses.replace(config, data="photos")  # not the embedded digits' 60 epochs
        return steps_for(with_pretraining_length(config, images).epochs, images, 256)

    assert steps(RunConfig(encoder="start.keras"), 50_000) == 300  # 20 epochs would be 3,906
    assert "at most 300 steps (20 epochs would be 3,906)" in capsys.readouterr().out
    assert steps(RunConfig(encoder="start.keras"), 2_934) == 229  # 20 epochs, no 2,000-step minimum
    assert steps(RunConfig(encoder="start.keras", recipe_kind="from-scratch"), 2_934) == 2_006
    assert steps(RunConfig(encoder="resnet18"), 2_934) == 2_006  # random weights: at least 2,000 steps
    assert steps(RunConfig(encoder="resnet18", recipe_kind="pretrained-start"), 50_000) == 300
    assert with_pretraining_length(RunConfig(encoder="start.keras", epochs=3), 50_000).epochs == 3  # as asked


def one_step(encoder_rate, frozen_batch_norm, rng):
    """The encoder's and the projection head's weights before and after one SGD step (no
    momentum, a constant rate) of SimCLR on a fixed batch."""
    encoder = keras.Model(*(lambda m: (m.input, m.get_layer("avg_pool").output))(small_start(8)))
    model = SimCLR(encoder, local_crops=0, encoder_rate=encoder_rate, frozen_batch_norm=frozen_batch_norm)
    model.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=True)
    views = tuple(rng.random((4, 8, 8, 3)).astype("float32") for _ in range(2))
    weights = lambda: ([w.numpy().copy() for w in model.encoder.weights],  # noqa: E731
                       [w.numpy().copy() for w in model.projection_head.weights])  # fmt: skip
    before = weights()
    model.train_step(views)
    after = weights()
    return model, before, after


def test_the_encoder_moves_at_its_rate_and_its_batch_norm_stays_frozen():
    full, before_full, after_full = one_step(1.0, False, np.random.default_rng(0))
    slow, before_slow, after_slow = one_step(0.1, True, np.random.default_rng(0))
    conv = [i for i, w in enumerate(slow.encoder.weights) if "stem_conv" in w.path and "kernel" in w.path][0]
    step_full = after_full[0][conv] - before_full[0][conv]
    step_slow = after_slow[0][conv] - before_slow[0][conv]
    assert np.abs(step_full).max() > 1e-4
    # Batch norm in inference mode changes the forward pass (and so the gradient) a little:
    # the encoder's step is a tenth of the one-rate step, not exactly.
    assert np.abs(step_slow).max() == pytest.approx(0.1 * np.abs(step_full).max(), rel=0.5)
    for index, weight in enumerate(slow.encoder.weights):  # scale, offset and statistics
        if "stem_bn" in weight.path:
            np.testing.assert_array_equal(after_slow[0][index], before_slow[0][index])
    assert any(not np.array_equal(a, b) for a, b in zip(after_slow[1], before_slow[1]))  # the head trains
    assert all(not layer.trainable for layer in batch_norm_layers(slow.encoder))
    restored = SimCLR.from_config(slow.get_config())
    assert restored.encoder_rate == 0.1 and restored.frozen_batch_norm


def test_the_encoder_rate_is_exactly_a_learning_rate_with_batch_norm_training():
    full, before_full, after_full = one_step(1.0, False, np.random.default_rng(1))
    slow, before_slow, after_slow = one_step(0.25, False, np.random.default_rng(1))
    paths = [weight.path for weight in slow.encoder.weights]
    encoders = zip(paths, before_full[0], after_full[0], before_slow[0], after_slow[0])
    for path, b_full, a_full, b_slow, a_slow in encoders:
        if "moving" in path:  # batch statistics: not learned, the same in both
            np.testing.assert_allclose(a_slow, a_full, atol=1e-6)
            continue
        np.testing.assert_allclose(a_slow - b_slow, 0.25 * (a_full - b_full), atol=1e-6)
    for b_full, a_full, b_slow, a_slow in zip(before_full[1], after_full[1], before_slow[1], after_slow[1]):
        np.testing.assert_allclose(a_slow - b_slow, a_full - b_full, atol=1e-6)


def run_from_a_start(tmp_path, per_class, size, labels, draws):
    """`(start, out)`: `kssl run` from a small `.keras` start on a two-class folder of photos."""
    start = tmp_path / "imagenet.keras"
    small_start().save(start)
    data = write_image_folder(tmp_path / "photos" / "train", classes=("a", "b"), per_class=per_class,
                              shapes=((20, 24),))  # fmt: skip
    write_image_folder(tmp_path / "photos" / "test", classes=("a", "b"), per_class=4, shapes=((20, 24),), seed=1)
    out = tmp_path / "run"
    assert main(["run", "--encoder", str(start), "--data", str(data.parent), "--image-size", str(size), "--epochs",
                 "1", "--batch-size", "8", "--finetune-epochs", "1", "--labels", str(labels), "--draws", str(draws),
                 "--modes", "linear", "--no-knn-monitor", "--no-tensorboard", "--out", str(out)]) == 0  # fmt: skip
    return start, out


@pytest.mark.eager_steps  # the command's plumbing: see conftest
def test_run_from_a_pretrained_start_measures_the_start_and_exports_its_classifier_when_chosen(
    tmp_path, capsys, monkeypatch
):
    # One run checks the measurements and the export of the start's classifier: the choice is
    # made to prefer it (which classifier the rule prefers is chosen_classifier's doctests).
    import kssl.app.label_budgets as label_budgets

    original = label_budgets.chosen_classifier

    def prefer_the_start(modes, propagation=None):
        mode, how, why = original(modes)
        return mode, "start", "the best validation accuracy"

    monkeypatch.setattr(label_budgets, "chosen_classifier", prefer_the_start)
    start, out = run_from_a_start(tmp_path, per_class=10, size=12, labels=5, draws=2)
    printed = capsys.readouterr().out
    assert "recipe: SGD" in printed and "the encoder at 0.01 of it, batch norm frozen" in printed
    assert "(for a pretrained start: the encoder brings weights" in printed
    assert printed.count("imagenet.keras: cut its classification head") == 1  # said once, where it is built
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["recipe_kind"] == "auto" and recorded["recipe"]["encoder_rate"] == 0.01  # the recipe used
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["start"]) == {"encoder", "knn_accuracy", "knn_k", "linear_probe_accuracy"}
    entry = metrics["label_budgets"][0]["modes"]["linear"]
    assert len(entry["draws"]) == 2 and all("start_accuracy" in draw for draw in entry["draws"])
    assert entry["start_accuracy"] == pytest.approx(np.mean([d["start_accuracy"] for d in entry["draws"]]))
    assert all(d["start_validation_accuracy"] is not None for d in entry["draws"])
    adaptation = metrics["adaptation"]
    assert adaptation["finetuned_gain"] == pytest.approx(entry["pretrained_accuracy"] - entry["start_accuracy"])
    assert adaptation["knn_gain"] == pytest.approx(metrics["knn_accuracy"] - metrics["start"]["knn_accuracy"])
    assert adaptation["line"] in printed and ("adaptation paid" in printed) == adaptation["paid"]
    assert adaptation["paid"] == (adaptation["finetuned_gain"] > 0 and not adaptation["within_spread"])
    assert "frozen features of the start as it came" in printed and "unadapted start (validation)" in printed
    # The start's classifier exported: its accuracies recorded, its encoder the start's, not the adapted one.
    exported = metrics["exported"]
    draw = entry["draws"][0]  # the first draw's classifier is the one saved
    assert exported["training"] == "start" and exported["accuracy"] == draw["start_accuracy"]
    assert exported["validation_accuracy"] == draw["start_validation_accuracy"]
    assert "classifier (fine-tuned from the unadapted start)" in printed
    kernel = lambda model: model.get_layer("stem_conv").kernel.numpy()  # noqa: E731
    exported_kernel = kernel(keras.saving.load_model(out / "classifier.keras").encoder)
    assert not np.array_equal(exported_kernel, kernel(keras.saving.load_model(out / "encoder.keras")))
    np.testing.assert_array_equal(exported_kernel, kernel(keras.saving.load_model(start)))  # linear: frozen


def test_from_scratch_is_the_start_s_architecture_with_fresh_weights(tmp_path):
    from kssl.app.label_budgets import _Finetuner
    from kssl.encoders.loading import load_encoder

    path = tmp_path / "imagenet.keras"
    small_start().save(path)
    start = load_encoder(str(path), 12)
    config = RunConfig(encoder=str(path), image_size=12)
    finetuner = _Finetuner(tmp_path, config, tf_default_strategy(), start, verbose=0, start=start)
    assert finetuner.starts == ("pretrained", "scratch", "start")
    kernel = lambda model: model.get_layer("stem_conv").kernel.numpy()  # noqa: E731
    scratch = finetuner.start("scratch")
    assert [layer.name for layer in scratch.layers] == [layer.name for layer in start.layers]
    assert not np.allclose(kernel(scratch), kernel(start))  # not the ImageNet weights again
    np.testing.assert_array_equal(kernel(finetuner.start("start")), kernel(start))


def tf_default_strategy():
    import tensorflow as tf

    return tf.distribute.get_strategy()


def test_pretraining_from_a_start_leaves_its_batch_norm_as_it_came():
    import kssl
    from kssl.training import pretrain

    images = kssl.load_digits(image_size=8).subset(range(32))
    encoder = kssl.resnet(10, width=0.125, image_size=8)
    layers = batch_norm_layers(encoder)
    layers[0].trainable = False  # frozen by the user: stays frozen
    before = [w.numpy().copy() for w in layers[1].weights]
    model, _ = pretrain(images, encoder, epochs=1, batch_size=16, verbose=0,
                        recipe=for_pretrained_start(recipe_for("simclr")))  # fmt: skip
    after = batch_norm_layers(model.encoder)
    assert [layer.trainable for layer in after] == [False] + [True] * (len(after) - 1)
    for old, new in zip(before, after[1].weights):  # frozen while it trained
        np.testing.assert_array_equal(old, new.numpy())

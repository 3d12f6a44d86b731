import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import all_weights, digits, tiny_encoder

from kssl.data.pipeline import labeled_batches
from kssl.encoders import vit
from kssl.finetuning.lora import LoRA, lora_capable_layers, merge_lora
from kssl.models import Classifier
from kssl.outputs.export import export_saved_model


@pytest.fixture(scope="module")
def labeled():
    return digits().subset(range(128))


def pretrained_like_encoder():
    """A tiny encoder whose residual branches are open: a fresh ResNet zero-initialises
    each block's last batch-norm gamma, which blocks every gradient into the branch
    while batch norm is frozen (a pretrained encoder's gammas are not zero)."""
    encoder = tiny_encoder()
    for weight in encoder.weights:
        if weight.path.endswith("gamma"):
            weight.assign(np.ones(weight.shape, "float32"))
    return encoder


def fit_briefly(classifier, labeled, steps=3):
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    classifier.fit(labeled_batches(labeled, 32, training=True, repeat=True), epochs=1, steps_per_epoch=steps, verbose=0)


def test_only_the_low_rank_factors_and_the_head_change_in_training(labeled):
    classifier = Classifier(pretrained_like_encoder(), num_classes=10, mode="lora", mode_options={"rank": 2})
    before = all_weights(classifier)
    fit_briefly(classifier, labeled)
    after = all_weights(classifier)
    moved = {path for path in before if not np.array_equal(before[path], after[path])}
    lora_paths = {path for path in before if "lora_kernel" in path}
    head_paths = {path for path in before if path.startswith("head/")}
    # Every B factor moves (they start at zero); A factors move once B is non-zero.
    assert {p for p in lora_paths if p.endswith("lora_kernel_b")} <= moved
    assert moved <= lora_paths | head_paths and head_paths <= moved
    assert not any("moving_mean" in path for path in moved)  # batch norm stays in inference mode


def test_every_convolution_and_dense_kernel_is_adapted_with_the_chosen_rank():
    encoder = tiny_encoder()
    Classifier(encoder, num_classes=3, mode="lora", mode_options={"rank": 3, "alpha": 6})
    layers = lora_capable_layers(encoder)
    assert len(layers) == sum(isinstance(layer, keras.layers.Conv2D) for layer in encoder.layers)
    assert all(layer.lora_enabled and layer.lora_rank == 3 and layer.lora_alpha == 6 for layer in layers)


def test_the_merged_model_gives_the_same_outputs_with_plain_layers(labeled, tmp_path):
    classifier = Classifier(
        pretrained_like_encoder(), num_classes=10, mode="lora", mode_options={"rank": 2, "alpha": 4}
    )
    fit_briefly(classifier, labeled)
    images = labeled.images[:8].astype("float32") / 255
    merged = classifier.merged()
    assert merged.mode == "full" and not any("lora" in v.path for v in merged.weights)
    np.testing.assert_allclose(merged.predict(images, verbose=0), classifier.predict(images, verbose=0), atol=2e-5)
    merged.save(tmp_path / "classifier.keras")
    loaded = keras.saving.load_model(tmp_path / "classifier.keras")
    assert not any("lora" in v.path for v in loaded.weights)
    export_saved_model(merged, tmp_path / "serving")
    served = tf.saved_model.load(str(tmp_path / "serving"))
    assert sorted(served.signatures) == ["embed", "predict_bytes", "predict_uint8", "serving_default"]
    outputs = served.signatures["serving_default"](images=tf.constant(images * 255))
    np.testing.assert_allclose(outputs["probabilities"], tf.nn.softmax(merged.predict(images, verbose=0)), atol=1e-5)


def test_lora_on_a_vit_adapts_the_dense_kernels_inside_its_blocks():
    encoder = vit(2, width=0.125, image_size=16)
    classifier = Classifier(encoder, num_classes=3, mode="lora", mode_options={"rank": 2})
    trainable = {v.path for v in classifier.optimized_variables}
    assert trainable and all("lora_kernel" in path or path.startswith("head/") for path in trainable)
    assert any("stage2_block" in path for path in trainable)
    images = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(merge_lora(classifier.encoder)(images), classifier.encoder(images), atol=1e-5)


def test_share_of_trainable_parameters_is_small_and_rank_must_be_positive():
    counts = Classifier(tiny_encoder(), num_classes=10, mode="lora", mode_options={"rank": 1}).parameter_counts()
    full = Classifier(tiny_encoder(), num_classes=10, mode="full").parameter_counts()
    assert counts["trainable"] < 0.1 * full["trainable"]
    assert counts["total"] == full["total"]
    with pytest.raises(ValueError, match="rank=0"):
        LoRA(rank=0)

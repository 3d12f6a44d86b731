import keras
import numpy as np
from helpers import all_weights, digits, tiny_encoder

from kssl.data.pipeline import labeled_batches
from kssl.layers.adapter import ResidualAdapter
from kssl.models import Classifier


def test_zero_initialised_adapters_leave_the_outputs_unchanged_at_start():
    encoder = tiny_encoder()
    images = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    expected = encoder(images, training=False)
    classifier = Classifier(encoder, num_classes=10, mode="adapter")
    adapters = [layer for layer in classifier.encoder.layers if isinstance(layer, ResidualAdapter)]
    assert [layer.name for layer in adapters] == ["adapter1", "adapter2", "adapter3", "adapter4"]
    np.testing.assert_array_equal(classifier.encoder(images, training=False), expected)


def test_only_adapters_and_head_train_and_the_classifier_round_trips(tmp_path):
    labeled = digits().subset(range(128))
    classifier = Classifier(tiny_encoder(), num_classes=10, mode="adapter", mode_options={"reduction": 2})
    before = all_weights(classifier)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    classifier.fit(labeled_batches(labeled, 32, training=True, repeat=True), epochs=1, steps_per_epoch=3, verbose=0)
    after = all_weights(classifier)
    moved = {path for path in before if not np.array_equal(before[path], after[path])}
    assert moved and all(path.startswith(("adapter", "head/")) for path in moved)
    assert {p for p in before if p.startswith("adapter") and p.endswith("up/kernel")} <= moved
    counts = classifier.parameter_counts()
    assert 0 < counts["share"] < 0.2
    classifier.save(tmp_path / "classifier.keras")
    loaded = keras.saving.load_model(tmp_path / "classifier.keras")
    images = labeled.images[:8].astype("float32") / 255
    assert sum(isinstance(layer, ResidualAdapter) for layer in loaded.encoder.layers) == 4  # not inserted twice
    np.testing.assert_allclose(loaded.predict(images, verbose=0), classifier.predict(images, verbose=0), atol=1e-6)

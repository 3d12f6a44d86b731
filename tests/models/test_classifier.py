import keras
import numpy as np
import pytest
from helpers import all_weights, digits, tiny_encoder

from kssl.data.pipeline import labeled_batches
from kssl.models import Classifier, SimCLR
from kssl.models.classifier import encoder_stages


@pytest.fixture(scope="module")
def labeled():
    return digits().subset(range(256))


def fit_briefly(classifier, labeled, steps=4):
    classifier.compile(optimizer=keras.optimizers.SGD(0.5))
    classifier.fit(labeled_batches(labeled, 32, training=True, repeat=True), epochs=1, steps_per_epoch=steps, verbose=0)


def changed(before, after):
    return {path for path in before if not np.array_equal(before[path], after[path])}


def test_linear_mode_leaves_every_encoder_weight_and_statistic_bit_identical(labeled):
    encoder = tiny_encoder()
    classifier = Classifier(encoder, num_classes=10, mode="linear")
    before_encoder, before_head = all_weights(encoder), all_weights(classifier.head)
    fit_briefly(classifier, labeled)
    assert changed(before_encoder, all_weights(encoder)) == set()
    assert changed(before_head, all_weights(classifier.head)) == set(before_head)
    assert any("moving_mean" in path for path in before_encoder)


def test_partial_mode_changes_exactly_the_last_stages(labeled):
    encoder = tiny_encoder()
    classifier = Classifier(encoder, num_classes=10, mode="partial", trainable_stages=1)
    before = all_weights(encoder)
    fit_briefly(classifier, labeled)
    moved = changed(before, all_weights(encoder))
    in_stage_4 = {path for path in before if "stage4_" in path}
    assert moved == in_stage_4  # kernels, gammas/betas and batch-norm statistics of stage 4 only


def test_full_mode_changes_every_encoder_weight(labeled):
    encoder = tiny_encoder()
    classifier = Classifier(encoder, num_classes=10, mode="full")
    before = all_weights(encoder)
    fit_briefly(classifier, labeled)
    assert changed(before, all_weights(encoder)) == set(before)


def test_l2_sp_pulls_weights_toward_their_pretrained_values(labeled):
    def drift(l2_sp):
        keras.utils.set_random_seed(1)
        encoder = tiny_encoder()
        start = [w.numpy() for w in encoder.trainable_weights]
        classifier = Classifier(encoder, num_classes=10, mode="full", l2_sp=l2_sp)
        assert float(classifier.l2_sp_penalty()) == 0.0
        fit_briefly(classifier, labeled, steps=6)
        if l2_sp:
            expected = l2_sp * sum(np.sum((w.numpy() - s) ** 2) for w, s in zip(encoder.trainable_weights, start))
            assert float(classifier.l2_sp_penalty()) == pytest.approx(expected, rel=1e-4)
        return sum(np.sum((w.numpy() - s) ** 2) for w, s in zip(encoder.trainable_weights, start))

    assert drift(0.5) < 0.5 * drift(0.0)


def test_classifier_reuses_the_pretrained_encoder_object():
    pretrained = SimCLR(tiny_encoder())
    classifier = Classifier(pretrained.encoder, num_classes=10)
    assert classifier.encoder is pretrained.encoder


def test_stages_and_partial_mode_errors():
    assert encoder_stages(tiny_encoder()) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="trainable_stages"):
        Classifier(tiny_encoder(), num_classes=10, mode="partial", trainable_stages=5)
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="named by stage"):
        Classifier(plain, num_classes=2, mode="partial")
    with pytest.raises(ValueError, match="mode"):
        Classifier(plain, num_classes=2, mode="frozen")
    with pytest.raises(ValueError, match="num_classes"):
        Classifier(plain, num_classes=1)


def test_fit_evaluate_predict_and_keras_round_trip(tmp_path, labeled):
    classifier = Classifier(tiny_encoder(), num_classes=10, mode="partial", l2_sp=0.01, class_names=list("0123456789"))
    fit_briefly(classifier, labeled)
    results = classifier.evaluate(labeled_batches(labeled, 64), return_dict=True, verbose=0)
    assert set(results) >= {"loss", "accuracy"}
    images = labeled.images[:16].astype("float32") / 255.0
    classifier.save(tmp_path / "classifier.keras")
    loaded = keras.saving.load_model(tmp_path / "classifier.keras")
    assert loaded.mode == "partial" and loaded.class_names == list("0123456789")
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), classifier.predict(images, verbose=0))
    assert [w.trainable for w in loaded.encoder.layers] == [w.trainable for w in classifier.encoder.layers]

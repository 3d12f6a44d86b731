import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import digits, tiny_encoder

from kssl.data.pipeline import labeled_batches
from kssl.finetuning.adversarial import AdversarialTraining, evaluate_robustness, fgsm, pgd
from kssl.models import Classifier
from kssl.training import finetune


def small_model():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(4),
        ]
    )


def test_fgsm_equals_a_plain_tensorflow_re_derivation(rng):
    model = small_model()
    images = rng.random((5, 6, 6, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3, 0])
    epsilon = 8 / 255
    # Independent: explicit softmax cross-entropy, gradient by tf.GradientTape on the weights' math.
    w1, b1, w2, b2 = [tf.constant(w) for w in model.get_weights()]
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = tf.tanh(tf.reshape(x, (5, -1)) @ w1 + b1) @ w2 + b2
        loss = -tf.reduce_sum(tf.gather(tf.nn.log_softmax(logits), labels, batch_dims=1))
    expected = np.clip(images + epsilon * np.sign(tape.gradient(loss, x).numpy()), 0, 1)
    np.testing.assert_array_equal(fgsm(model, images, labels, epsilon).numpy(), expected)


def test_attacks_stay_in_the_epsilon_ball_and_the_pixel_range_and_flip_predictions(rng):
    model = small_model()
    images = rng.random((64, 6, 6, 3)).astype("float32")
    images[:8] = 0.0  # the clipping at 0 matters
    labels = np.argmax(model.predict(images, verbose=0), axis=1)  # all correct before the attack
    epsilon = 0.05
    for adversarial in (
        fgsm(model, images, labels, epsilon),
        pgd(model, images, labels, epsilon, 7, 0.02, seed=[1, 2]),
    ):
        adversarial = adversarial.numpy()
        assert np.abs(adversarial - images).max() <= epsilon + 1e-6
        assert adversarial.min() >= 0 and adversarial.max() <= 1

    def accuracy(x):
        return np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == labels)

    assert accuracy(pgd(model, images, labels, epsilon, 7, 0.02, seed=[1, 2])) < 0.5
    assert accuracy(fgsm(model, images, labels, epsilon)) < 0.5
    np.testing.assert_array_equal(
        pgd(model, images, labels, epsilon, 3, seed=[4, 5]), pgd(model, images, labels, epsilon, 3, seed=[4, 5])
    )


def test_robust_accuracy_of_a_standard_model_is_lower_than_its_clean_accuracy():
    train, test = digits().subset(range(256)), digits("test").subset(range(128))
    classifier, _ = finetune(tiny_encoder(), train, mode="full", epochs=8, batch_size=32, verbose=0)
    results = evaluate_robustness(classifier, test, epsilon=8 / 255, steps=5)
    assert results["clean_accuracy"] > 0.2  # chance is 0.1
    assert results["robust_accuracy"] < results["clean_accuracy"]


def test_adversarial_training_step_trains_on_adversarial_or_mixed_batches():
    labeled = digits().subset(range(64))
    seen = []

    class Recording(Classifier):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            seen.append(x)
            return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    for mix, expected_batch in ((False, 32), (True, 64)):
        seen.clear()
        classifier = Recording(
            tiny_encoder(), num_classes=10, mode="full", adversarial={"attack": "fgsm", "epsilon": 0.1, "mix": mix}
        )
        classifier.compile(optimizer="adam", run_eagerly=True)
        batch = next(iter(labeled_batches(labeled, 32, training=True, seed=0)))
        classifier.train_on_batch(*batch)
        assert seen[-1].shape[0] == expected_batch
        difference = np.abs(seen[-1][-32:].numpy() - batch[0].numpy())
        assert 0.09 < difference.max() <= 0.1 + 1e-6  # the adversarial half moved by epsilon


def test_pgd_training_runs_in_keras_compiled_train_step():
    labeled = digits().subset(range(64))
    classifier = Classifier(tiny_encoder(), num_classes=10, mode="full", adversarial={"epsilon": 0.03, "steps": 3})
    classifier.compile(optimizer="adam")  # a compiled (graph) train step, as fit runs it
    data = labeled_batches(labeled, 32, training=True, repeat=True)
    history = classifier.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and classifier.optimizer.iterations.numpy() == 2


def test_epsilon_and_attack_are_checked():
    with pytest.raises(ValueError, match="epsilon=1.5"):
        AdversarialTraining(epsilon=1.5)
    with pytest.raises(ValueError, match="attack"):
        AdversarialTraining(attack="cw")


def test_the_robustness_attack_traces_once_for_every_batch_and_a_smaller_last_one(rng, monkeypatch):
    import kssl.finetuning.adversarial as adversarial

    traces = []

    def counting_pgd(*args, **kwargs):
        traces.append(1)  # Python runs only while tracing
        return pgd(*args, **kwargs)

    monkeypatch.setattr(adversarial, "pgd", counting_pgd)
    images = rng.random((10, 6, 6, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)  # 4, 4 and 2 images
    results = evaluate_robustness(small_model(), batches, epsilon=8 / 255, steps=2)
    assert len(traces) == 1
    assert 0 <= results["robust_accuracy"] <= 1 and 0 <= results["clean_accuracy"] <= 1

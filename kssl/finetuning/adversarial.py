"""Adversarial examples and adversarial fine-tuning (FGSM and PGD in pixel space [0, 1]).

FGSM (Goodfellow et al. 2015) takes one step of size epsilon along the sign of the
loss gradient; PGD (Madry et al. 2018) starts at a random point of the epsilon ball
(L-infinity) and takes `steps` signed steps of `step_size`, projecting back onto the
ball and the valid pixel range after each. Attacks run the model in inference mode, so
batch-norm statistics do not move while an attack is computed.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from kssl import defaults
from kssl.finetuning import ATTACKS  # noqa: F401  (re-exported)


def _loss_gradient(model, images, labels):
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = tf.cast(model(images, training=False), tf.float32)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    return tape.gradient(loss, images)


def fgsm(model, images, labels, epsilon: float):
    """`clip(x + epsilon * sign(grad_x loss(model(x), y)), 0, 1)`.

    Examples:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False)])
        >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]], "float32")])
        >>> fgsm(model, tf.constant([[0.5, 0.5]]), tf.constant([0]), 0.1).numpy()  # away from class 0
        array([[0.4, 0.5]], dtype=float32)
    """
    images = tf.convert_to_tensor(images, tf.float32)
    gradient = _loss_gradient(model, images, labels)
    return tf.clip_by_value(images + epsilon * tf.sign(gradient), 0.0, 1.0)


def pgd(
    model, images, labels, epsilon: float, steps: int = defaults.ATTACK_STEPS, step_size: float | None = None, seed=None
):
    """Projected gradient descent in the L-infinity ball of radius `epsilon` around
    `images`, intersected with [0, 1]; `seed` (two integers) seeds the random start,
    `seed=None` starts at the images themselves.

    `step_size` defaults to `2.5 * epsilon / steps` (Madry et al.'s choice).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    adversarial = images
    if seed is not None:
        noise = tf.random.stateless_uniform(tf.shape(images), seed=seed, minval=-epsilon, maxval=epsilon)
        adversarial = tf.clip_by_value(images + noise, 0.0, 1.0)

    def step(index, adversarial):
        gradient = _loss_gradient(model, adversarial, labels)
        adversarial = adversarial + step_size * tf.sign(gradient)
        adversarial = tf.clip_by_value(adversarial, images - epsilon, images + epsilon)
        return index + 1, tf.clip_by_value(adversarial, 0.0, 1.0)

    # A graph loop (Keras traces train steps without AutoGraph): 10 steps trace as one.
    _, adversarial = tf.while_loop(lambda index, _: index < steps, step, (tf.constant(0), adversarial))
    return adversarial


def check_epsilon(epsilon) -> float:
    """`epsilon` as a float, or a `ValueError` if it is outside [0, 1]."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 <= epsilon <= 1:
        raise ValueError(
            f"epsilon is a pixel distance in [0, 1] (images are in [0, 1]; 8/255 = 0.031 is usual). "
            f"Received: epsilon={epsilon!r}"
        )
    return float(epsilon)


@dataclasses.dataclass
class AdversarialTraining:
    """Adversarial fine-tuning: each training batch is replaced by (or, with `mix`,
    extended with) its adversarial examples, computed inside the train step.

    Args:
        attack: `"fgsm"` or `"pgd"`.
        epsilon: L-infinity radius in pixel units of [0, 1] (8/255 by default).
        steps: PGD steps (7 by default; FGSM takes one).
        step_size: PGD step (default `2.5 * epsilon / steps`; 2/255 at the defaults).
        mix: train on clean and adversarial images together (a batch twice as large).
        seed: seeds PGD's random starts (with the step number).
    """

    attack: str = "pgd"
    epsilon: float = defaults.ADVERSARIAL_EPSILON
    steps: int = defaults.ATTACK_STEPS
    step_size: float | None = None
    mix: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}. Received: attack={self.attack!r}")
        self.epsilon = check_epsilon(self.epsilon)
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1. Received: steps={self.steps!r}")

    def perturb(self, model, images, labels, step):
        if self.attack == "fgsm":
            return fgsm(model, images, labels, self.epsilon)
        replica = 0
        context = tf.distribute.get_replica_context()
        if context is not None:  # replicas start from different points
            replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
        seed = tf.stack([tf.cast(self.seed * 7919 + replica, tf.int64), tf.cast(step, tf.int64)])
        return pgd(model, images, labels, self.epsilon, self.steps, self.step_size, seed=seed)

    def get_config(self):
        return dataclasses.asdict(self)


def evaluate_robustness(
    model,
    data,
    epsilon: float = defaults.ADVERSARIAL_EPSILON,
    steps: int = 10,
    step_size: float | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> dict:
    """Clean accuracy and accuracy under a PGD attack with a random start (Madry et al.).

    Args:
        model: a classifier mapping [0, 1] images to logits (a `kssl.Classifier`).
        data: a labeled `ImageSet`, or a dataset of `(images in [0, 1], labels)` batches.
        epsilon: L-infinity radius in [0, 1] (default 8/255).
        steps: PGD steps (default 10, "PGD-10").
        step_size: PGD step (default `2.5 * epsilon / steps`).

    Returns:
        `{"clean_accuracy": ..., "robust_accuracy": ..., "epsilon": ..., "steps": ...}`.
    """
    from kssl.data.pipeline import labeled_batches

    epsilon = check_epsilon(epsilon)
    batches = labeled_batches(data, batch_size) if hasattr(data, "images") else data

    # One trace for every batch: the batch index is a tensor and the batch dimension is
    # left open, so neither the index nor a smaller last batch traces the attack again.
    def open_batch(spec):
        return tf.TensorSpec([None, *spec.shape[1:]], spec.dtype)

    signature = [*map(open_batch, batches.element_spec), tf.TensorSpec([], tf.int64)]

    @tf.function(input_signature=signature, autograph=False)  # tf.while_loop: no AutoGraph needed
    def attack(images, labels, index):
        seed_pair = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
        adversarial = pgd(model, images, labels, epsilon, steps, step_size, seed=seed_pair)
        clean = tf.argmax(tf.cast(model(images, training=False), tf.float32), axis=-1)
        robust = tf.argmax(tf.cast(model(adversarial, training=False), tf.float32), axis=-1)
        labels = tf.cast(labels, tf.int64)
        return tf.reduce_sum(tf.cast(clean == labels, tf.int64)), tf.reduce_sum(tf.cast(robust == labels, tf.int64))

    clean = robust = total = 0
    for index, (images, labels) in enumerate(batches):
        batch_clean, batch_robust = attack(images, labels, tf.constant(index, tf.int64))
        clean += int(batch_clean)
        robust += int(batch_robust)
        total += int(np.shape(labels)[0])
    return {"clean_accuracy": clean / total, "robust_accuracy": robust / total, "epsilon": epsilon, "steps": steps}

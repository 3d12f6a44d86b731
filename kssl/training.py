"""One-call training recipes over `ImageSet`s: SimCLR pretraining and fine-tuning.

Both run `model.fit` over one long epoch of a repeated dataset. Many short epochs
cost this machine 9-12 s of idle time at each epoch start (iterator and prefetch
threads restarting); one epoch with `steps_per_epoch` set does not, and the progress
bar still shows steps, loss and ETA.
"""

from __future__ import annotations

import keras

from kssl.callbacks import TimeBudget
from kssl.data.augment import ViewAugmentation
from kssl.data.pipeline import labeled_batches, view_pairs
from kssl.data.sources import ImageSet
from kssl.models.classifier import Classifier
from kssl.models.simclr import SimCLR
from kssl.schedules import warmup_cosine


def _steps_for(epochs, size, batch_size):
    if epochs is None or not epochs > 0:
        raise ValueError(f"epochs must be > 0. Received: epochs={epochs!r}")
    return max(1, int(round(epochs * size / batch_size)))


def pretrain(
    image_set: ImageSet,
    encoder: keras.Model,
    epochs: float | None = 10,
    budget_minutes: float | None = None,
    batch_size: int = 256,
    temperature: float = 0.2,
    learning_rate: float | None = None,
    augmentation: ViewAugmentation | None = None,
    probe: bool = False,
    seed: int = 0,
    callbacks=(),
    verbose: int | str = "auto",
):
    """Pretrains `encoder` with SimCLR on `image_set` (labels unused unless `probe`).

    Optimizer: SGD with Nesterov momentum 0.9, weight decay 5e-4 (not on batch norm
    or biases), peak learning rate `0.3 * batch_size / 256` (SimCLR's scaling rule)
    reached by a linear warmup over the first 5% and followed by a cosine decay to 0.

    Args:
        image_set: the images.
        encoder: the encoder to train (modified in place).
        epochs: passes over the images; ignored when `budget_minutes` is set.
        budget_minutes: train for this much wall-clock time instead; the learning-rate
            schedule then runs on elapsed time (see `TimeBudget`).
        batch_size: images per batch (2x views).
        temperature: NT-Xent temperature.
        learning_rate: peak learning rate (default above).
        augmentation: view transform (default `ViewAugmentation` at the encoder's size).
        probe: train an online linear probe on the labels and report its accuracy.
        seed: data order and augmentation seed.

    Returns:
        `(model, history)`: the trained `SimCLR` model and Keras' `History`.
    """
    size = encoder.input_shape[1]
    augmentation = augmentation or ViewAugmentation(size)
    model = SimCLR(encoder, temperature=temperature, probe_classes=image_set.num_classes if probe else None)
    peak = learning_rate or 0.3 * batch_size / 256
    callbacks = list(callbacks)
    if budget_minutes is not None:
        budget = TimeBudget(budget_minutes, peak_learning_rate=peak)
        callbacks.append(budget)
        rate, steps = peak, None  # the budget stops the one open-ended epoch
    else:
        steps = _steps_for(epochs, len(image_set), batch_size)
        rate = warmup_cosine(peak, steps, warmup_steps=int(0.05 * steps))
    optimizer = keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, weight_decay=5e-4)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(optimizer=optimizer)
    pairs = view_pairs(image_set, batch_size, augmentation, seed=seed, with_labels=probe)
    history = model.fit(pairs, epochs=1, steps_per_epoch=steps, callbacks=callbacks, verbose=verbose, shuffle=False)
    return model, history


def finetune(
    encoder: keras.Model,
    labeled_set: ImageSet,
    mode: str = "full",
    epochs: float = 30,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    trainable_stages: int = 1,
    l2_sp: float = 0.0,
    validation_set: ImageSet | None = None,
    seed: int = 0,
    callbacks=(),
    verbose: int | str = "auto",
):
    """Trains a `Classifier` on `encoder` with a (small) labeled set.

    Adam with a cosine-decayed learning rate; training batches are lightly augmented
    (random resized crop of 25-100% and flips). A small set gives few steps per epoch,
    so `epochs` counts passes over the labeled images, run as one long `fit` epoch.

    Returns:
        `(classifier, history)`.
    """
    classifier = Classifier(
        encoder,
        num_classes=labeled_set.num_classes,
        mode=mode,
        trainable_stages=trainable_stages,
        l2_sp=l2_sp,
        class_names=labeled_set.class_names,
    )
    batch_size = min(batch_size, len(labeled_set))
    steps = _steps_for(epochs, len(labeled_set), batch_size)
    classifier.compile(optimizer=keras.optimizers.Adam(warmup_cosine(learning_rate, steps)))
    data = labeled_batches(labeled_set, batch_size, training=True, seed=seed, repeat=True)
    validation = labeled_batches(validation_set, 256) if validation_set is not None else None
    history = classifier.fit(
        data,
        epochs=1,
        steps_per_epoch=steps,
        validation_data=validation,
        callbacks=list(callbacks),
        verbose=verbose,
        shuffle=False,
    )
    return classifier, history

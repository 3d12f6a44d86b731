"""Re-estimating an encoder's batch-norm statistics on the images it will be used on.

SimCLR trains on augmented views (colour-jittered, grayscale, often rendered smaller than
the stored images), so the moving means and variances in its batch-norm layers describe
those views, not the clean full-size images that evaluation and fine-tuning feed it.
`recalibrate_batch_norm` replaces them with the average of per-batch statistics over
clean images at the encoder's input size ("precise BN", Wu & Johnson 2021,
https://arxiv.org/abs/2105.07576; FixRes, Touvron et al. 2019, adapts them to a new
resolution for the same reason). It needs no labels and changes no weights.
"""

from __future__ import annotations

import keras
import numpy as np


def batch_norm_layers(model) -> list:
    """Every `keras.layers.BatchNormalization` (and subclass) inside `model`, nested ones included."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(encoder, images, batches: int = 100, batch_size: int = 256, seed: int = 0) -> int:
    """Sets each batch-norm layer's moving statistics to their average over clean batches.

    Runs `encoder` in training mode (batch statistics) over `batches` random batches of
    `images` (uint8 `(N, S, S, 3)` or an `ImageSet`, resized to the encoder's input size)
    and makes each moving mean and variance the plain average of the batch values
    it saw. Gradients are not computed and no weight changes; frozen (`trainable=False`)
    layers are recalibrated too and stay frozen.

    Returns:
        the number of batch-norm layers recalibrated.

    Example:
    >>> import kssl
    >>> encoder = kssl.resnet(18, width=0.125, image_size=16, stem="cifar")
    >>> digits = kssl.load_digits(image_size=16)
    >>> recalibrate_batch_norm(encoder, digits, batches=2, batch_size=64)
    20
    """
    import tensorflow as tf

    images = np.asarray(getattr(images, "images", images))
    if batches < 1 or batch_size < 1:
        raise ValueError(f"batches and batch_size must be >= 1. Received: batches={batches}, batch_size={batch_size}")
    if len(images) == 0:
        raise ValueError("recalibrate_batch_norm needs at least one image; received none.")
    layers = batch_norm_layers(encoder)
    saved = [(layer, layer.momentum, layer.trainable) for layer in layers]
    size = encoder.input_shape[1]
    rng = np.random.default_rng(seed)
    try:
        for layer in layers:
            layer.trainable = True  # Keras runs frozen batch norm in inference mode
        for index in range(batches):
            # Cumulative average: the i-th batch (from 0) gets weight 1 / (i + 1).
            for layer in layers:
                layer.momentum = index / (index + 1)
            chosen = rng.choice(len(images), size=min(batch_size, len(images)), replace=False)
            batch = tf.cast(tf.constant(images[np.sort(chosen)]), tf.float32) / 255.0
            if size is not None and batch.shape[1] != size:
                batch = tf.image.resize(batch, (size, size))
            encoder(batch, training=True)  # eager: each call reads the momentum set above
    finally:
        for layer, momentum, trainable in saved:
            layer.momentum = momentum
            layer.trainable = trainable
    return len(layers)

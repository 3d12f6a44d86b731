"""MAE: hide 75% of a ViT's patches, encode the rest, and reconstruct the hidden pixels."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from kssl.errors import InputError
from kssl.layers.transformer import PatchEmbedding, TransformerBlock, sincos_positions
from kssl.losses import masked_patch_mse
from kssl.models.base import SelfSupervisedModel, ViewsLoss
from kssl.runtime import distribute


@keras.saving.register_keras_serializable(package="kssl")
class MAEDecoder(keras.layers.Layer):
    """MAE's light decoder: embeds the visible tokens, puts a learned mask token at every
    hidden position, adds sine-cosine positions, runs `depth` transformer blocks and
    predicts each patch's `patch_pixels` values.

    Args:
        num_patches: patches per image (a square grid).
        patch_pixels: values per patch, `p * p * 3`.
        width, depth, heads: the decoder's token width, blocks and attention heads
            (paper: 512, 8, 16 for ViT-L; kssl's default 128, 2, 4 for small ViTs).
    """

    def __init__(self, num_patches, patch_pixels, width=128, depth=2, heads=4, **kwargs):
        super().__init__(**kwargs)
        self.num_patches = int(num_patches)
        self.patch_pixels = int(patch_pixels)
        self.width = int(width)
        self.depth = int(depth)
        self.heads = int(heads)
        grid = round(self.num_patches**0.5)
        if grid * grid != self.num_patches:
            raise ValueError(f"num_patches must be a square grid. Received: num_patches={num_patches}")
        self.positions = sincos_positions(grid, self.width)
        self.embed = layers.Dense(self.width, name="embed")
        self.blocks = [TransformerBlock(self.heads, name=f"block_{index}") for index in range(self.depth)]
        self.norm = layers.LayerNormalization(epsilon=1e-6, name="norm")
        self.predict_pixels = layers.Dense(self.patch_pixels, name="predict_pixels")

    def build(self, visible_tokens_shape, restore_ids_shape=None):
        self.embed.build(visible_tokens_shape)
        self.mask_token = self.add_weight(
            shape=(self.width,), initializer=keras.initializers.RandomNormal(stddev=0.02), name="mask_token"
        )
        shape = (None, self.num_patches, self.width)
        for block in self.blocks:
            block.build(shape)
        self.norm.build(shape)
        self.predict_pixels.build(shape)

    def call(self, visible_tokens, restore_ids, training=None):
        """`visible_tokens` `(B, K, D)` encoded visible patches in shuffled order;
        `restore_ids` `(B, P)` the position in that order of each patch (hidden ones
        >= K). Returns `(B, P, patch_pixels)`."""
        x = self.embed(visible_tokens)
        batch, visible = ops.shape(x)[0], ops.shape(x)[1]
        hidden = ops.broadcast_to(ops.cast(self.mask_token, x.dtype), (batch, self.num_patches - visible, self.width))
        x = ops.concatenate([x, hidden], axis=1)
        x = ops.take_along_axis(x, ops.expand_dims(restore_ids, -1), axis=1)
        x = x + ops.cast(self.positions, x.dtype)
        for block in self.blocks:
            x = block(x, training=training)
        return self.predict_pixels(self.norm(x))

    def get_config(self):
        return {
            **super().get_config(),
            "num_patches": self.num_patches,
            "patch_pixels": self.patch_pixels,
            "width": self.width,
            "depth": self.depth,
            "heads": self.heads,
        }


@keras.saving.register_keras_serializable(package="kssl")
class MAE(SelfSupervisedModel):
    """Masked autoencoder: masked patch prediction with a ViT encoder.

    Every view is an independent example: its patches are shuffled at random, the
    encoder's patch embedding and blocks see only the first `1 - mask_ratio` of them, and
    the decoder (`MAEDecoder`) reconstructs the pixels of the hidden ones; the loss is
    their mean squared error against the per-patch normalised pixels
    (`kssl.losses.masked_patch_mse`). The encoder stays a plain kssl encoder: on whole
    images (kNN, linear probe, `Classifier`, export) it sees every patch.

    Masks are drawn from `seed` and the optimizer's step for the whole global batch, and
    each replica takes its own rows, so several replicas compute what one device does
    and a resumed run draws the masks of an uninterrupted one.

    Args:
        encoder: a `kssl.encoders.vit` encoder (MAE needs its patch embedding and blocks).
        decoder: default `MAEDecoder(P, p * p * 3)` (width 128, 2 blocks).
        mask_ratio: share of the patches hidden, in (0, 1) (paper: 0.75).
        normalize_targets: regress per-patch normalised pixels (paper: yes).
        seed: seed of the random masks.
        probe_classes: see `SelfSupervisedModel`; MAE's online probe sees the mean of
            the encoded *visible* patches.

    Views: a random resized crop (20-100% of the area) and a flip, no colour changes (the
    paper's augmentation); both views of an image are used, as two examples.

    Examples:
        >>> import numpy as np
        >>> from kssl.encoders import vit
        >>> model = MAE(vit(depth=1, width=1 / 12, image_size=16))
        >>> model.compile(optimizer="adamw")
        >>> views = np.random.rand(2, 4, 16, 16, 3).astype("float32")
        >>> sorted(model.train_on_batch(tuple(views), return_dict=True))  # one step: its metrics
        ['loss']

    Reference:
        He et al. 2022, https://arxiv.org/abs/2111.06377.
    """

    nested_layers = ("decoder",)
    min_batch = 1  # the loss is each image's own reconstruction

    def __init__(
        self, encoder, decoder=None, mask_ratio=0.75, normalize_targets=True, seed=0, probe_classes=None, **kwargs
    ):
        super().__init__(encoder, probe_classes=probe_classes, **kwargs)
        embedding = [layer for layer in encoder.layers if isinstance(layer, PatchEmbedding)]
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1). Received: mask_ratio={mask_ratio!r}")
        self.mask_ratio = float(mask_ratio)
        self.normalize_targets = bool(normalize_targets)
        self.seed = int(seed)
        self.patch_size = embedding[0].patch_size
        self.num_patches = (int(encoder.input_shape[1]) // self.patch_size) ** 2
        self.visible_patches = int(round(self.num_patches * (1 - self.mask_ratio)))
        if not 1 <= self.visible_patches < self.num_patches:
            raise ValueError(
                f"mask_ratio={mask_ratio} leaves {self.visible_patches} of {self.num_patches} patches visible; "
                "at least one patch must be visible and one hidden."
            )
        self.decoder = decoder or MAEDecoder(self.num_patches, self.patch_size**2 * 3)
        if not self.decoder.built:
            self.decoder.build((None, self.visible_patches, self.feature_dim), (None, self.num_patches))

    @classmethod
    def check_encoder(cls, encoder) -> None:
        super().check_encoder(encoder)
        if not any(isinstance(layer, PatchEmbedding) for layer in encoder.layers):
            raise InputError(
                f"MAE needs a ViT encoder built by kssl.encoders.vit (--encoder vit6 on the command line); "
                f"{encoder.name!r} has no PatchEmbedding layer."
            )

    @classmethod
    def view_augmentations(cls, image_size: int, **options):
        """MAE's views: random resized crop of 20-100% of the area and a flip, nothing else."""
        from kssl.data.augment import ViewAugmentation

        augmentation = ViewAugmentation(
            image_size, crop_area=(0.2, 1.0), jitter_probability=0.0, grayscale_probability=0.0, blur_probability=0.0
        )
        return [augmentation, augmentation]

    def _encoder_parts(self):
        parts = {"blocks": []}
        for layer in self.encoder.layers:
            if isinstance(layer, PatchEmbedding):
                parts["embedding"] = layer
            elif isinstance(layer, TransformerBlock):
                parts["blocks"].append(layer)
            elif isinstance(layer, keras.layers.LayerNormalization):
                parts["norm"] = layer
        return parts

    def _mask_noise(self, local_images, views: int = 2):
        """`(views * local_images, P)` uniform noise for this replica's images (every view),
        cut from the global batch's noise, which depends only on `seed` and the step."""
        optimizer = getattr(self, "optimizer", None)
        step = optimizer.iterations if optimizer is not None else 0
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
        total = distribute.global_sum(local_images)
        offset = distribute.local_offset(local_images)
        # Philox on every device (the default picks by device), so any hardware draws the same masks.
        noise = tf.random.stateless_uniform(tf.stack([views, total, self.num_patches]), seed=seed, alg="philox")
        return tf.reshape(noise[:, offset : offset + local_images], [views * local_images, self.num_patches])

    def views_loss(self, views, training):
        parts = self._encoder_parts()
        images = tf.concat(list(views), axis=0)
        tokens = parts["embedding"](images)
        order = tf.argsort(self._mask_noise(tf.shape(views[0])[0], len(views)), axis=1)  # visible patches first
        restore = tf.argsort(order, axis=1)
        visible = tf.gather(tokens, order[:, : self.visible_patches], batch_dims=1)
        for block in parts["blocks"]:
            visible = block(visible, training=training)
        visible = parts["norm"](visible)
        predictions = self.decoder(visible, restore, training=training)
        hidden = tf.cast(restore >= self.visible_patches, tf.float32)
        losses = masked_patch_mse(predictions, images, hidden, self.patch_size, self.normalize_targets)
        return ViewsLoss(
            loss=distribute.global_mean(losses),
            metrics={"loss": tf.reduce_mean(losses)},
            features=tf.reduce_mean(visible, axis=1),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "mask_ratio": self.mask_ratio,
            "normalize_targets": self.normalize_targets,
            "seed": self.seed,
        }

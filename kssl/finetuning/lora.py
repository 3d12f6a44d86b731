"""LoRA: low-rank updates of the encoder's kernels, with everything else frozen.

Keras' own `enable_lora(rank, lora_alpha)` (Dense, EinsumDense and Conv*D, Keras >= 3.3)
does the work: the kernel freezes and `W + (alpha / rank) * A @ B` is used in the
forward pass, with B zero-initialised so training starts from the pretrained function.
"""

from __future__ import annotations

import copy

import keras

from kssl.finetuning.base import FineTuningMode


def lora_capable_layers(model) -> list:
    """The layers (nested ones too) with a kernel Keras can adapt with `enable_lora`."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if hasattr(layer, "enable_lora") and getattr(layer, "kernel", None) is not None
    ]


def _strip_lora(config):
    """A copy of a serialized model config with every layer's LoRA settings removed."""
    if isinstance(config, dict):
        return {k: _strip_lora(v) for k, v in config.items() if k not in ("lora_rank", "lora_alpha")}
    if isinstance(config, list):
        return [_strip_lora(v) for v in config]
    return config


def merge_lora(model):
    """A copy of `model` with plain layers whose kernels hold `W + (alpha / rank) A @ B`.

    The merged model computes the same function with no LoRA weights, so serving it
    costs what the original encoder costs. Keras' `save_own_variables` of a LoRA layer
    already writes the merged kernel; the copy loads exactly that.

    Examples:
        >>> import numpy as np
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> model.layers[0].enable_lora(2)
        >>> _ = model.layers[0].lora_kernel_b.assign(np.ones((2, 3)))
        >>> merged = merge_lora(model)
        >>> merged.layers[0].lora_enabled, len(merged.weights), len(model.weights)
        (False, 2, 4)
        >>> x = np.ones((1, 4), "float32")
        >>> bool(np.allclose(merged(x), model(x), atol=1e-5))
        True
    """
    config = _strip_lora(copy.deepcopy(keras.saving.serialize_keras_object(model)))
    plain = keras.saving.deserialize_keras_object(config)
    for source, target in zip(model._flatten_layers(), plain._flatten_layers()):
        store = {}
        source.save_own_variables(store)
        target.load_own_variables(store)
    plain.trainable = model.trainable
    for source, target in zip(model._flatten_layers(include_self=False), plain._flatten_layers(include_self=False)):
        target.trainable = source.trainable
    return plain


class LoRA(FineTuningMode):
    """Low-rank adaptation of every convolution and dense kernel of the encoder.

    Only the low-rank factors (and the classifier's head) train; kernels, biases and
    batch norm stay frozen (batch norm in inference mode). `merged` folds the updates
    into plain kernels for saving and serving.

    Args:
        rank: rank of the updates, >= 1.
        alpha: the updates are scaled by `alpha / rank` (default: `rank`, a scale of 1).

    Reference:
        Hu et al. 2022, LoRA: Low-Rank Adaptation of Large Language Models,
        https://arxiv.org/abs/2106.09685.
    """

    # Measured on CIFAR-10 (BENCHMARKS.md, issue 12): 3e-3 gave LoRA 4.6-5.5 points more
    # than 1e-3 at 1% and 10% of the labels, while full fine-tuning did not gain from it.
    default_learning_rate = 3e-3

    def __init__(self, rank: int = 8, alpha: float | None = None):
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise ValueError(f"LoRA rank must be an integer >= 1. Received: rank={rank!r}")
        if alpha is not None and not alpha > 0:
            raise ValueError(f"LoRA alpha must be > 0. Received: alpha={alpha!r}")
        self.rank = rank
        self.alpha = alpha

    def adapt(self, encoder):
        layers = lora_capable_layers(encoder)
        if not layers:
            raise ValueError(f"mode='lora' found no convolution or dense layer in {encoder.name!r}.")
        for layer in layers:
            if not layer.lora_enabled:  # a loaded classifier's layers come back with LoRA on
                # A rank above a layer's own dimensions would be no update at all.
                layer.enable_lora(self.rank, lora_alpha=self.alpha)
        return encoder

    def set_trainable(self, encoder):
        encoder.trainable = True
        lora_layers = {id(layer) for layer in lora_capable_layers(encoder)}
        for layer in encoder._flatten_layers(include_self=False):
            is_leaf = not any(True for _ in layer._flatten_layers(include_self=False))
            if is_leaf and id(layer) not in lora_layers:
                layer.trainable = False  # batch norm in inference mode too
        # enable_lora froze the kernels; biases (and a parent layer's own weights)
        # freeze too, so only A and B train.
        for weight in encoder.trainable_weights:
            if "lora_kernel" not in weight.path:
                weight.trainable = False

    def merged(self, encoder):
        return merge_lora(encoder)

    def get_config(self):
        return {"rank": self.rank, "alpha": self.alpha}

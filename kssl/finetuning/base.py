"""The base class of fine-tuning modes (`kssl.finetuning.MODES`)."""

from __future__ import annotations

from kssl.registry import renamed


class FineTuningMode:
    """How a `Classifier` trains its encoder: which weights train, and when.

    A mode may change the encoder (insert adapters, enable LoRA) in `adapt`, sets
    the encoder's `trainable` flags in `set_trainable`, may change them during training
    through `callbacks` (a schedule), and gives the plain, deployable encoder in
    `merged`. Subclasses override what they need; options are constructor arguments,
    returned by `get_config` (they are saved with the classifier).

    Example: a mode that trains only the encoder's batch-norm layers.
    >>> class BatchNormOnly(FineTuningMode):
    ...     def set_trainable(self, encoder):
    ...         encoder.trainable = True
    ...         for layer in encoder.layers:
    ...             layer.trainable = "bn" in layer.name
    >>> from kssl.encoders import resnet
    >>> encoder = resnet(18, width=0.125, image_size=8)
    >>> BatchNormOnly().set_trainable(encoder)
    >>> len(encoder.trainable_weights)  # gamma and beta of its 20 batch norms
    40
    """

    # Adam's peak learning rate in `kssl.finetune` when none is given.
    default_learning_rate = 1e-3

    def __init__(self, **options):
        if options:
            raise ValueError(f"{type(self).__name__} takes no options. Received: {sorted(options)}")

    def adapt(self, encoder):
        """The encoder the classifier trains: `encoder` itself unless the mode adds layers."""
        return encoder

    def set_trainable(self, encoder) -> None:
        """Sets the `trainable` flags the training starts with."""
        raise NotImplementedError

    def trainable_at_some_point(self, encoder) -> list:
        """Every encoder variable this mode ever trains (the optimizer is built for all)."""
        return list(encoder.trainable_weights)

    def callbacks(self, classifier, steps_per_epoch: int, total_steps: int) -> list:
        """Keras callbacks that change what trains during `fit` (a schedule)."""
        return []

    def merged(self, encoder):
        """The encoder to save and serve: plain layers holding the trained weights."""
        return encoder

    def get_config(self) -> dict:
        return {}


__getattr__ = renamed(
    "kssl.finetuning.base", {"FineTuningStrategy": ("FineTuningMode", FineTuningMode)}
)  # before 2026-12-01

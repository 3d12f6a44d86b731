"""How each pretraining method is trained by default: optimizer, learning-rate scaling, schedule.

This is the only copy of the recipe: `kssl.pretrain`, the `kssl` command, the benchmarks,
the notebooks and the README all take their optimizer from here, so what a benchmark
measures is what a user runs. A method's spec (`kssl.methods.METHODS`) names its recipe
from the presets below (`kssl.methods.recipe_for(name)` gives it); change a field with
`dataclasses.replace(recipe_for("simclr"), weight_decay=1e-4)`.

Examples:
    >>> from kssl.methods import recipe_for
    >>> recipe = recipe_for("simclr")
    >>> recipe.peak_learning_rate(batch_size=512)
    0.6
    >>> optimizer = recipe.build_optimizer(batch_size=512, total_steps=1000)
    >>> type(optimizer).__name__, round(float(optimizer.learning_rate), 3)  # step 0 of the warmup
    ('SGD', 0.0)
"""

from __future__ import annotations

import dataclasses

OPTIMIZERS = ("sgd", "adamw", "lars")


@dataclasses.dataclass(frozen=True)
class PretrainingRecipe:
    """An optimizer and its schedule, scaled to the batch size.

    Args:
        optimizer: `"sgd"` (with momentum), `"adamw"`, or `"lars"` (`kssl.training.optimizers.LARS`,
            for large batches as SimCLR and BYOL use it; its trust ratio and weight
            decay skip batch norm and biases).
        learning_rate: peak learning rate per 256 images; the peak for a batch of B
            images is `learning_rate * B / 256` (the linear scaling rule, Goyal et al.
            2017, used by SimCLR).
        weight_decay: decoupled weight decay; never applied to batch-norm scales and
            offsets or to biases.
        momentum: SGD and LARS momentum (ignored by AdamW).
        nesterov: Nesterov momentum for SGD and LARS.
        beta_2: AdamW's second-moment decay (MAE: 0.95).
        warmup_fraction: share of the steps (or of a time budget) spent warming up
            linearly from 0 to the peak; a cosine decay to 0 follows.
        encoder_rate: the encoder's rate as a fraction of the heads' (layer-wise rates in
            two groups: a pretrained encoder moves slowly while its new heads learn).
        frozen_batch_norm: the encoder's batch norm keeps its statistics, scale and offset.
        local_crops: multi-crop's local crops when the method's option is left to its
            default (None: the method's own default).

    A method's own hyperparameters (temperature, momentum, queue size, mask ratio) are
    its class's constructor options, listed with their defaults in its spec
    (`kssl.methods.METHODS`).
    """

    optimizer: str = "sgd"
    learning_rate: float = 0.3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    beta_2: float = 0.999
    warmup_fraction: float = 0.05
    encoder_rate: float = 1.0
    frozen_batch_norm: bool = False
    local_crops: int | None = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}. Received: optimizer={self.optimizer!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0. Received: learning_rate={self.learning_rate!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0. Received: weight_decay={self.weight_decay!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1). Received: {self.warmup_fraction!r}")
        if not 0 < self.encoder_rate <= 1:
            raise ValueError(f"encoder_rate must be in (0, 1]. Received: encoder_rate={self.encoder_rate!r}")

    def peak_learning_rate(self, batch_size: int) -> float:
        return self.learning_rate * batch_size / 256

    def schedule(self, batch_size: int, total_steps: int):
        """Warmup then cosine decay over `total_steps` (a Keras `LearningRateSchedule`)."""
        from kssl.training.schedules import warmup_cosine

        return warmup_cosine(
            self.peak_learning_rate(batch_size), total_steps, warmup_steps=int(self.warmup_fraction * total_steps)
        )

    def build_optimizer(self, batch_size: int, total_steps: int | None = None):
        """The optimizer for `total_steps` steps of `batch_size` images.

        With `total_steps=None` (a time budget) the learning rate is a plain variable at
        the peak, for `kssl.training.callbacks.TimeBudget` to drive.
        """
        import keras

        rate = self.peak_learning_rate(batch_size) if total_steps is None else self.schedule(batch_size, total_steps)
        if self.optimizer == "sgd":
            optimizer = keras.optimizers.SGD(
                rate, momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay or None
            )
        elif self.optimizer == "lars":
            from kssl.training.optimizers import LARS

            return LARS(rate, momentum=self.momentum, weight_decay=self.weight_decay, nesterov=self.nesterov)
        else:
            optimizer = keras.optimizers.AdamW(rate, weight_decay=self.weight_decay, beta_2=self.beta_2)
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
        return optimizer


# SimCLR (Chen et al. 2020): LARS at 0.3 x B/256 for large batches; at the small
# batches kssl users train with, SGD with Nesterov momentum and the same scaling did
# as well in this project's CIFAR-10 runs (BENCHMARKS.md).
SIMCLR = PretrainingRecipe()
# lightly's CIFAR-10 benchmark recipe (SGD, momentum 0.9, 0.06 x B/128, weight decay 5e-4,
# cosine): VICReg and DINO keep it. For VICReg SimCLR's 0.3 diverged within 40 steps and
# solo-learn's LARS at 0.3 lost 5 kNN points on CIFAR-10 (BENCHMARKS.md, "Recipe tuning").
LIGHTLY_CIFAR = PretrainingRecipe(learning_rate=0.12, nesterov=False)
# Tuned in kssl's first recipe pass (BENCHMARKS.md, "Recipe tuning"): each adopted because
# it beat lightly's recipe on CIFAR-10 (kNN and linear, 3 epochs) and was no more than a
# point worse on the flowers (30 epochs at 96 px).
# MoCo v2: solo-learn's MoCo v2+ CIFAR recipe, SGD at 0.3 x B/256, weight decay 1e-4.
MOCO = dataclasses.replace(LIGHTLY_CIFAR, learning_rate=0.3, weight_decay=1e-4)
# BYOL: SGD at SimCLR's 0.3 (solo-learn's LARS at 1.0, weight decay 1e-5, did the same).
BYOL = dataclasses.replace(LIGHTLY_CIFAR, learning_rate=0.3)
# SimSiam: solo-learn's CIFAR recipe, SGD at 0.5 x B/256, weight decay 1e-5.
SIMSIAM = dataclasses.replace(LIGHTLY_CIFAR, learning_rate=0.5, weight_decay=1e-5)
# Barlow Twins: solo-learn's CIFAR recipe, LARS at 0.3 x B/256, weight decay 1e-4 (with
# lightly's recipe it ended below a random encoder on the flowers).
BARLOW = dataclasses.replace(LIGHTLY_CIFAR, optimizer="lars", learning_rate=0.3, weight_decay=1e-4)
# Distillation from a frozen teacher: LightlyTrain's DistillationV2 recipe, LARS at 1.5 x B/256,
# weight decay 1e-6, no Nesterov. With one view and feature maps, it gave 61-62.5 kNN points
# on the flowers in 5 minutes where lightly's CIFAR SGD (the first choice) gave 53.5
# (BENCHMARKS.md, "Distillation: the recipe"). LightlyTrain also clips gradients at norm 1:
# Keras clips each replica's share before summing them, which would break 2 replicas = 1
# device, so kssl does not (on one device it gave 1.2 kNN points on the flowers, 62.5 against 61.3).
DISTILLATION = PretrainingRecipe(optimizer="lars", learning_rate=1.5, weight_decay=1e-6, nesterov=False)
# MAE (He et al. 2022, table 8): AdamW, 1.5e-4 x B/256, betas (0.9, 0.95), weight
# decay 0.05, warmup then cosine.
MAE = PretrainingRecipe(optimizer="adamw", learning_rate=1.5e-4, weight_decay=0.05, beta_2=0.95)


# The encoder's rate against the heads' for a pretrained start: tuned on the flowers and
# CIFAR-10 with the ImageNet EfficientNet-Lite0 (BENCHMARKS.md, "Adapting a pretrained start").
PRETRAINED_START_ENCODER_RATE = 0.01


def for_pretrained_start(recipe: PretrainingRecipe, encoder_rate: float = PRETRAINED_START_ENCODER_RATE
                         ) -> PretrainingRecipe:  # fmt: skip
    """`recipe` (a method's, for random weights) made for an encoder that starts from
    pretrained weights (ImageNet, a foundation model, an earlier kssl run): the heads train
    at the method's rate while the encoder moves at `encoder_rate` of it, its batch norm
    frozen (a few batches of a small set would replace ImageNet's statistics), a longer
    warm-up (10%), and no local crops (a third of the step's cost, for more steps). LARS
    and AdamW recipes become SGD at lightly's rate, since the encoder's lower rate is a
    scale of its gradients that only SGD keeps (`SelfSupervisedModel`'s `encoder_rate`).

    Examples:
        >>> recipe = for_pretrained_start(SIMCLR)
        >>> recipe.optimizer, recipe.encoder_rate, recipe.frozen_batch_norm, recipe.local_crops
        ('sgd', 0.01, True, 0)
    """
    if recipe.optimizer != "sgd":
        recipe = dataclasses.replace(recipe, optimizer="sgd", learning_rate=LIGHTLY_CIFAR.learning_rate,
                                     nesterov=LIGHTLY_CIFAR.nesterov)  # fmt: skip
    return dataclasses.replace(recipe, encoder_rate=encoder_rate, frozen_batch_norm=True,
                               warmup_fraction=max(recipe.warmup_fraction, 0.1), local_crops=0)  # fmt: skip

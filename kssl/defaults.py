"""kssl's one set of defaults, read by `kssl.pretrain`/`kssl.finetune`, by `RunConfig`
(the command and `config.json`) and by the command's `--help`. Imports nothing.

Examples:
    >>> [pretraining_epochs(n, 256, data)[0] for n, data in [(50_000, None), (2_934, None), (1_437, "digits")]]
    [20, 175, 60]
    >>> print(pretraining_epochs(2_934, 256)[1])  # doctest: +NORMALIZE_WHITESPACE
    175 epochs, 2,006 steps: 2,934 images make 11.5 steps of 256 an epoch,
    and kssl trains at least 2,000 steps (20 epochs would be 229)
    >>> print(pretraining_epochs(50_000, 256, pretrained_start=True)[1])  # doctest: +NORMALIZE_WHITESPACE
    1.5 epochs, 300 steps: a pretrained start is adapted for 20 epochs but at most 300 steps
    (20 epochs would be 3,906)
"""

from __future__ import annotations

# Pretraining length: 20 passes over the images, but at least MIN_PRETRAIN_STEPS steps,
# so that a small folder trains long enough (3,000 photos make 12 steps an epoch at
# batch 256: 20 epochs would be 240 steps). The embedded digits (1,437 images of 8 x 8
# px, a demonstration) train 60 epochs. BENCHMARKS.md, "How long to pretrain".
PRETRAIN_EPOCHS = 20
MIN_PRETRAIN_STEPS = 2000
DIGITS_PRETRAIN_EPOCHS = 60
# A pretrained start (ImageNet, a foundation model) is adapted for PRETRAIN_EPOCHS but at
# most PRETRAINED_START_MAX_STEPS steps, with no minimum: at the encoder's 0.01 of the
# heads' rate, 70-160 steps gained kNN and linear points on the flowers and CIFAR-10,
# where 80 steps at 0.1 (as far as 800 at 0.01) lost 8 kNN points on CIFAR-10
# (BENCHMARKS.md, "Adapting a pretrained start"); 2,000 steps would move it that far.
PRETRAINED_START_MAX_STEPS = 300
PRETRAIN_BATCH_SIZE = 256
# Fine-tuning passes over the labeled images: a few labels give few steps per epoch.
FINETUNE_EPOCHS = 100
# Semi-supervised fine-tuning counts passes over the unlabeled pool, not the labels, and
# trains at least plain fine-tuning's steps: USB's pretrained protocol (a pretrained
# encoder, Wang et al. 2022) runs ~33 passes; 100 epochs of 50 labels were ~12 passes of
# the flowers and no better than plain fine-tuning (BENCHMARKS.md, "Semi-supervised length").
SEMI_SUPERVISED_PASSES = 30
FINETUNE_BATCH_SIZE = 64
ENCODER_WIDTH = 0.25
METHOD = "simclr"
MODES = ("full",)
LABELS = (10,)
SEED = 0
CHECKPOINT_EVERY = 100
# Discriminative learning rates: each earlier stage at this factor of the next one's rate (1: off).
STAGE_DECAY = 1.0
# The embedded digits are 8 x 8 px: training at 16 px loses nothing.
DIGITS_IMAGE_SIZE = 16
# Adversarial fine-tuning: an L-infinity radius of 8/255 in pixels of [0, 1] and 7 PGD
# steps in training (Madry et al. 2018's CIFAR-10 setting); robustness is measured with 10.
ADVERSARIAL_EPSILON = 8 / 255
ATTACK_STEPS = 7
# N-way K-shot accuracy: the mean over 600 episodes, as the few-shot literature reports it.
FEW_SHOT_EPISODES = 600
# Search and near-duplicates over embeddings (`kssl similar`, `kssl.top_k`, `kssl.duplicate_pairs`).
SIMILAR_TOP = 10
DUPLICATE_THRESHOLD = 0.95
# Which images to label first (`kssl select`, `kssl.select_for_labeling`).
SELECTION_METHOD = "typiclust"
# `kssl doctor`: steps per check, image side and global batch.
DOCTOR_STEPS, DOCTOR_IMAGE_SIZE, DOCTOR_BATCH_SIZE = 5, 32, 64
# Seconds a trainer waits for a step from the tf.data service before computing it here.
DATA_SERVICE_TIMEOUT = 60.0
# The `tf.distribute` strategies `kssl.runtime.distribute.strategy_from_name` builds, by name.
STRATEGY_NAMES = ("default", "mirrored", "multiworker", "tpu")


def steps_for(epochs: float, images: int, batch_size: int) -> int:
    """The optimizer steps of `epochs` passes over `images` at `batch_size` (at least 1);
    the one count `kssl.pretrain`, `kssl.finetune` and the command use."""
    if epochs is None or not epochs > 0:
        raise ValueError(f"epochs must be > 0. Received: epochs={epochs!r}")
    return max(1, int(round(epochs * images / batch_size)))


def pretraining_epochs(images: int, batch_size: int, data: str | None = None, pretrained_start: bool = False
                       ) -> tuple[float, str]:  # fmt: skip
    """`(epochs, reason)`: the default pretraining length for `images` images at
    `batch_size` (`data`, the data string, picks out the embedded digits;
    `pretrained_start`: the encoder brings weights and is adapted with
    `kssl.training.recipes.for_pretrained_start`)."""
    steps_per_epoch = images / batch_size

    def steps(epochs):
        return steps_for(epochs, images, batch_size)

    if pretrained_start:
        if steps(PRETRAIN_EPOCHS) <= PRETRAINED_START_MAX_STEPS:
            return PRETRAIN_EPOCHS, (
                f"{PRETRAIN_EPOCHS} epochs, {steps(PRETRAIN_EPOCHS):,} steps of {batch_size} images: a pretrained "
                f"start is adapted for {PRETRAIN_EPOCHS} epochs but at most {PRETRAINED_START_MAX_STEPS} steps"
            )
        epochs = PRETRAINED_START_MAX_STEPS / steps_per_epoch
        return epochs, (
            f"{epochs:.2g} epochs, {steps(epochs):,} steps: a pretrained start is adapted for {PRETRAIN_EPOCHS} "
            f"epochs but at most {PRETRAINED_START_MAX_STEPS} steps "
            f"({PRETRAIN_EPOCHS} epochs would be {steps(PRETRAIN_EPOCHS):,})"
        )
    if str(data).split(":")[0] == "digits":
        epochs = DIGITS_PRETRAIN_EPOCHS
        return epochs, f"{epochs} epochs, {steps(epochs):,} steps: kssl's length for the embedded digits"
    epochs = max(PRETRAIN_EPOCHS, -(-MIN_PRETRAIN_STEPS * batch_size // images))  # whole epochs, rounded up
    if epochs == PRETRAIN_EPOCHS:
        return epochs, f"{epochs} epochs, {steps(epochs):,} steps of {batch_size} images"
    return epochs, (
        f"{epochs} epochs, {steps(epochs):,} steps: {images:,} images make {steps_per_epoch:.1f} steps of "
        f"{batch_size} an epoch, and kssl trains at least {MIN_PRETRAIN_STEPS:,} steps "
        f"({PRETRAIN_EPOCHS} epochs would be {steps(PRETRAIN_EPOCHS):,})"
    )


def semi_supervised_steps(unlabeled_images: int, unlabeled_batch: int, labeled_steps: int, passes: float | None = None
                          ) -> tuple[int, str]:  # fmt: skip
    """`(steps, reason)`: the length of a semi-supervised fine-tuning that takes
    `unlabeled_batch` of the `unlabeled_images` a step: `passes` over them (default
    `SEMI_SUPERVISED_PASSES`), but at least plain fine-tuning's `labeled_steps` when
    `passes` is the default (an explicit `passes` is taken as it is).

    Examples:
        >>> semi_supervised_steps(2_934, 350, 100)[0], semi_supervised_steps(2_934, 350, 100, passes=5)[0]
        (251, 42)
        >>> print(semi_supervised_steps(2_934, 350, 100, passes=5)[1])  # doctest: +NORMALIZE_WHITESPACE
        5 passes over the 2,934 unlabeled images, 42 steps of 350
        (fewer than plain fine-tuning's 100: the labels get less)
        >>> print(semi_supervised_steps(2_934, 350, 100)[1])
        30 passes over the 2,934 unlabeled images, 251 steps of 350
        >>> print(semi_supervised_steps(500, 350, 100)[1])  # doctest: +NORMALIZE_WHITESPACE
        100 steps of 350 unlabeled images (70 passes over the 500): at least plain fine-tuning's steps
        (30 passes would be 43)
    """
    if passes is not None and not passes > 0:
        raise ValueError(f"passes over the unlabeled images must be > 0. Received: {passes!r}")
    steps = steps_for(passes or SEMI_SUPERVISED_PASSES, unlabeled_images, unlabeled_batch)
    pool = f"the {unlabeled_images:,} unlabeled images"
    if passes is not None:
        short = (
            f" (fewer than plain fine-tuning's {labeled_steps:,}: the labels get less)" if steps < labeled_steps else ""
        )
        return steps, f"{passes:g} passes over {pool}, {steps:,} steps of {unlabeled_batch}{short}"
    if steps >= labeled_steps:
        return steps, f"{SEMI_SUPERVISED_PASSES} passes over {pool}, {steps:,} steps of {unlabeled_batch}"
    made = labeled_steps * unlabeled_batch / unlabeled_images
    return labeled_steps, (
        f"{labeled_steps:,} steps of {unlabeled_batch} unlabeled images ({made:.3g} passes over the "
        f"{unlabeled_images:,}): at least plain fine-tuning's steps "
        f"({SEMI_SUPERVISED_PASSES} passes would be {steps:,})"
    )


# The formats `kssl export --format` writes (kssl.outputs.export: a SavedModel folder, a .onnx or a .tflite file).
EXPORT_FORMATS = ("saved_model", "onnx", "litert")

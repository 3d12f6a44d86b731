"""kssl's one set of defaults, read by `kssl.pretrain`/`kssl.finetune`, by `RunConfig`
(the command and `config.json`) and by the command's `--help`. Imports nothing.

Example:
>>> pretraining_epochs("digits"), pretraining_epochs("photos/"), FINETUNE_EPOCHS
(60, 20, 100)
"""

from __future__ import annotations

# Pretraining passes over the images: 20, or 60 for the embedded digits, whose 1,437
# images make an epoch of 6 steps at batch 256.
PRETRAIN_EPOCHS = 20
DIGITS_PRETRAIN_EPOCHS = 60
PRETRAIN_BATCH_SIZE = 256
# Fine-tuning passes over the labeled images: a few labels give few steps per epoch.
FINETUNE_EPOCHS = 100
FINETUNE_BATCH_SIZE = 64
ENCODER_WIDTH = 0.25
METHOD = "simclr"
MODES = ("full",)
LABELS = (10,)
SEED = 0
CHECKPOINT_EVERY = 100
# The `tf.distribute` strategies `kssl.distribute.strategy_from_name` builds, by name.
STRATEGY_NAMES = ("default", "mirrored", "multiworker", "tpu")


def pretraining_epochs(data: str | None = None) -> int:
    """The default pretraining epochs for a data string (`digits`, a folder, `tfds:NAME`)."""
    return DIGITS_PRETRAIN_EPOCHS if str(data).split(":")[0] == "digits" else PRETRAIN_EPOCHS

import keras
import numpy as np
import pytest
from helpers import all_weights, digits, tiny_encoder

from kssl.data.pipeline import labeled_batches
from kssl.finetuning.gradual import GradualUnfreezing
from kssl.finetuning.stages import stage_of
from kssl.models import Classifier


class RecordTrainable(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.trained = []

    def on_train_batch_end(self, batch, logs=None):
        self.trained.append(sorted({stage_of(v.path.split("/")[0]) or 0 for v in self.model.encoder.trainable_weights}))


def test_gradual_unfreezing_unfreezes_what_the_schedule_says_at_each_epoch():
    labeled = digits().subset(range(64))  # 2 steps an epoch at batch 32
    classifier = Classifier(tiny_encoder(), num_classes=10, mode="gradual", mode_options={"every_epochs": 1})
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    record = RecordTrainable()
    before = all_weights(classifier.encoder)
    callbacks = classifier.fine_tuning_mode.callbacks(classifier, steps_per_epoch=2, total_steps=12)
    data = labeled_batches(labeled, 32, training=True, repeat=True)
    classifier.fit(data, epochs=1, steps_per_epoch=12, verbose=0, callbacks=[*callbacks, record])
    # epoch 0: the head only; then stage 4; 4 and 3; ...; then the stem (0) too.
    expected = [[], [4], [3, 4], [2, 3, 4], [1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert record.trained == [group for group in expected for _ in range(2)]
    moved = {p for p, v in all_weights(classifier.encoder).items() if not np.array_equal(v, before[p])}
    assert any(p.startswith("stem") for p in moved) and any(p.startswith("stage1") for p in moved)


def test_gradual_resumes_at_the_reached_step_and_spreads_over_half_of_training_by_default():
    classifier = Classifier(tiny_encoder(), num_classes=10, mode="gradual")
    schedule = classifier.fine_tuning_mode
    assert schedule.every_steps(classifier.encoder, steps_per_epoch=10, total_steps=100) == 10  # 5 unfreezings
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    classifier.optimizer.iterations.assign(25)
    callback = schedule.callbacks(classifier, 10, 100)[0]
    callback.set_model(classifier)
    callback.on_train_begin()
    assert {stage_of(v.path.split("/")[0]) for v in classifier.encoder.trainable_weights} == {3, 4}
    with pytest.raises(ValueError, match="every_epochs"):
        GradualUnfreezing(every_epochs=0)

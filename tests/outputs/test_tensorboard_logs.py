"""TensorBoard logs are a view of a run: a log folder that cannot be written never ends one."""

import logging

import keras
from PIL import Image

import kssl
from kssl.outputs.tensorboard_logs import TensorBoardScalars, scalar_events, write_image
from kssl.training.curves import StepHistory


def pretrain(steps, callbacks):
    keras.utils.set_random_seed(0)
    images, encoder = kssl.load_digits(image_size=8).subset(range(64)), kssl.conv4(width=0.125, image_size=8)
    return kssl.pretrain(images, encoder, epochs=steps / 2, batch_size=32, callbacks=callbacks, verbose=0)[0]


def test_a_log_folder_that_cannot_be_written_is_a_warning_and_training_goes_on(tmp_path, caplog):
    blocked = tmp_path / "logs"
    blocked.write_text("a file where the log folder should be")
    Image.new("RGB", (4, 4)).save(tmp_path / "preview.png")
    curve = StepHistory(every=1)
    with caplog.at_level(logging.WARNING, logger="kssl"):
        model = pretrain(4, [curve, TensorBoardScalars(blocked / "pretrain", [curve])])
        write_image(blocked / "pretrain", "augmentations", tmp_path / "preview.png")
    assert int(model.optimizer.iterations.numpy()) == 4 and len(curve.steps) == 4
    warnings = [r.getMessage() for r in caplog.records if "TensorBoard logs stopped" in r.getMessage()]
    assert len(warnings) == 2 and "is not a directory" in warnings[0]


def test_points_are_written_at_their_steps(tmp_path):
    curve = StepHistory(every=1)
    pretrain(2, [curve, TensorBoardScalars(tmp_path / "logs", [curve])])
    events = scalar_events(tmp_path / "logs")
    assert [step for step, _ in events["loss"]] == [1, 2] and len(events["learning_rate"]) == 2

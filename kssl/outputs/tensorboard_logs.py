"""TensorBoard logs of a run: its training curves, its augmentation preview and its test
embeddings for the projector, written with TensorFlow's summary writer.

A run writes them under `<out>/logs/` (`kssl ... --no-tensorboard` turns them off):
`pretrain/` (scalars and the `augmentations` image), `finetune/<mode>-<start>-<labels>-draw<k>/`
(scalars of each fine-tuning) and `embeddings/` (the projector: the test images' frozen
features with their class names). `tensorboard --logdir <out>/logs` shows them.

Why not Keras' own `keras.callbacks.TensorBoard`: kssl trains in one long epoch, so its
epoch scalars are one point per run, and its batch scalars are running means since the
epoch began (flat by the end) on a counter that restarts at 0 when a run resumes. The
scalars here are the points of the run's own curves (`kssl.training.curves.StepHistory`: the
mean over each interval of steps; `kssl.evaluation.monitor.KNNMonitor`: each check), at the
optimizer's step, so a resumed run goes on where its checkpoint was, and TensorBoard
shows the numbers the PNG plots and `metrics.json` hold.

Examples:
    >>> import tempfile
    >>> import kssl
    >>> from kssl.training.curves import StepHistory
    >>> digits = kssl.load_digits(image_size=8).subset(range(128))
    >>> curve = StepHistory(every=2)
    >>> logs = tempfile.mkdtemp()
    >>> _ = kssl.pretrain(digits, kssl.resnet(10, width=0.125, image_size=8), epochs=2, batch_size=64,
    ...                   callbacks=[curve, TensorBoardScalars(logs, [curve])], verbose=0)
    >>> sorted(scalar_events(logs))
    ['contrastive_accuracy', 'learning_rate', 'loss']
    >>> scalar_events(logs)["loss"][0][0], curve.steps
    (2, [2, 4])
"""

from __future__ import annotations

import contextlib
import logging
import pathlib

import keras
import numpy as np

logger = logging.getLogger("kssl")

# The test embeddings kept for the projector: a seeded sample beyond this many rows
# (the projector computes PCA and t-SNE in the browser; 10,000 is its own cap).
PROJECTOR_MAX_ROWS = 10_000


def _writer(log_dir):
    import tensorflow as tf

    return tf.summary.create_file_writer(str(log_dir))


@contextlib.contextmanager
def survived(log_dir, on_failure=None):
    """Runs a block of log writes; a write the machine refuses (a full disk, a folder that
    cannot be written) is a warning, never the end of a training run: logs are a view of
    the run, not the run. `on_failure()` is called then (a callback stops logging)."""
    import tensorflow as tf

    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        reason = str(error).strip().splitlines()[0]
        if len(reason) > 200:  # long paths: keep the start and the end, where the cause is
            reason = f"{reason[:100]}...{reason[-100:]}"
        logger.warning("TensorBoard logs stopped: cannot write %s (%s); training goes on without them "
                       "(--no-tensorboard turns them off)", log_dir, reason)  # fmt: skip
        if on_failure is not None:
            on_failure()


class TensorBoardScalars(keras.callbacks.Callback):
    """Writes the new points of `sources` (objects with `steps` and `curves`, such as a
    `kssl.training.curves.StepHistory` or a `kssl.evaluation.monitor.KNNMonitor`, placed before this
    callback) to `log_dir` as they are recorded, with the optimizer's learning rate at
    each point of the first source.

    Args:
        log_dir: the folder of the event files (created if missing).
        sources: the curves to log; each point is written once, at its step.
    """

    def __init__(self, log_dir, sources):
        super().__init__()
        self.log_dir = pathlib.Path(log_dir)
        self.sources = list(sources)
        self._written = [0] * len(self.sources)
        self._summaries = None

    def on_train_begin(self, logs=None):
        # The sources have read back their points up to a resumed step by now (they come
        # first): those were written by the run that recorded them.
        self._written = [len(source.steps) for source in self.sources]
        self._stopped = False
        with survived(self.log_dir, self._stop):
            self._summaries = _writer(self.log_dir)

    def _stop(self):
        self._summaries, self._stopped = None, True

    def on_train_batch_end(self, batch, logs=None):
        if self._summaries is None:
            return
        if any(len(source.steps) > written for source, written in zip(self.sources, self._written)):
            with survived(self.log_dir, self._stop):
                self._write_new_points()

    def on_train_end(self, logs=None):
        if self._summaries is None:
            return
        with survived(self.log_dir, self._stop):
            self._write_new_points()
            self._summaries.close()
        self._summaries = None

    def _write_new_points(self):
        import tensorflow as tf

        with self._summaries.as_default():
            for index, source in enumerate(self.sources):
                new = range(self._written[index], len(source.steps))
                for point in new:
                    step = int(source.steps[point])
                    for name, values in source.curves.items():
                        if point < len(values):
                            tf.summary.scalar(name, float(values[point]), step=step)
                    if index == 0:
                        tf.summary.scalar("learning_rate", self._learning_rate(), step=step)
                self._written[index] = len(source.steps)
        self._summaries.flush()

    def _learning_rate(self) -> float:
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under loss scaling
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def write_image(log_dir, name: str, png_path, step: int = 0) -> None:
    """Writes the PNG at `png_path` (such as the augmentation preview) as image `name`."""
    import tensorflow as tf

    image = tf.io.decode_png(tf.io.read_file(str(png_path)), channels=3)
    with survived(log_dir):
        summaries = _writer(log_dir)
        with summaries.as_default():
            tf.summary.image(name, image[None], step=step)
        summaries.close()


def write_projector(log_dir, features, labels, class_names, seed: int = 0) -> int:
    """Writes `features` (one row per image) and their class names for TensorBoard's
    projector; returns how many rows were kept (at most `PROJECTOR_MAX_ROWS`, a seeded
    sample). The layout is TensorBoard's own: a checkpoint of one variable,
    `metadata.tsv` (one class name per row) and `projector_config.pbtxt`."""
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    log_dir = pathlib.Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    features, labels = np.asarray(features, np.float32), np.asarray(labels)
    if len(features) > PROJECTOR_MAX_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(len(features), PROJECTOR_MAX_ROWS, replace=False))
        features, labels = features[keep], labels[keep]
    names = [str(class_names[label]) if class_names is not None else str(label) for label in labels]
    # One column: TensorBoard reads a metadata file of one column without a header row.
    (log_dir / "metadata.tsv").write_text("".join(name.replace("\t", " ") + "\n" for name in names))
    tf.train.Checkpoint(embedding=tf.Variable(features)).save(str(log_dir / "embedding.ckpt"))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    embedding.metadata_path = "metadata.tsv"
    (log_dir / "projector_config.pbtxt").write_text(text_format.MessageToString(config))
    # TensorBoard lists as runs only folders with event files; its projector looks in runs.
    summaries = _writer(log_dir)
    with summaries.as_default():
        tf.summary.text("embeddings", f"{len(features)} images' features ({features.shape[1]} dimensions)", step=0)
    summaries.close()
    return len(features)


def scalar_events(log_dir) -> dict[str, list[tuple[int, float]]]:
    """The scalars of the event files under `log_dir` (not its subfolders): name ->
    `[(step, value), ...]` in the order written, read back with TensorFlow's summary iterator."""
    import tensorflow as tf

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(pathlib.Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    number = float(tf.make_ndarray(value.tensor))
                    scalars.setdefault(value.tag, []).append((int(event.step), number))
    return scalars

"""Checks of the encoder while it pretrains, to see when more stops paying (`FeatureMonitor`):
`KNNMonitor`, kNN accuracy where there are labels, and `RankMeMonitor`, the effective rank
of the features (`rankme`), which needs none; the kNN monitor reports RankMe too, from the
same forward pass. A fall of RankMe to half its highest value warns of collapse.

On a labeled set (labels used by the monitor only, never by the method), a fixed,
class-stratified subset of the training images (at most `max_images`) is decoded once,
as its evaluation views (`kssl.data.evaluation_view`, what evaluation and the exported
model see). A fifth of it are queries and the rest the bank. Every `every` steps and
at the end of training, the encoder (inference mode) embeds the subset, and each query
is classified by a weighted vote of its k nearest bank images (`kssl.evaluation.features.knn_accuracy`)
for each k in `ks`. The cost is one forward pass over the subset per check, no pass over
the data; `seconds` keeps the time spent, so the cost can be stated.

Results go to the progress line (`knn_20`, `knn_200`, `rankme` in the logs, as they are known),
to `steps` and `curves` (and a JSON file, `path`, read back on resume), and to the logs
at the end of the epoch (so a `keras.callbacks.TensorBoard` after it records them).

Examples:
    >>> import kssl
    >>> digits = kssl.load_digits(image_size=8)
    >>> monitor = KNNMonitor(digits, every=2, max_images=200)
    >>> model, _ = kssl.pretrain(digits.subset(range(128)), kssl.resnet(10, width=0.125, image_size=8),
    ...                          epochs=2, batch_size=64, callbacks=[monitor], verbose=0)
    >>> monitor.steps, sorted(monitor.curves), monitor.queries, monitor.bank
    ([2, 4], ['knn_20', 'knn_200', 'rankme'], 40, 160)
"""

from __future__ import annotations

import json
import pathlib
import time

import keras
import numpy as np

from kssl.evaluation.features import knn_accuracy
from kssl.outputs.atomic import atomic_file

QUERY_SHARE = 0.2


def monitor_every(total_steps: int | None) -> int:
    """The default check interval: a tenth of the training, 25 to 250 steps (200 when the
    length is unknown, as under a time budget).

    Examples:
        >>> monitor_every(3906), monitor_every(1000), monitor_every(60), monitor_every(None)
        (250, 100, 25, 200)
    """
    if total_steps is None:
        return 200
    return int(min(250, max(25, total_steps // 10)))


def monitor_subset(labels, max_images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(query indices, bank indices)`: a fixed subset of at most `max_images` of the
    images with `labels`, a fifth of it queries, stratified by class where every class
    has images enough (else uniform).

    Examples:
        >>> queries, bank = monitor_subset(np.repeat([0, 1], 50), max_images=40)
        >>> len(queries), len(bank), np.bincount(np.asarray([0, 1] * 50)[queries]).tolist()
        (8, 32, [4, 4])
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    indices = np.arange(len(labels))

    def split(items, size):
        try:
            return train_test_split(items, train_size=size, stratify=labels[items], random_state=seed)
        except ValueError:  # a class too small to stratify
            return train_test_split(items, train_size=size, random_state=seed)

    chosen = indices if len(indices) <= max_images else split(indices, max_images)[0]
    bank, queries = split(chosen, len(chosen) - max(1, int(round(QUERY_SHARE * len(chosen)))))
    return np.sort(queries), np.sort(bank)


class FeatureMonitor(keras.callbacks.Callback):
    """What a check of the encoder during pretraining shares: a fixed subset of images whose
    evaluation views are decoded once, their features (inference mode) every `every` steps
    and at the end, the curve kept (`steps`, `curves`, a JSON file read back on resume) and
    each check's values added to the progress line's logs. A subclass says what it
    measures on the features (`measure`) and names it (`name`, `describe`).
    """

    name = "monitor"

    def __init__(self, images, order, every: int, path=None, batch_size: int = 256):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"every must be a whole number of steps >= 1. Received: every={every!r}")
        self.images_source = images
        self.every = int(every)
        self.path = None if path is None else pathlib.Path(path)
        self.batch_size = int(batch_size)
        self._order = np.asarray(order)
        self._images = None
        self.steps: list[int] = []
        self.curves: dict[str, list[float]] = {}
        self.seconds = 0.0
        self._latest = {}
        if self.path is not None and self.path.exists():  # a resumed run's curve so far
            saved = json.loads(self.path.read_text())
            self.steps, self.curves, self.seconds = saved["steps"], saved["curves"], float(saved["seconds"])

    def measure(self, features: np.ndarray) -> dict:
        """`{name: value}` of one check on the subset's features (rows in subset order)."""
        raise NotImplementedError

    def read(self, rows: np.ndarray) -> None:
        """Called once with the rows of the subset whose files could be read (all, unless a
        streamed file could not be decoded): what the measure pairs with them follows."""

    def on_train_begin(self, logs=None):
        # Steps are counted here from the optimizer's count at the start (read once: no
        # device sync per step); with steps per execution a check falls on the first
        # batch end at or past each multiple of `every`.
        start = self._seen = self._epoch_start = int(self.model.optimizer.iterations.numpy())
        kept = [i for i, step in enumerate(self.steps) if step <= start]  # up to the resumed step
        self.steps = [self.steps[i] for i in kept]
        self.curves = {name: [values[i] for i in kept] for name, values in self.curves.items()}
        if self._images is None:
            self._images = self._evaluation_views()
        self._encode = None

    def _evaluation_views(self) -> np.ndarray:
        from kssl.data.augment import as_uint8
        from kssl.data.pipeline import evaluation_images

        size = self.model.encoder.input_shape[1]
        subset = self.images_source.subset(self._order)
        batches = [(as_uint8(views * 255.0).numpy(), rows.numpy())
                   for views, rows in evaluation_images(subset, self.batch_size, size, with_rows=True)]  # fmt: skip
        rows = np.concatenate([r for _, r in batches])
        if len(rows) < len(self._order):  # streamed files that cannot be read leave with what goes with them
            self.read(rows)
        return np.concatenate([v for v, _ in batches])

    def features(self) -> np.ndarray:
        """The encoder's features (inference mode) of the subset, in its order."""
        import tensorflow as tf

        if self._encode is None:
            encoder = self.model.encoder
            self._encode = tf.function(
                lambda x: tf.cast(encoder(tf.cast(x, tf.float32) / 255.0, training=False), tf.float32)
            )
        parts = [
            self._encode(self._images[i : i + self.batch_size]).numpy()
            for i in range(0, len(self._images), self.batch_size)
        ]
        return np.concatenate(parts)

    def check(self) -> dict:
        """Measures now: `{name: value}`, appended to the curve."""
        start = time.perf_counter()
        result = self.measure(self.features())
        self.seconds += time.perf_counter() - start
        self.steps.append(self._seen)
        for name, value in result.items():
            self.curves.setdefault(name, []).append(value)
        self._latest = result
        self.after_check(result)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(self.path, suffix=".json") as temporary:
                temporary.write_text(json.dumps(self.record()))
        return result

    collapse_share = 0.5

    def after_check(self, result: dict) -> None:
        """After each check: a warning, once, when RankMe falls below `collapse_share` of its
        highest value so far (the embeddings collapsing onto fewer directions)."""
        values = self.curves.get("rankme", [])
        if not getattr(self, "_warned", False) and len(values) > 1 and values[-1] < self.collapse_share * max(values):
            self._warned = True
            import warnings

            warnings.warn(
                f"RankMe fell from {max(values):.1f} to {values[-1]:.1f} (the effective rank of the features): the "
                "embeddings may be collapsing onto fewer directions. A lower learning rate, a larger batch or "
                "another method may help; the kNN monitor, where there are labels, says whether accuracy follows.",
                stacklevel=2,
            )

    def record(self) -> dict:
        """What `metrics.json` keeps: the curve, the checks' interval and the time spent."""
        return {"steps": self.steps, "curves": self.curves, "every": self.every, "seconds": self.seconds}

    def on_train_batch_end(self, batch, logs=None):
        previous, self._seen = self._seen, self._epoch_start + batch + 1
        if self._seen // self.every > previous // self.every:
            self.check()
        if logs is not None:
            logs.update(self._latest)  # shown by the progress line from the first check on

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_start = self._seen
        if not self.steps or self.steps[-1] != self._seen:
            self.check()
        if logs is not None:
            logs.update(self._latest)


class KNNMonitor(FeatureMonitor):
    """kNN accuracy of the encoder during pretraining (see the module's docstring).

    Args:
        labeled: a labeled `ImageSet` or streamed source (the pretraining images or others).
        every: check every this many steps (and at the end); `monitor_every(total_steps)`
            gives kssl's default.
        ks: the numbers of neighbours (20 and 200, the two usual protocols; each at most
            the bank's size).
        max_images: the subset's size, queries and bank.
        seed: which subset.
        path: a JSON file for the curve (written at every check, atomically, and read
            back at the start of training up to the step it resumes from).
        batch_size: images embedded at a time.
    """

    def __init__(self, labeled, every: int = 200, ks=(20, 200), max_images: int = 2000, seed: int = 0,
                 path=None, batch_size: int = 256):  # fmt: skip
        if getattr(labeled, "labels", None) is None or labeled.num_classes < 2:
            raise ValueError(
                "KNNMonitor needs images with labels of 2 classes or more (it never trains on them); "
                f"{getattr(labeled, 'source', 'these images')!r} has none."
            )
        queries, bank = monitor_subset(labeled.labels, int(max_images), seed)
        super().__init__(labeled, np.concatenate([queries, bank]), every, path, batch_size)
        self.labeled = labeled
        self.max_images = int(max_images)
        self.seed = seed
        self.queries, self.bank = len(queries), len(bank)
        self.ks = tuple(int(k) for k in ks)  # each used as min(k, bank)
        self._labels = np.asarray(labeled.labels)[self._order]
        if not self.curves:
            self.curves = {**{self.name_of(k): [] for k in self.ks}, "rankme": []}

    @staticmethod
    def name_of(k: int) -> str:
        return f"knn_{k}"

    def describe(self) -> str:
        """One line for the command's output: what is measured, how often."""
        ks = ", ".join(str(k) for k in self.ks)
        return (
            f"kNN monitor: {self.queries:,} held-out training images against {self.bank:,} (k={ks}), and RankMe "
            f"of their features, every {self.every:,} steps and at the end; labels used for the monitor only"
        )

    def read(self, rows):
        self._labels = self._labels[rows]
        self.queries, self.bank = int(np.sum(rows < self.queries)), int(np.sum(rows >= self.queries))

    def measure(self, features):
        queries, bank = features[: self.queries], features[self.queries :]
        labels_q, labels_b = self._labels[: self.queries], self._labels[self.queries :]
        knn = {self.name_of(k): knn_accuracy(bank, labels_b, queries, labels_q, k=min(k, self.bank)) for k in self.ks}
        return {**knn, "rankme": rankme(features)}  # from the same forward pass

    def record(self) -> dict:
        return {**super().record(), "queries": self.queries, "bank": self.bank}


def rankme(features, epsilon: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023, eq. 1): the effective rank of a matrix of embeddings,
    `exp(-sum_k p_k log p_k)` with `p_k = sigma_k / ||sigma||_1 + epsilon` over its singular
    values. From 1 (every image on one line: collapse) to `min(N, D)` (spread evenly over
    every direction); it needs no labels.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> round(rankme(rng.normal(size=(1000, 8))), 1), round(rankme(np.ones((1000, 8))), 2)
        (8.0, 1.0)

    Reference:
        Garrido et al. 2023, "RankMe", https://arxiv.org/abs/2210.02885, section 3.
    """
    singular = np.linalg.svd(np.asarray(features, np.float64), compute_uv=False)
    p = singular / max(np.sum(singular), 1e-12) + epsilon
    return float(np.exp(-np.sum(p * np.log(p))))


class RankMeMonitor(FeatureMonitor):
    """RankMe of the encoder's features during pretraining: a signal of the representation's
    health that needs no labels (Garrido et al. 2023: it tracks downstream accuracy within a
    method, and falls when the embeddings collapse). On a fixed random subset of at most
    `max_images` images (their evaluation views), every `every` steps and at the end; a
    warning once it falls below `collapse_share` of its highest value so far.

    Examples:
        >>> import kssl
        >>> digits = kssl.load_digits(image_size=8)
        >>> monitor = RankMeMonitor(digits, every=2, max_images=200)
        >>> _ = kssl.pretrain(digits.subset(range(128)), kssl.conv4(width=0.125, image_size=8),
        ...                   epochs=2, batch_size=64, callbacks=[monitor], verbose=0)
        >>> monitor.steps, sorted(monitor.curves), monitor.images
        ([2, 4], ['rankme'], 200)
    """

    name = "rankme"

    def __init__(self, images, every: int = 200, max_images: int = 2000, seed: int = 0, path=None,
                 batch_size: int = 256):  # fmt: skip
        order = np.sort(np.random.default_rng(seed).permutation(len(images))[: int(max_images)])
        super().__init__(images, order, every, path, batch_size)
        self.images = len(order)
        if not self.curves:
            self.curves = {"rankme": []}

    def describe(self) -> str:
        return (f"RankMe (effective rank of the features, no labels): {self.images:,} images, every {self.every:,} "
                "steps and at the end")  # fmt: skip

    def read(self, rows):
        self.images = len(rows)

    def measure(self, features):
        return {"rankme": rankme(features)}

"""`ImageSet`: decoded images held in memory, with their labels (what every in-memory source returns)."""

from __future__ import annotations

import dataclasses

import numpy as np

from kssl.data.collection import ImageCollection
from kssl.errors import DataError


@dataclasses.dataclass
class ImageSet(ImageCollection):
    """Decoded images held in memory.

    Attributes:
        images: `(N, H, W, 3)` uint8 array; images of different shapes sit in the
            top-left corner of a zero-padded array.
        labels: `(N,)` int64 array of class ids, or None for unlabeled images.
        class_names: the name of each class id.
        source: where the images came from, for messages and reports.
        shapes: `(N, 2)` height and width of each image when they differ, else None.
        view_size: the training size the images are for (default: their side).
        evaluation_views: `(N, S, S, 3)` uint8 evaluation views of the *original* images
            at `evaluation_size` S, when the stored copies are not the originals (a folder's
            photos are stored downscaled): every measurement reads these, so it sees what the
            exported model computes from the original file. None: computed from `images`.
        evaluation_size: the side of `evaluation_views`.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: list[str] = dataclasses.field(default_factory=list)
    source: str = ""
    shapes: np.ndarray | None = None
    view_size: int | None = None
    evaluation_views: np.ndarray | None = None
    evaluation_size: int | None = None
    PER_IMAGE = ("images", "labels", "shapes", "evaluation_views")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        """The training size the images are for: `view_size`, else their (square) side."""
        return int(self.view_size or self.images.shape[1])

    def square(self, size: int | None = None) -> np.ndarray:
        """`(N, size, size, 3)` uint8 evaluation views (`EvaluationView`) of every image.

        Images that already are `size` x `size` squares are returned as they are.
        """
        size = size or self.image_size
        if self.evaluation_views is not None and self.evaluation_size == size:
            return self.evaluation_views
        if self.shapes is None and self.images.shape[1:3] == (size, size):
            return self.images
        import tensorflow as tf

        from kssl.data.evaluation_view import EvaluationView

        view = EvaluationView(size)
        shapes = self.shape_array()
        return np.concatenate([
            view.crop(tf.constant(self.images[start : start + 256]), tf.constant(shapes[start : start + 256])).numpy()
            for start in range(0, len(self), 256)
        ])  # fmt: skip

    def shape_array(self) -> np.ndarray:
        """`(N, 2)` height and width of every image (padding excluded)."""
        if self.shapes is not None:
            return self.shapes
        return np.tile(np.asarray(self.images.shape[1:3], np.int64), (len(self), 1))

    def reader(self):
        """How the pipelines read this set: one `tf.gather` and crop per batch."""
        from kssl.data.readers import MemoryReader

        return MemoryReader(self)


def padded_image_set(images, labels, class_names, source, view_size=None) -> ImageSet:
    """An `ImageSet` of uint8 `(H_i, W_i, 3)` images of any shapes (one zero-padded array when they differ)."""
    shapes = np.asarray([image.shape[:2] for image in images], np.int64)
    if (shapes == shapes[0]).all():
        canvas, shapes = np.stack(images), None
    else:
        canvas = np.zeros((len(images), *shapes.max(axis=0), 3), np.uint8)
        for i, image in enumerate(images):
            canvas[i, : image.shape[0], : image.shape[1]] = image
    return ImageSet(canvas, labels, list(class_names), source=source, shapes=shapes, view_size=view_size)


def image_set_from_padded_batches(batches, class_names, source, image_size) -> ImageSet:
    """An `ImageSet` from `(padded images, shapes, labels, the originals' evaluation views at
    image_size)` batches (TFDS's images of any shapes)."""
    images, shapes, labels, views = [], [], [], []
    for image_batch, shape_batch, label_batch, view_batch in batches:
        images.append(image_batch)
        shapes.append(shape_batch)
        labels.append(label_batch)
        views.append(view_batch)
    if not images:
        raise DataError(f"{source} is empty.")
    shapes = np.concatenate(shapes).astype(np.int64)
    labels = np.concatenate(labels).astype(np.int64)
    canvas = np.zeros((len(labels), *shapes.max(axis=0), 3), np.uint8)
    start = 0
    for batch in images:
        canvas[start : start + len(batch), : batch.shape[1], : batch.shape[2]] = batch
        start += len(batch)
    if not class_names:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]
    uniform = (shapes == shapes[0]).all()
    return ImageSet(
        canvas,
        labels,
        list(class_names),
        source=source,
        shapes=None if uniform else shapes,
        view_size=image_size,
        evaluation_views=np.concatenate(views),
        evaluation_size=image_size,
    )

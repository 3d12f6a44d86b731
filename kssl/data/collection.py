"""What every image source shares: labels, class names, a training size, subsets."""

from __future__ import annotations

import dataclasses

import numpy as np

from kssl.errors import DataError


class ImageCollection:
    """A mixin for dataclasses of images with `labels`, `class_names`, `source` and `view_size`.

    `PER_IMAGE` names the fields that hold one row per image; `subset` indexes them.
    """

    PER_IMAGE: tuple[str, ...] = ("labels",)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name (empty for unlabeled sets)."""
        if self.labels is None:
            return {}
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(count) for name, count in zip(self.class_names, counts)}

    @property
    def image_size(self) -> int:
        """The training size of the views (`view_size`; set it with `at_size`)."""
        if self.view_size is None:
            raise DataError(f"No training size is set for the images of {self.source!r}: use .at_size(SIZE).")
        return int(self.view_size)

    def at_size(self, image_size: int):
        """The same images, for views of `image_size` pixels."""
        return dataclasses.replace(self, view_size=int(image_size))

    def subset(self, indices, source: str | None = None):
        """The images at `indices` (and their labels), as the same kind of collection."""
        indices = np.asarray(indices)
        rows = {name: getattr(self, name)[indices] for name in self.PER_IMAGE if getattr(self, name) is not None}
        return dataclasses.replace(self, **rows, class_names=list(self.class_names), source=source or self.source)

"""One collection of two sets of images: the training split and the images without a class
(`root/unlabeled/` or `--unlabeled`), for pretraining and semi-supervised fine-tuning."""

from __future__ import annotations

import dataclasses

import numpy as np

from kssl.data.files import ImageFiles
from kssl.data.image_set import ImageSet


def concatenated(first, second, source: str | None = None):
    """The images of `first` then `second` (both `ImageFiles`, or both `ImageSet`s), without
    labels: what self-supervision and pseudo-labels read. In-memory images of different
    shapes share one zero-padded array, their shapes kept (`ImageSet.shapes`).

    Examples:
        >>> a = ImageSet(np.zeros((2, 4, 6, 3), np.uint8), np.array([0, 1]), ["x", "y"])
        >>> b = ImageSet(np.ones((1, 5, 5, 3), np.uint8))
        >>> both = concatenated(a, b)
        >>> both.images.shape, both.labels, both.shape_array().tolist()
        ((3, 5, 6, 3), None, [[4, 6], [4, 6], [5, 5]])
    """
    source = source or f"{first.source} + {second.source}"
    view_size = first.view_size or second.view_size
    if isinstance(first, ImageFiles) and isinstance(second, ImageFiles):
        sizes = None if first.sizes is None or second.sizes is None else np.concatenate([first.sizes, second.sizes])
        return ImageFiles(np.concatenate([first.paths, second.paths]), None, [], source=source, sizes=sizes,
                          view_size=view_size)  # fmt: skip
    if isinstance(first, ImageSet) and isinstance(second, ImageSet):
        shapes = np.concatenate([first.shape_array(), second.shape_array()])
        height, width = shapes.max(axis=0)
        images = np.zeros((len(shapes), height, width, 3), np.uint8)
        images[: len(first), : first.images.shape[1], : first.images.shape[2]] = first.images
        images[len(first) :, : second.images.shape[1], : second.images.shape[2]] = second.images
        same = (shapes == shapes[0]).all() and tuple(shapes[0]) == (height, width)
        return dataclasses.replace(first, images=images, labels=None, class_names=[], source=source,
                                   shapes=None if same else shapes, view_size=view_size)  # fmt: skip
    raise TypeError(f"Cannot put {type(first).__name__} and {type(second).__name__} in one collection.")

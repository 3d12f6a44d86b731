"""A PNG grid of augmented view pairs: what the model sees during pretraining."""

from __future__ import annotations

import pathlib

import numpy as np

from kssl.outputs.atomic import atomic_file


def save_view_grid(images, augmentation, path, num_images: int = 8, seed: int = 0, scale: int = 4, labels=None):
    """Saves a PNG with one row per image: the original, then each of its augmented views.

    The rows are a seeded random sample of the images, spread over the classes when
    `labels` are given (one image of each class in turn), so the grid shows what the
    model sees across the user's data, not the first images of one class.

    Args:
        images: `(N, H, W, 3)` uint8 images, an `ImageSet`, or streamed `ImageFiles`
            (only the sampled images are decoded).
        augmentation: a `ViewAugmentation` (or any `(images, seed) -> views` callable),
            shown as two views, or a list of them, one per view (a method's
            `view_augmentations`, of any number and sizes: multi-crop's small crops are
            shown at their own size).
        path: where to write the PNG; written atomically (temporary file, then rename).
        num_images: how many rows to show.
        seed: the sampling and augmentation seed; the same seed draws the same grid.
        scale: integer upscaling of each tile (nearest neighbour), so 32-px images
            are large enough to look at.
        labels: optional `(N,)` class ids, to sample across classes (an image set's own
            labels are used when it has them).

    Returns:
        The path written, as a `pathlib.Path`.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> from kssl.data.augment import ViewAugmentation
        >>> out = save_view_grid(np.zeros((2, 8, 8, 3), "uint8"), ViewAugmentation(8),
        ...                      os.path.join(tempfile.mkdtemp(), "views.png"))
        >>> out.suffix
        '.png'
    """
    from PIL import Image

    augmentations = list(augmentation) if isinstance(augmentation, (tuple, list)) else [augmentation] * 2
    size = max(view.image_size for view in augmentations)
    shapes = None
    if not isinstance(images, np.ndarray) and hasattr(images, "subset"):  # an ImageSet or a streamed source
        chosen = images.subset(np.sort(preview_indices(len(images), num_images, seed, images.labels)))
        if hasattr(chosen, "load"):  # streamed files: decode just these
            chosen = chosen.load(size, skip_bad_images=True, progress=False)
        images, shapes, originals = chosen.images, chosen.shapes, chosen.square(size)
    else:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
            raise ValueError(f"images must be a non-empty (N, H, W, 3) array. Received shape: {images.shape}")
        images = originals = images[preview_indices(len(images), num_images, seed, labels)]
    shape_argument = {"shapes": shapes} if shapes is not None else {}
    views = [np.asarray(view(images, seed=[seed, i], **shape_argument)) for i, view in enumerate(augmentations)]
    gap = np.full((size, max(1, size // 8), 3), 255, np.uint8)
    rows = []
    for i in range(len(images)):
        source = Image.fromarray(originals[i].astype(np.uint8)).resize((size, size), Image.BILINEAR)
        tiles = [np.asarray(source)] + [_on_tile(_to_uint8(view[i]), size) for view in views]
        rows.append(np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1))
    grid = np.concatenate(
        [np.concatenate([row, np.full((max(1, size // 8), row.shape[1], 3), 255, np.uint8)]) for row in rows]
    )
    grid = np.kron(grid, np.ones((scale, scale, 1), np.uint8))
    return write_png_atomically(Image.fromarray(grid), path)


def preview_indices(count: int, num_images: int, seed: int = 0, labels=None) -> np.ndarray:
    """A seeded sample of `num_images` indices out of `count`, taking the classes in turn.

    Examples:
        >>> labels = np.repeat(np.arange(4), 100)  # 4 classes, sorted as a folder lists them
        >>> sorted(set(labels[preview_indices(400, 8, seed=0, labels=labels)].tolist()))
        [0, 1, 2, 3]
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.permutation(count)[:num_images])
    labels = np.asarray(labels)
    classes = rng.permutation(np.unique(labels))
    members = {c: rng.permutation(np.flatnonzero(labels == c)).tolist() for c in classes}
    chosen = []
    while len(chosen) < min(num_images, count):
        for c in classes:
            if members[c] and len(chosen) < num_images:
                chosen.append(members[c].pop())
    return np.asarray(chosen)


def _on_tile(view, size):
    """A view smaller than the tile (a multi-crop local crop) in its top-left corner, on white."""
    if view.shape[0] == size:
        return view
    tile = np.full((size, size, 3), 255, np.uint8)
    tile[: view.shape[0], : view.shape[1]] = view
    return tile


def _to_uint8(view):
    return np.clip(np.round(np.asarray(view) * 255.0), 0, 255).astype(np.uint8)


def write_png_atomically(image, path) -> pathlib.Path:
    """Saves a PIL image to `path` through a temporary file in the same folder."""
    with atomic_file(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return pathlib.Path(path)

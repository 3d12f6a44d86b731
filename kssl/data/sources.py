"""Image sources -> an in-memory `ImageSet` of uint8 images and integer labels.

Every source decodes its images once, resizes them to one square size and keeps them
in memory as a `(N, S, S, 3)` uint8 array (CIFAR-10's 50,000 32-px images take 150 MB),
so that epochs after the first cost no decoding at all.

Sources:
    `from_folder`  `root/<class>/<image>` or `root/<split>/<class>/<image>`
    `from_tfds`    a TensorFlow Datasets name and split
    `from_arrays`  in-memory `(x, y)` arrays
    `load_digits`  scikit-learn's handwritten digits, shipped with scikit-learn, so
                   it works offline on a fresh machine
    `load`         one string for all of them: a folder, `tfds:NAME[:SPLIT]` or `digits`,
                   parsed by `parse_data_spec` (the one parser of such strings)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib

import numpy as np

from kssl.data.files import class_root  # noqa: F401  (re-exported: folders live in files)
from kssl.data.image_set import ImageSet, image_set_from_padded_batches, padded_image_set  # noqa: F401
from kssl.errors import DataError

logger = logging.getLogger("kssl")

EMBEDDED_DATASETS = ("digits",)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A parsed data string: what `--data` and `kssl.load` take.

    Attributes:
        kind: `"embedded"`, `"tfds"` or `"folder"`.
        name: the embedded set's name, the TFDS name, or the folder path.
        split: the split asked for in the string (TFDS only: `tfds:NAME:SPLIT`), else None.
    """

    kind: str
    name: str
    split: str | None = None

    @property
    def short_name(self) -> str:
        """A name fit for a folder: `digits`, `cifar10`, or the folder's own name."""
        return pathlib.Path(self.name.rstrip("/")).name or "data"


def parse_data_spec(spec) -> DataSpec:
    """Parses a folder path, `tfds:NAME`, `tfds:NAME:SPLIT` or an embedded dataset name.

    A kind with a prefix (`SOURCES`) is written `PREFIX:NAME[:SPLIT]`; a split may hold
    colons and slicing (`train[:10%]`): everything after the second colon is the split.

    Examples:
        >>> parse_data_spec("tfds:cifar10:train[:10%]")
        DataSpec(kind='tfds', name='cifar10', split='train[:10%]')
        >>> parse_data_spec("digits").kind, parse_data_spec("photos/").kind
        ('embedded', 'folder')
    """
    spec = str(spec)
    if spec in EMBEDDED_DATASETS:
        return DataSpec("embedded", spec)
    for kind, source in SOURCES.items():
        if source.prefix and spec.startswith(source.prefix):
            name, _, split = spec[len(source.prefix) :].partition(":")
            if not name or (_ and not split):
                raise DataError(f"A {kind} dataset is written {source.prefix}NAME or {source.prefix}NAME:SPLIT. "
                                f"Received: {spec!r}")  # fmt: skip
            return DataSpec(kind, name, split or None)
    if os.path.exists(spec) or os.sep in spec or spec.startswith("."):
        return DataSpec("folder", spec)
    prefixes = ", ".join(f"{source.prefix}NAME" for source in SOURCES.values() if source.prefix)
    raise DataError(
        f"Unknown dataset {spec!r}: not a folder, not {prefixes}, and not an embedded dataset "
        f"({', '.join(EMBEDDED_DATASETS)})."
    )


def load(spec: str, image_size: int = 32, split: str | None = None, **kwargs) -> ImageSet:
    """Loads images from a folder path, `tfds:NAME[:SPLIT]`, or an embedded dataset name.

    Examples:
        >>> load("digits", image_size=16, split="test").images.shape
        (360, 16, 16, 3)
    """
    parsed = parse_data_spec(spec)
    return SOURCES[parsed.kind].load(parsed, image_size, split, **kwargs)


def from_folder(
    root,
    image_size: int = 32,
    split: str | None = None,
    skip_bad_images: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ImageSet:
    """Reads `root/<class>/<image>` (or `root/<split>/<class>/<image>`) into memory.

    JPEG, PNG, BMP and GIF (first frame) are read; grayscale, palette and RGBA images
    become RGB (alpha is dropped). Every image keeps its aspect ratio: its shorter side
    is resized to `kssl.data.decoding.stored_side(image_size)` (1.5x the training size;
    smaller images keep their own size), so random crops come from a copy larger than
    the views; an image longer than 2:1 keeps its centred 2:1 part
    (`kssl.data.decoding.stored_shape`). Images of different shapes share one zero-padded array, with each
    image's shape in `ImageSet.shapes`. Files with other extensions are skipped with
    one warning that counts them. A corrupt or empty image file is an error naming the
    file, unless `skip_bad_images=True`, which skips it with a warning.

    Args:
        root: the folder.
        image_size: the training size the images are for.
        split: for `root/<split>/<class>/<image>` layouts, the split folder to read;
            defaults to `train` when `root` holds split folders.
        skip_bad_images: skip unreadable image files instead of raising.
        workers: decoding threads (default: the number of CPUs).
        progress: show a progress bar while listing and decoding.

    Class ids follow the sorted class folder names.
    """
    from kssl.data.files import list_folder

    files = list_folder(root, split, skip_bad_images=skip_bad_images, progress=progress)
    return files.load(image_size, skip_bad_images, workers, progress)


def from_arrays(x, y=None, class_names=None, image_size: int | None = None, source: str = "arrays") -> ImageSet:
    """Wraps in-memory images as an `ImageSet`.

    Args:
        x: `(N, H, W)`, `(N, H, W, 1)`, `(N, H, W, 3)` or `(N, H, W, 4)` images, uint8 in
            [0, 255] or float in [0, 1].
        y: optional `(N,)` integer labels in `[0, num_classes)`.
        class_names: names of the classes; default `"0"`, `"1"`, ...
        image_size: the training size: images are resized (bilinear) so that their shorter
            side is `image_size`, aspect kept (default: keep them as they are).

    Examples:
        >>> import numpy as np
        >>> from_arrays(np.zeros((5, 8, 8), "uint8"), [0, 1, 0, 1, 1]).class_counts()
        {'0': 2, '1': 3}
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4) or len(x) == 0:
        raise DataError(f"x must be a non-empty (N, H, W[, 1|3|4]) image array. Received shape: {x.shape}")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) and np.nanmax(x) > 1.0 + 1e-6:
            raise DataError("Float images must be in [0, 1]; pass uint8 for images in [0, 255].")
        x = np.clip(np.round(x.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] == 4:
        x = x[..., :3]
    height, width = x.shape[1:3]
    size = image_size or min(height, width)
    views = None
    if min(height, width) != size:  # one shape for all: one batched resize, aspect kept
        import tensorflow as tf

        from kssl.data.augment import as_uint8
        from kssl.data.evaluation_view import EvaluationView

        # What is measured is the originals' view, as a model exported from them serves it.
        views = np.concatenate([EvaluationView(size).crop(x[i : i + 1024]).numpy() for i in range(0, len(x), 1024)])
        scale = size / min(height, width)
        x = as_uint8(tf.image.resize(x, (round(height * scale), round(width * scale)))).numpy()
    labels = None
    if y is not None:
        labels = np.asarray(y).astype(np.int64).reshape(-1)
        if len(labels) != len(x):
            raise DataError(f"x has {len(x)} images but y has {len(labels)} labels.")
        if labels.min() < 0:
            raise DataError(f"Labels must be class ids >= 0. Received a label {labels.min()}.")
        num_classes = len(class_names) if class_names else int(labels.max()) + 1
        if labels.max() >= num_classes:
            raise DataError(f"Label {labels.max()} is out of range for {num_classes} class names.")
        class_names = list(class_names or [str(i) for i in range(num_classes)])
    view_size = None if x.shape[1] == x.shape[2] else size  # a square's training size is its side
    return ImageSet(
        images=np.ascontiguousarray(x),
        labels=labels,
        class_names=list(class_names or []),
        source=source,
        view_size=view_size,
        evaluation_views=views,
        evaluation_size=None if views is None else size,
    )


def from_tfds(name: str, split: str = "train", image_size: int = 32, data_dir=None, download: bool = True) -> ImageSet:
    """Loads a TensorFlow Datasets image classification set (`image` and `label` features).

    Args:
        name: the TFDS name, e.g. `"cifar10"`.
        split: a TFDS split string, e.g. `"train"` or `"train[:10%]"`.
        image_size: the training size. Each image is stored as a folder's is
            (`kssl.data.decoding.stored_copy`): its centred part of at most 2:1, the shorter
            side at 1.5x `image_size` (never enlarged), so random crops come from a copy
            larger than the views; the originals' evaluation views are kept beside.
        data_dir: TFDS data directory (default: the `TFDS_DATA_DIR` environment variable,
            else TFDS's own `~/tensorflow_datasets`).
        download: let TFDS download the data if it is not in `data_dir`.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from kssl.data.decoding import stored_copy
    from kssl.data.evaluation_view import EvaluationView
    from kssl.data.tfds_stream import tfds_builder

    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
    builder = tfds_builder(name, data_dir)
    try:
        if download:
            builder.download_and_prepare()
        dataset = builder.as_dataset(split=split, as_supervised=True)
    except Exception as error:  # TFDS raises many types for network and split errors.
        raise DataError(
            f"Could not load TFDS dataset {name!r} split {split!r}: {type(error).__name__}: {error}. "
            "Without internet, prepare it on a connected machine and pass data_dir=."
        ) from None
    label_feature = builder.info.features["label"]
    class_names = list(getattr(label_feature, "names", None) or [])

    @tf.autograph.experimental.do_not_convert  # plain TensorFlow ops: no AutoGraph needed
    def resize(image, label):
        image = tf.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image[..., :3]
        view = EvaluationView(image_size).crop(image[None])[0]  # the original's, as measured and served
        image = stored_copy(image, image_size)
        return image, tf.shape(image)[:2], label, view

    batches = dataset.map(resize, num_parallel_calls=tf.data.AUTOTUNE).padded_batch(1024)
    return image_set_from_padded_batches(tfds.as_numpy(batches), class_names, f"tfds:{name}:{split}", image_size)


def load_digits(image_size: int = 32, split: str = "train") -> ImageSet:
    """scikit-learn's handwritten digits (1,797 8x8 images, 10 classes), as RGB.

    Shipped inside scikit-learn, so it works offline. The split is a fixed stratified
    80/20 division: `"train"` (1,437 images), `"test"` (360) or `"all"`.

    Examples:
        >>> digits = load_digits(image_size=16)
        >>> len(digits), digits.num_classes
        (1437, 10)
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test", "all"):
        raise DataError(f"digits has splits 'train', 'test' and 'all'. Received: split={split!r}")
    data = sklearn_digits()
    images = (data.images / 16.0).astype(np.float32)  # pixel values 0-16
    indices = np.arange(len(images))
    if split != "all":
        train, test = train_test_split(indices, test_size=0.2, stratify=data.target, random_state=0)
        indices = np.sort(train if split == "train" else test)
    return from_arrays(
        images[indices],
        data.target[indices],
        [str(i) for i in range(10)],
        image_size=image_size,
        source=f"digits:{split}",
    )


@dataclasses.dataclass(frozen=True)
class SourceKind:
    """One kind of data string (`DataSpec.kind`): how it is recognised and read.

    Attributes:
        load: `(spec, image_size, split, **kwargs) -> ImageSet`, what `load` calls.
        train_test: `"module:function"` of `(spec, image_size, notes, **options) -> (train,
            test)`, a run's train and test sets with its choices in `notes` (see
            `kssl.app.data.load_train_test`); imported when a run asks for it.
        prefix: the data strings of this kind start with it (`"tfds:"`); None for the
            embedded names and folders, which `parse_data_spec` tells apart itself.
    """

    load: object
    train_test: str
    prefix: str | None = None

    def run_sets(self):
        """The `train_test` function, imported."""
        from kssl.registry import import_target

        return import_target(self.train_test)


# Every kind of data string: a new kind is its module (a loader and a train/test function)
# and one entry here.
SOURCES = {
    "embedded": SourceKind(
        lambda spec, image_size, split, **kwargs: load_digits(image_size, split or "train"),
        "kssl.app.data:embedded_train_test",
    ),
    "tfds": SourceKind(
        lambda spec, image_size, split, **kwargs: from_tfds(
            spec.name, split=split or spec.split or "train", image_size=image_size, **kwargs
        ),
        "kssl.app.data:tfds_train_test",
        prefix="tfds:",
    ),
    "folder": SourceKind(
        lambda spec, image_size, split, **kwargs: from_folder(spec.name, image_size, split, **kwargs),
        "kssl.app.data:folder_train_test",
    ),
}

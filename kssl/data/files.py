"""A folder of image files, listed once and read as training goes (`ImageFiles`).

Listing a million files takes seconds with `os.scandir`; the listing is saved in kssl's
cache folder and reused by later runs while the folder is unchanged (every listed
folder keeps its modification time, which changes when a file in it is added, removed
or renamed). Nothing is decoded here: `kssl.data.pipeline` reads and decodes the files
inside `tf.data`, and `ImageFiles.load` decodes them into memory when they fit.

Examples:
    >>> import pathlib, tempfile
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("cat", "dog"):
    ...     (root / name).mkdir()
    ...     Image.new("RGB", (40, 30)).save(root / name / "a.jpg")
    >>> files = list_folder(root, progress=False)
    >>> len(files), files.class_names, files.class_counts()
    (2, ['cat', 'dog'], {'cat': 1, 'dog': 1})
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib

import numpy as np

from kssl.data.collection import ImageCollection
from kssl.data.decoding import check_unreadable, decode_files
from kssl.data.orientation import pil_orientation
from kssl.errors import DataError
from kssl.outputs.atomic import atomic_file
from kssl.runtime.terminal import progress_bar

logger = logging.getLogger("kssl")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
LISTING_VERSION = 3


def cache_root() -> pathlib.Path:
    """kssl's cache folder: `$KSSL_CACHE_DIR`, else `~/.cache/kssl`."""
    return pathlib.Path(os.environ.get("KSSL_CACHE_DIR") or pathlib.Path.home() / ".cache" / "kssl").expanduser()


@dataclasses.dataclass
class ImageFiles(ImageCollection):
    """Image files and their labels, decoded only when read (streaming).

    Attributes:
        paths: `(N,)` array of file paths (str).
        labels: `(N,)` int64 class ids, or None.
        class_names: the name of each class id.
        source: where the files came from, for messages and reports.
        sizes: `(N,)` file sizes in bytes (from the listing).
    """

    paths: np.ndarray
    labels: np.ndarray | None = None
    class_names: list[str] = dataclasses.field(default_factory=list)
    source: str = ""
    sizes: np.ndarray | None = None
    view_size: int | None = None
    PER_IMAGE = ("paths", "labels", "sizes")

    def __len__(self) -> int:
        return len(self.paths)

    def image_shapes(self, count: int = 200, seed: int = 0) -> np.ndarray:
        """`(height, width)` of a seeded sample of the images, read from their headers only."""
        from PIL import Image

        rng = np.random.default_rng(seed)
        chosen = rng.permutation(len(self))[:count]
        shapes = []
        for index in chosen:
            try:
                with Image.open(self.paths[index]) as image:
                    sideways = pil_orientation(image) >= 5  # stored turned by a quarter
                    shapes.append((image.width, image.height) if sideways else (image.height, image.width))
            except Exception:  # noqa: BLE001 - an unreadable file is reported when it is read
                continue
        if not shapes:
            raise DataError(f"None of {len(chosen)} sampled files of {self.source!r} is a readable image.")
        return np.asarray(shapes)

    def load(self, image_size: int, skip_bad_images: bool = False, workers: int | None = None, progress=True):
        """Decodes the files into an in-memory `ImageSet` for training at `image_size`.

        Each image keeps its aspect ratio and is stored with its shorter side at
        `stored_side(image_size)` (never enlarged), so random crops are cut from a copy
        larger than the training size; one longer than 2:1 keeps its centred 2:1 part
        (`stored_shape`).
        """
        return decode_files(self, image_size, skip_bad_images, workers, progress)

    def reader(self):
        """How the pipelines read these files: each decoded inside `tf.data`, only the region its views need."""
        from kssl.data.readers import FileReader

        return FileReader(self)


def list_folder(
    root,
    split: str | None = None,
    refresh: bool = False,
    skip_bad_images: bool = False,
    progress: bool = True,
    class_names=None,
) -> ImageFiles:
    """Lists `root/<class>/<image>` (or `root/<split>/<class>/<image>`) without decoding.

    Files with other extensions are skipped with one warning that counts them. A
    zero-byte image file is an error naming it, or skipped with a warning when
    `skip_bad_images`. The listing is cached (`cache_root()/listings`) and reused while
    no listed folder has changed; `refresh=True` lists again.

    Class ids are positions in `class_names`, the training split's class names: by
    default the sorted class folders of `root/train` when `root` holds a `train` split,
    else of the folder listed. So a test split that lacks a class keeps every other
    class's id; a class folder that is not among `class_names` is an error naming it.
    """
    root = pathlib.Path(root).expanduser()
    if not root.exists():
        raise DataError(f"No folder at {str(root)!r}: check the path passed as data.")
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is a file, not a folder of class subfolders.")
    folder = class_root(root, split).resolve()
    if class_names is None and split not in (None, "train") and (root / "train").is_dir():
        class_names = list_folder(root, "train", refresh, skip_bad_images, progress=False).class_names
    listing, paths, labels, sizes = _listed(folder, refresh, skip_bad_images, progress, any_layout=False)
    names = listing["class_names"]
    if class_names is None:  # the training split: its classes are the folders that hold images
        counts = np.bincount(labels, minlength=len(names))
        if not counts.all():
            empty = [name for name, count in zip(names, counts) if not count]
            logger.warning("Left out %d class folder(s) without images in %s: %s", len(empty), folder, ", ".join(empty))
            class_names = [name for name, count in zip(names, counts) if count]
    if class_names is not None and list(class_names) != names:
        labels, names = _renumbered(labels, names, list(class_names), folder)
    return ImageFiles(paths, labels, names, source=str(folder), sizes=sizes)


def list_images(root, refresh: bool = False, skip_bad_images: bool = False, progress: bool = True) -> ImageFiles:
    """Every image file under `root`, in folders of any layout and depth, without labels.

    For images nobody has labeled yet (`kssl select`): no class folders are needed. Hidden
    files and folders, folders holding a kssl run and links back to a listed folder are
    skipped, as `list_folder` skips them; the listing is cached alike.

    Examples:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("a.png", "trip/day1/b.jpg"):
        ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
        ...     Image.new("RGB", (8, 8)).save(root / name)
        >>> files = list_images(root, progress=False)
        >>> [pathlib.Path(p).relative_to(root).as_posix() for p in files.paths], files.labels
        (['a.png', 'trip/day1/b.jpg'], None)
    """
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"No folder at {str(root)!r}: pass the folder that holds the images.")
    folder = root.resolve()
    _, paths, _, sizes = _listed(folder, refresh, skip_bad_images, progress, any_layout=True)
    return ImageFiles(paths, None, [], source=str(folder), sizes=sizes)


def _listed(folder, refresh, skip_bad_images, progress, any_layout):
    """`folder`'s listing (cached) and its paths, labels and sizes, checked: what `list_folder`
    and `list_images` share."""
    key = ("any:" if any_layout else "") + str(folder)
    cache = cache_root() / "listings" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")
    listing = None if refresh else _cached_listing(cache)
    if listing is None:
        listing = _scan(folder, progress, any_layout)
        try:
            with atomic_file(cache) as tmp:
                tmp.write_text(json.dumps(listing))
        except OSError as error:  # a read-only home: list again next time
            logger.warning("Could not save the listing of %s in %s: %s", folder, cache, error)
    else:
        logger.info("Reusing the listing of %s (%d files) from %s", folder, len(listing["paths"]), cache)
    if listing["others"]:
        logger.warning(
            "Skipped %d file(s) that are not images (%s), e.g. %s",
            listing["others"],
            "/".join(IMAGE_EXTENSIONS),
            listing["other_example"],
        )
    check_unreadable(listing["broken"], skip_bad_images, "broken links")
    paths = np.asarray([str(folder / p) for p in listing["paths"]], dtype=object)
    labels = np.asarray(listing["labels"], np.int64)
    sizes = np.asarray(listing["sizes"], np.int64)
    if not len(paths):
        where = "the folders of" if any_layout else "the class folders of"
        raise DataError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {where} {str(folder)!r}.")
    empty = np.flatnonzero(sizes == 0)
    check_unreadable(
        [f"Cannot read image {paths[i]!r}: it is empty (0 bytes)." for i in empty], skip_bad_images, "empty"
    )
    if len(empty):
        keep = sizes > 0
        paths, labels, sizes = paths[keep], labels[keep], sizes[keep]
    return listing, paths, labels, sizes


# Images without a class, beside the class folders (root/unlabeled/ next to root/cat/,
# root/dog/): pretraining and semi-supervised fine-tuning use them; they are no class.
UNLABELED_FOLDER = "unlabeled"


def _beside_classes(names: list[str]) -> list[str]:
    """`names` without `unlabeled` when other folders sit beside it (alone, it is the one
    folder of a set to pretrain on, as `kssl pretrain` reads it)."""
    return [name for name in names if name != UNLABELED_FOLDER] if len(names) > 1 else names


def class_folders(folder) -> list[str]:
    """The sorted class folder names of `folder` (hidden folders, kssl run folders and an
    `unlabeled` folder beside classes left out).

    Examples:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("dog", "cat", "unlabeled"):
        ...     (root / name).mkdir()
        >>> class_folders(root)
        ['cat', 'dog']
    """
    return _beside_classes(sorted(
        e.name for e in os.scandir(folder) if _is_folder(e) and not e.name.startswith(".") and not holds_run(e.path)
    ))  # fmt: skip


def unlabeled_folder(root) -> pathlib.Path | None:
    """`root/unlabeled/` (or `root/train/unlabeled/`) when it sits beside class or split
    folders: images without a class, for pretraining and semi-supervised fine-tuning."""
    root = pathlib.Path(root)
    for parent in (root, root / "train"):
        candidate = parent / UNLABELED_FOLDER
        if candidate.is_dir() and parent.is_dir():
            others = [e for e in os.scandir(parent) if _is_folder(e) and not e.name.startswith(".")]
            if len(others) > 1:
                return candidate
    return None


def holds_run(path) -> bool:
    """Whether `path` is a kssl run folder (its `config.json` and `metrics.json`): its plots
    are no class of the user's images."""
    return os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(os.path.join(path, "metrics.json"))


def _renumbered(labels, names, class_names, folder):
    """Labels numbered by `class_names` (the training split's) instead of the folder's own `names`."""
    counts = np.bincount(labels, minlength=len(names))
    unknown = [name for name, count in zip(names, counts) if count and name not in class_names]
    if unknown:
        raise DataError(
            f"{str(folder)!r} has class folder(s) {', '.join(map(repr, unknown))} that the training split lacks "
            f"(its classes: {', '.join(class_names)}). Give every class training images, or remove the folder."
        )
    position = np.asarray([class_names.index(name) if name in class_names else -1 for name in names], np.int64)
    return position[labels], class_names  # -1 only for folders without images: no label takes it


def _scan(folder: pathlib.Path, progress: bool, any_layout: bool = False) -> dict:
    # Any layout: the folder itself is the one group walked (its images all get label 0).
    class_dirs = ["."] if any_layout else class_folders(folder)
    runs = [e.path for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".") and holds_run(e.path)]
    if runs:
        logger.warning("Skipped %d folder(s) that hold a kssl run, not a class: %s", len(runs), ", ".join(runs))
    paths, labels, sizes, folders = [], [], [], {".": os.stat(folder).st_mtime_ns}
    others, other_example, broken = 0, "", []
    # Real paths of the folders listed so far: a symbolic link back to one of them (or to
    # the root or above it, as `a/up -> ..`) would list the same images again, without end.
    root_real = os.path.realpath(folder)
    seen = {root_real}
    with progress_bar(len(class_dirs), f"Listing {folder.name}", progress, unit="folder") as bar:
        for label, name in enumerate(class_dirs):
            stack = [name]
            seen.add(os.path.realpath(folder / name))
            while stack:
                relative = stack.pop()
                folders[relative] = os.stat(folder / relative).st_mtime_ns
                entries = sorted(os.scandir(folder / relative), key=lambda e: e.name)
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if _is_folder(entry):
                        real = os.path.realpath(entry.path)
                        if real in seen or root_real.startswith(real.rstrip(os.sep) + os.sep):
                            logger.warning("Skipped %s: a symbolic link to a folder listed already", entry.path)
                        elif holds_run(entry.path):
                            logger.warning("Skipped %s: it holds a kssl run, not images of its class", entry.path)
                        else:
                            seen.add(real)
                            stack.append(f"{relative}/{entry.name}")
                    elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                        try:
                            size = entry.stat().st_size
                        except OSError as error:  # a dangling link, or links that point at each other
                            broken.append(f"Cannot read image {entry.path!r}: {error.strerror.lower()}.")
                            continue
                        paths.append(f"{relative}/{entry.name}")
                        labels.append(label)
                        sizes.append(size)
                    else:
                        others += 1
                        other_example = other_example or str(folder / relative / entry.name)
            bar.update(1)
    return {
        "version": LISTING_VERSION,
        "any_layout": any_layout,
        "root": str(folder),
        "folders": folders,
        "class_names": class_dirs,
        "paths": paths,
        "labels": labels,
        "sizes": sizes,
        "others": others,
        "other_example": other_example,
        "broken": broken,
    }


def _is_folder(entry) -> bool:
    """Whether a directory entry is a folder (False for links that loop: a file, reported as broken)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _cached_listing(cache: pathlib.Path) -> dict | None:
    try:
        listing = json.loads(cache.read_text())
        if listing.get("version") != LISTING_VERSION:
            return None
        root = pathlib.Path(listing["root"])
        for relative, mtime in listing["folders"].items():
            if os.stat(root / relative).st_mtime_ns != mtime:
                return None
        return listing if listing.get("any_layout") or class_folders(root) == listing["class_names"] else None
    except (OSError, ValueError, KeyError):
        return None


def class_root(root: pathlib.Path, split: str | None) -> pathlib.Path:
    """The folder holding the class folders: `root`, or its `split` (default `train`) folder."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and not holds_run(p))
    subdirs = [root / name for name in _beside_classes([p.name for p in subdirs])]
    if split is not None:
        if not (root / split).is_dir():
            names = ", ".join(p.name for p in subdirs) or "none"
            raise DataError(f"No split folder {split!r} in {str(root)!r}; its subfolders are: {names}.")
        return class_root(root / split, None)
    if not subdirs:
        has_images = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in root.iterdir() if p.is_file())
        if has_images:
            raise DataError(
                f"{str(root)!r} holds images but no class subfolders. kssl reads root/<class>/<image>; "
                "for unlabeled images, move them into one subfolder (e.g. root/unlabeled/)."
            )
        raise DataError(f"{str(root)!r} is empty: expected class subfolders root/<class>/<image>.")
    # A split layout: the subfolders hold class folders rather than images.
    nested = all(
        not any(f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS for f in d.iterdir())
        and any(c.is_dir() for c in d.iterdir())
        for d in subdirs
    )
    if nested:
        if (root / "train").is_dir():
            return root / "train"
        raise DataError(
            f"{str(root)!r} holds folders of folders ({', '.join(p.name for p in subdirs)}), not class folders of "
            "images. kssl reads root/<class>/<image>, or root/train/<class>/<image> with root/test/: pass one of "
            f"them as the data folder (e.g. {str(subdirs[0])!r}), or name the splits train and test "
            "(Python: list_folder(root, split=...))."
        )
    return root

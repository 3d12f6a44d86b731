"""A folder of image files, listed once and read as training goes (`ImageFiles`).

Listing a million files takes seconds with `os.scandir`; the listing is saved in kssl's
cache folder and reused by later runs while the folder is unchanged (every listed
folder keeps its modification time, which changes when a file in it is added, removed
or renamed). Nothing is decoded here: `kssl.data.pipeline` reads and decodes the files
inside `tf.data`, and `ImageFiles.load` decodes them into memory when they fit.

Example:
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
import re

import numpy as np

from kssl.atomic import atomic_file
from kssl.data.collection import ImageCollection
from kssl.data.image_set import ImageSet, padded_image_set
from kssl.data.orientation import orient_pil, pil_orientation
from kssl.errors import DataError

logger = logging.getLogger("kssl")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
LISTING_VERSION = 3


def cache_root() -> pathlib.Path:
    """kssl's cache folder: `$KSSL_CACHE_DIR`, else `~/.cache/kssl`."""
    return pathlib.Path(os.environ.get("KSSL_CACHE_DIR") or pathlib.Path.home() / ".cache" / "kssl").expanduser()


def progress_bar(total: int, description: str, enabled: bool = True, unit: str = "img"):
    """A tqdm progress bar with a total (to stderr) on a terminal or in a notebook, whole
    lines in a log (`kssl.terminal.progress_lines`), or a silent stand-in."""
    import sys

    from tqdm.auto import tqdm

    from kssl.terminal import live_display, progress_lines

    if enabled and not live_display(sys.stderr):
        return progress_lines(total, description, unit)
    return tqdm(total=total, desc=description, unit=unit, disable=not enabled)


def open_scaled(path, shorter_side: int):
    """The first frame of an image file as RGB, as kssl stores it: `stored_shape`.

    Its centred part of at most `MAX_STORED_ASPECT` (long side to short side), the
    shorter side at most `shorter_side`: small images are not enlarged. A JPEG is decoded
    at a reduced DCT scale where that suffices (several times faster), and turned as its
    EXIF orientation says (`kssl.data.orientation`); the resize is PIL's bilinear filter,
    which antialiases. Raises what PIL raises for unreadable files.
    """
    from PIL import Image

    with Image.open(path) as image:
        image.seek(0)  # the first frame of a GIF
        width, height = image.size
        scale = min(1.0, shorter_side / min(width, height))
        if image.format == "JPEG" and scale < 1.0:
            image.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
        orientation = pil_orientation(image)
        rgb = as_rgb(image)
        drafted_height, drafted_width = rgb.size[::-1]
        kept_height, kept_width = centred_part(drafted_height, drafted_width)
        if (kept_height, kept_width) != (drafted_height, drafted_width):
            top, left = (drafted_height - kept_height) // 2, (drafted_width - kept_width) // 2
            rgb = rgb.crop((left, top, left + kept_width, top + kept_height))
        rgb = orient_pil(rgb, orientation)  # turned before the resize, as streaming does
    size = stored_shape(height, width, shorter_side)[::-1]  # PIL's (width, height), as the file stores it
    size = size[::-1] if orientation >= 5 else size
    return rgb if rgb.size == size else rgb.resize(size, Image.BILINEAR)


# In memory (and in --cache-size copies), an image whose long side is more than twice its
# short side is stored as its centred part of that ratio. Every image shares one array
# padded to the largest stored height and width, so one 20 x 6,000 banner among 2,000
# small images took 864 MB for 3.5 MB of pictures; with the cap, 2,000 images of stored
# side S take at most 2,000 x 2S x 2S pixels whatever their shapes. Common photo shapes
# (4:3, 3:2, 16:9) are kept whole; a panorama trains on its middle. The centred square
# (the evaluation view, and what the SavedModel serves) lies inside the kept part.
MAX_STORED_ASPECT = 2.0


def centred_part(height: int, width: int) -> tuple[int, int]:
    """The `(height, width)` of an image's centred part of at most `MAX_STORED_ASPECT`.

    Example:
    >>> centred_part(20, 6000), centred_part(300, 400), centred_part(900, 300)
    ((20, 40), (300, 400), (600, 300))
    """
    return min(height, int(MAX_STORED_ASPECT * width)), min(width, int(MAX_STORED_ASPECT * height))


def stored_shape(height: int, width: int, shorter_side: int) -> tuple[int, int]:
    """The `(height, width)` kssl stores an image of `(height, width)` at, for a `shorter_side`:
    its `centred_part`, the shorter side at most `shorter_side` (never enlarged), aspect kept.

    Example:
    >>> stored_shape(375, 500, 24), stored_shape(20, 6000, 24), stored_shape(10, 12, 24)
    ((24, 32), (20, 40), (10, 12))
    """
    height, width = centred_part(height, width)
    scale = min(1.0, shorter_side / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def as_rgb(image):
    """A PIL image as 8-bit RGB, as TensorFlow's decoders give it.

    16-bit grayscale PNGs (PIL's modes `I;16*`, or `I`) keep their high byte, as
    `tf.io.decode_png` does; PIL's own `convert("RGB")` clips them at 255 (white).
    """
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        high_byte = np.asarray(image).astype(np.int64) >> 8
        image = Image.fromarray(np.clip(high_byte, 0, 255).astype(np.uint8), "L")
    return image.convert("RGB")


class Unreadable(str):
    """The message for an image file that could not be read (a result of `map_files`)."""


def map_files(function, paths, description: str, progress: bool = True, workers: int | None = None) -> list:
    """`function(path)` for every path on threads, with a progress bar; a file PIL cannot
    read gives an `Unreadable` message naming it instead of a result."""
    import concurrent.futures

    def run(path):
        try:
            return function(path)
        except Exception as error:  # noqa: BLE001 - PIL raises many types for corrupt files
            if not os.path.exists(path):
                reason = (
                    "it no longer exists; the folder changed after it was listed (--refresh-listing lists it again)"
                )
            elif os.path.getsize(path) == 0:
                reason = "it is empty (0 bytes)"
            else:
                reason = f"it cannot be decoded ({error})"
            return Unreadable(f"Cannot read image {str(path)!r}: {reason}.")

    results = []
    # PIL releases the GIL while decoding, so threads use every core.
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count()) as pool:
        with progress_bar(len(paths), description, progress) as bar:
            for result in pool.map(run, paths, chunksize=64):
                results.append(result)
                bar.update(1)
    return results


def check_unreadable(messages, skip_bad_images: bool, kind: str = "unreadable") -> None:
    """kssl's policy for unreadable image files: an error naming the first, or a warning.

    `messages` name the files (`Unreadable` results of `map_files`); `kind` says what is
    wrong with them in the count ("unreadable", "empty").
    """
    if not messages:
        return
    if not skip_bad_images:
        count = f" ({len(messages)} files are {kind})." if len(messages) > 1 else "."
        raise DataError(
            f"{messages[0]} Delete or replace it, or skip unreadable files with --skip-bad-images "
            f"(Python: skip_bad_images=True){count}"
        )
    logger.warning("Skipped %d %s image file(s), e.g. %s", len(messages), kind, messages[0])


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


def stored_side(image_size: int) -> int:
    """The shorter side of in-memory copies for training at `image_size`: 1.5x it.

    A SimCLR crop covers on average about half the image area, so about 0.7 of its
    side; at 1.5x the training size a typical crop is resized at about 1:1, big crops
    are downscaled and small ones upscaled, as from an original photo, for 2.25x the
    memory of squashed training-size squares.
    """
    return int(round(1.5 * image_size))


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

    Example:
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

    Example:
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


def cached_copies(files: ImageFiles, shorter_side: int, skip_bad_images: bool = False, progress=True) -> ImageFiles:
    """The files as downscaled JPEG copies (shorter side `shorter_side`) in kssl's cache.

    For folders whose originals are far larger than training needs (12-megapixel
    photos for 64-px views): each file is decoded once (at a reduced JPEG DCT scale
    where possible), resized keeping its aspect ratio (`stored_shape`: an image longer
    than 2:1 keeps its centred 2:1 part, as in memory) and saved at quality 90 under
    `cache_root()/images/<folder hash>-<side>/`. A copy's name is its original's whole
    name plus the original's size and modification time in nanoseconds
    (`cat/x.png.2f1a-17f3c2d9e0a4b000.jpg`): `x.png` and `x.jpg` get copies of their
    own, and a replaced original (even one that keeps an older time, as `cp -p`, `rsync
    -a`, `tar x` and `unzip` do) gets a new copy, its old one deleted. Images already
    small enough are copied as they are decoded. An unreadable file is an error naming
    it, or skipped with a warning and a count (`skip_bad_images`), before training
    starts.
    """
    if not isinstance(shorter_side, int) or shorter_side < 8:
        raise DataError(f"The cache's shorter side must be an integer of at least 8 px. Received: {shorter_side!r}")
    digest = hashlib.sha256(files.source.encode()).hexdigest()[:16]
    folder = cache_root() / "images" / f"{digest}-{shorter_side}"
    root = pathlib.Path(files.source)

    def target_of(path):
        return folder / pathlib.Path(path).relative_to(root)

    # Each cache folder is listed once, up front: a file's copy is then found by name.
    held = {}
    for parent in {target_of(path).parent for path in files.paths}:
        held[parent] = {e.name for e in os.scandir(parent)} if parent.is_dir() else set()

    def cache(path):
        target = target_of(path)
        stat = os.stat(path)
        name = f"{target.name}.{stat.st_size:x}-{stat.st_mtime_ns:x}.jpg"
        copy = target.parent / name
        if name in held[target.parent]:
            return str(copy)
        rgb = open_scaled(path, shorter_side)
        copy.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(copy, suffix=".jpg") as tmp:
            rgb.save(tmp, format="JPEG", quality=90)
        for stale in _copies_of(target.name, held[target.parent]) - {name}:
            (target.parent / stale).unlink(missing_ok=True)
        return str(copy)

    results = map_files(cache, files.paths, f"Caching {root.name} at {shorter_side} px", progress)
    check_unreadable([r for r in results if isinstance(r, Unreadable)], skip_bad_images)
    keep = np.flatnonzero([not isinstance(r, Unreadable) for r in results])
    return dataclasses.replace(
        files.subset(keep), paths=np.asarray([results[i] for i in keep], dtype=object), sizes=None
    )


def _copies_of(name: str, names) -> set:
    """The cached copies of the original `name` among `names` (`name.<size>-<mtime>.jpg`)."""
    pattern = re.compile(re.escape(name) + r"\.[0-9a-f]+-[0-9a-f]+\.jpg")
    return {n for n in names if pattern.fullmatch(n)}


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


def decode_files(files, image_size, skip_bad_images=False, workers=None, progress=True) -> ImageSet:
    """Decodes `ImageFiles` into memory, aspect kept, shorter side at `stored_side(image_size)`.

    When a stored copy is not its original (downscaled, or cut to its centred 2:1 part),
    the evaluation views of the originals are kept beside (`ImageSet.evaluation_views`,
    computed by the same graph as the exported model's), so that what is measured is what
    is served on the original files.
    """
    side = stored_side(image_size)

    def decoded(path):
        stored = open_scaled(path, side)
        with _opened(path) as original:
            same = original.size in (stored.size, stored.size[::-1])
        return np.asarray(stored, dtype=np.uint8), same

    results = map_files(decoded, files.paths, f"Decoding {pathlib.Path(files.source).name}", progress, workers)
    check_unreadable([r for r in results if isinstance(r, Unreadable)], skip_bad_images)
    ok = np.array([not isinstance(r, Unreadable) for r in results])
    if not ok.any():
        raise DataError("None of the image files could be read.")
    images = [r[0] for r in results if not isinstance(r, Unreadable)]
    labels = None if files.labels is None else files.labels[ok]
    loaded = padded_image_set(images, labels, list(files.class_names), files.source, view_size=image_size)
    if all(r[1] for r in results if not isinstance(r, Unreadable)):
        return loaded
    return dataclasses.replace(loaded, evaluation_views=original_views(files.subset(np.flatnonzero(ok)), image_size),
                               evaluation_size=image_size)  # fmt: skip


def _opened(path):
    from PIL import Image

    return Image.open(path)


def original_views(files, image_size: int) -> np.ndarray:
    """uint8 `(N, S, S, 3)`: the evaluation view of each original file at `image_size`, as
    the exported model computes it from the file (`kssl.data.pipeline.evaluation_images`
    streamed). A file that cannot be read here is an error: it was read a moment ago."""
    from kssl.data.augment import as_uint8
    from kssl.data.pipeline import evaluation_images

    batches = [as_uint8(views * 255.0).numpy() for views in evaluation_images(files.at_size(image_size), 256)]
    views = np.concatenate(batches) if batches else np.zeros((0, image_size, image_size, 3), np.uint8)
    if len(views) != len(files):
        raise DataError(f"{len(files) - len(views)} of the files of {files.source!r} changed while they were read.")
    return views

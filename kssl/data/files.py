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

import numpy as np

from kssl.atomic import atomic_file
from kssl.data.collection import ImageCollection
from kssl.errors import DataError

logger = logging.getLogger("kssl")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
LISTING_VERSION = 1


def cache_root() -> pathlib.Path:
    """kssl's cache folder: `$KSSL_CACHE_DIR`, else `~/.cache/kssl`."""
    return pathlib.Path(os.environ.get("KSSL_CACHE_DIR") or pathlib.Path.home() / ".cache" / "kssl").expanduser()


def progress_bar(total: int, description: str, enabled: bool = True):
    """A tqdm progress bar with a total (to stderr), or a silent stand-in."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img" if "ecod" in description else "it", disable=not enabled)


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
                    shapes.append((image.height, image.width))
            except Exception:  # noqa: BLE001 - an unreadable file is reported when it is read
                continue
        if not shapes:
            raise DataError(f"None of {len(chosen)} sampled files of {self.source!r} is a readable image.")
        return np.asarray(shapes)

    def load(self, image_size: int, skip_bad_images: bool = False, workers: int | None = None, progress=True):
        """Decodes the files into an in-memory `ImageSet` for training at `image_size`.

        Each image keeps its aspect ratio and is stored with its shorter side at
        `stored_side(image_size)` (never enlarged), so random crops are cut from a copy
        larger than the training size.
        """
        from kssl.data.sources import decode_files

        return decode_files(self, image_size, skip_bad_images, workers, progress)


def stored_side(image_size: int) -> int:
    """The shorter side of in-memory copies for training at `image_size`: 1.5x it.

    A SimCLR crop covers on average about half the image area, so about 0.7 of its
    side; at 1.5x the training size a typical crop is resized at about 1:1, big crops
    are downscaled and small ones upscaled, as from an original photo, for 2.25x the
    memory of squashed training-size squares.
    """
    return int(round(1.5 * image_size))


def list_folder(
    root, split: str | None = None, refresh: bool = False, skip_bad_images: bool = False, progress: bool = True
) -> ImageFiles:
    """Lists `root/<class>/<image>` (or `root/<split>/<class>/<image>`) without decoding.

    Files with other extensions are skipped with one warning that counts them. A
    zero-byte image file is an error naming it, or skipped with a warning when
    `skip_bad_images`. The listing is cached (`cache_root()/listings`) and reused while
    no listed folder has changed; `refresh=True` lists again.
    """
    from kssl.data.sources import class_root

    root = pathlib.Path(root).expanduser()
    if not root.exists():
        raise DataError(f"No folder at {str(root)!r}: check the path passed as data.")
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is a file, not a folder of class subfolders.")
    folder = class_root(root, split).resolve()
    cache = cache_root() / "listings" / (hashlib.sha256(str(folder).encode()).hexdigest()[:24] + ".json")
    listing = None if refresh else _cached_listing(cache)
    if listing is None:
        listing = _scan(folder, progress)
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
    paths = np.asarray([str(folder / p) for p in listing["paths"]], dtype=object)
    labels = np.asarray(listing["labels"], np.int64)
    sizes = np.asarray(listing["sizes"], np.int64)
    if not len(paths):
        raise DataError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in the class folders of {str(folder)!r}.")
    empty = np.flatnonzero(sizes == 0)
    if len(empty):
        message = f"Cannot read image {paths[empty[0]]!r}: it is empty (0 bytes)."
        if not skip_bad_images:
            raise DataError(
                f"{message} Delete or replace it, or skip unreadable files with --skip-bad-images "
                "(Python: skip_bad_images=True)" + (f" ({len(empty)} files are empty)." if len(empty) > 1 else ".")
            )
        logger.warning("Skipped %d empty image file(s), e.g. %s", len(empty), paths[empty[0]])
        keep = sizes > 0
        paths, labels, sizes = paths[keep], labels[keep], sizes[keep]
    return ImageFiles(paths, labels, listing["class_names"], source=str(folder), sizes=sizes)


def _scan(folder: pathlib.Path, progress: bool) -> dict:
    class_dirs = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    paths, labels, sizes, folders = [], [], [], {".": os.stat(folder).st_mtime_ns}
    others, other_example = 0, ""
    with progress_bar(len(class_dirs), f"Listing {folder.name}", progress) as bar:
        for label, name in enumerate(class_dirs):
            stack = [name]
            while stack:
                relative = stack.pop()
                folders[relative] = os.stat(folder / relative).st_mtime_ns
                entries = sorted(os.scandir(folder / relative), key=lambda e: e.name)
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir():
                        stack.append(f"{relative}/{entry.name}")
                    elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                        paths.append(f"{relative}/{entry.name}")
                        labels.append(label)
                        sizes.append(entry.stat().st_size)
                    else:
                        others += 1
                        other_example = other_example or str(folder / relative / entry.name)
            bar.update(1)
    return {
        "version": LISTING_VERSION,
        "root": str(folder),
        "folders": folders,
        "class_names": class_dirs,
        "paths": paths,
        "labels": labels,
        "sizes": sizes,
        "others": others,
        "other_example": other_example,
    }


def _cached_listing(cache: pathlib.Path) -> dict | None:
    try:
        listing = json.loads(cache.read_text())
        if listing.get("version") != LISTING_VERSION:
            return None
        root = pathlib.Path(listing["root"])
        for relative, mtime in listing["folders"].items():
            if os.stat(root / relative).st_mtime_ns != mtime:
                return None
        current = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        return listing if current == listing["class_names"] else None
    except (OSError, ValueError, KeyError):
        return None


def cached_copies(files: ImageFiles, shorter_side: int, skip_bad_images: bool = False, progress=True) -> ImageFiles:
    """The files as downscaled JPEG copies (shorter side `shorter_side`) in kssl's cache.

    For folders whose originals are far larger than training needs (12-megapixel
    photos for 64-px views): each file is decoded once (at a reduced JPEG DCT scale
    where possible), resized keeping its aspect ratio and saved at quality 90 under
    `cache_root()/images/<folder hash>-<side>/`; later runs reuse copies newer than
    their originals. Images already small enough are copied as they are decoded. An
    unreadable file is an error naming it, or skipped with a warning and a count
    (`skip_bad_images`), before training starts.
    """
    import concurrent.futures

    from PIL import Image

    if not isinstance(shorter_side, int) or shorter_side < 8:
        raise DataError(f"The cache's shorter side must be an integer of at least 8 px. Received: {shorter_side!r}")
    digest = hashlib.sha256(files.source.encode()).hexdigest()[:16]
    folder = cache_root() / "images" / f"{digest}-{shorter_side}"
    root = pathlib.Path(files.source)

    def cache(path):
        path = pathlib.Path(path)
        target = folder / path.relative_to(root).with_suffix(".jpg")
        try:
            if target.exists() and target.stat().st_mtime_ns >= path.stat().st_mtime_ns:
                return str(target)
            with Image.open(path) as image:
                image.seek(0)
                width, height = image.size
                scale = min(1.0, shorter_side / min(width, height))
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                if image.format == "JPEG" and scale < 1.0:
                    image.draft("RGB", size)
                rgb = image.convert("RGB")
                if rgb.size != size:
                    rgb = rgb.resize(size, Image.BILINEAR)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(target, suffix=".jpg") as tmp:
                rgb.save(tmp, format="JPEG", quality=90)
            return str(target)
        except Exception as error:  # noqa: BLE001 - PIL raises many types for corrupt files
            return DataError(f"Cannot read image {str(path)!r}: it cannot be decoded ({error}).")

    results = []
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        with progress_bar(len(files), f"Caching {root.name} at {shorter_side} px", progress) as bar:
            for result in pool.map(cache, files.paths, chunksize=64):
                results.append(result)
                bar.update(1)
    bad = [r for r in results if isinstance(r, DataError)]
    if bad and not skip_bad_images:
        raise DataError(
            f"{bad[0]} Delete or replace it, or skip unreadable files with --skip-bad-images"
            + (f" ({len(bad)} files are unreadable)." if len(bad) > 1 else ".")
        )
    if bad:
        logger.warning("Skipped %d unreadable image file(s), e.g. %s", len(bad), bad[0])
    keep = np.array([not isinstance(r, DataError) for r in results])
    cached = files.subset(np.flatnonzero(keep))
    cached.paths = np.asarray([r for r in results if not isinstance(r, DataError)], dtype=object)
    cached.sizes = None
    return cached

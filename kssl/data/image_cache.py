"""Downscaled JPEG copies of a folder's large photos in kssl's cache (`--cache-size`),
made once and found again by name, size and modification time."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
from typing import TYPE_CHECKING

import numpy as np

from kssl.data.decoding import Unreadable, check_unreadable, map_files, open_scaled
from kssl.data.files import cache_root
from kssl.errors import DataError
from kssl.outputs.atomic import atomic_file

if TYPE_CHECKING:
    from kssl.data.files import ImageFiles


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

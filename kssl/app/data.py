"""A run's data: train and test sets from a data string, with the choices printed
(training size, in memory or streamed) before any long decoding starts."""

from __future__ import annotations

import pathlib

import numpy as np

from kssl import defaults
from kssl.data import planning, sources
from kssl.data.files import UNLABELED_FOLDER, ImageFiles, holds_run, list_folder
from kssl.data.image_cache import cached_copies
from kssl.data.image_set import ImageSet
from kssl.data.planning import choose_streaming
from kssl.data.pools import concatenated
from kssl.data.sources import parse_data_spec
from kssl.data.tfds_stream import TFDSRecords
from kssl.errors import DataError
from kssl.runtime.precision import has_accelerator


def load_train_test(
    spec: str,
    image_size: int | None = None,
    seed: int = 0,
    skip_bad_images: bool = False,
    stream: bool | None = None,
    cache_size: int | None = None,
    refresh_listing: bool = False,
    notes: dict | None = None,
):
    """Train and test sets: the source's own splits, or a stratified 80/20 split.

    `tfds:NAME:SPLIT` trains on SPLIT (e.g. `train[:10%]`) and tests on `test`; a folder
    with `train/` and `test/` subfolders uses them; any other folder is split 80/20.
    Folders and TFDS sets are decoded into memory or streamed from disk
    (`kssl.data.planning.choose_streaming`; `stream` forces it); `image_size=None`
    takes the data's default (`default_image_size`). `notes`, if given, receives the
    choices and their reasons (`image_size`, `storage`, ...).
    """

    notes = {} if notes is None else notes
    parsed = sources.parse_data_spec(spec)
    options = dict(seed=seed, skip_bad_images=skip_bad_images, stream=stream, cache_size=cache_size,
                   refresh_listing=refresh_listing)  # fmt: skip
    return sources.SOURCES[parsed.kind].run_sets()(parsed, image_size, notes, **options)


def embedded_train_test(parsed, image_size, notes, **options):
    """The embedded digits' fixed train and test splits (`kssl.data.sources.load_digits`)."""
    reason = (
        notes.get("size_source") or "as asked (--image-size)" if image_size else "digits are 8x8: 16 px loses nothing"
    )
    image_size = image_size or defaults.DIGITS_IMAGE_SIZE
    notes.update(image_size=image_size, image_size_reason=reason, storage="in memory")
    announce_data(notes)
    return sources.load_digits(image_size, "train"), sources.load_digits(image_size, "test")


def tfds_train_test(parsed, image_size, notes, stream=None, **options):
    """A TFDS set's asked split (default `train`) and its `test` split, in memory or streamed."""

    records = TFDSRecords.open(parsed.name, parsed.split or "train")
    shapes = records.image_shapes(50)
    image_size = _chosen_size(image_size, shapes, notes)
    streaming, reason = planning.choose_streaming(len(records), shapes, image_size, stream)
    notes.update(storage="streaming" if streaming else "in memory", storage_reason=reason)
    announce_data(notes)
    if streaming:
        return records.at_size(image_size), TFDSRecords.open(parsed.name, "test").at_size(image_size)
    train = sources.from_tfds(parsed.name, parsed.split or "train", image_size)
    return train, sources.from_tfds(parsed.name, "test", image_size)


def folder_train_test(parsed, image_size, notes, seed=0, skip_bad_images=False, stream=None, cache_size=None,
                      refresh_listing=False):  # fmt: skip
    """A folder's `train/` and `test/`, or a stratified 80/20 split of it, in memory or streamed."""
    path = pathlib.Path(parsed.name)
    splits = ("train", "test") if (path / "train").is_dir() and (path / "test").is_dir() else (None,)
    _name_ignored_splits(path, splits)
    listed = []
    for split in splits:
        # Class ids are the training split's: a test split that lacks a class keeps the others' ids.
        class_names = listed[0].class_names if listed else None
        files = list_folder(path, split, refresh=refresh_listing, skip_bad_images=skip_bad_images,
                            class_names=class_names)  # fmt: skip
        if cache_size:
            files = cached_copies(files, cache_size, skip_bad_images=skip_bad_images)
        listed.append(files)
    shapes = listed[0].image_shapes(200, seed)
    image_size = _chosen_size(image_size, shapes, notes)
    streaming, reason = planning.choose_streaming(sum(map(len, listed)), shapes, image_size, stream)
    notes.update(storage="streaming" if streaming else "in memory", storage_reason=reason)
    announce_data(notes)
    if streaming:
        loaded = [files.at_size(image_size) for files in listed]
    else:
        loaded = [files.load(image_size, skip_bad_images) for files in listed]
    if len(loaded) == 2:
        return tuple(loaded)
    everything = loaded[0]
    counts = np.bincount(everything.labels, minlength=everything.num_classes)
    if (counts < 2).any():
        few = [name for name, count in zip(everything.class_names, counts) if count < 2]
        raise DataError(
            f"Class folder(s) {', '.join(map(repr, few))} of {parsed.name!r} hold one image: the 80/20 "
            "test split needs at least 2 per class. Add images, remove the folder, or give the folder "
            "train/ and test/ splits."
        )
    train, test = split_80_20(everything.labels, seed)
    spec = parsed.name
    return everything.subset(train, f"{spec} (80%)"), everything.subset(test, f"{spec} (20%)")


def split_80_20(labels, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(train, test)` sorted indices: the stratified 80/20 split of a folder without splits."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    train, test = train_test_split(indices, test_size=0.2, stratify=labels, random_state=seed)
    return np.sort(train), np.sort(test)


def test_files(spec: str, seed: int = 0):
    """The listed files of a data folder's test split (`test/`, or the 20% of `split_80_20`),
    or None for data that are not a folder (TFDS, digits: their test split has no files)."""

    parsed = sources.parse_data_spec(spec)
    if parsed.kind != "folder":
        return None
    path = pathlib.Path(parsed.name)
    if (path / "train").is_dir() and (path / "test").is_dir():
        return list_folder(path, "test", skip_bad_images=True, progress=False)
    everything = list_folder(path, skip_bad_images=True, progress=False)
    return everything.subset(split_80_20(everything.labels, seed)[1])


def check_not_test_images(files, spec: str, seed: int = 0, what: str = "--unlabeled") -> None:
    """An `InputError` when any of `files` is an image of `spec`'s test split, by path or by
    content (the same bytes under another name): test images never join what trains."""
    import hashlib

    test = test_files(spec, seed)
    if test is None:
        return
    tested = {str(pathlib.Path(p).resolve()) for p in test.paths}
    same_path = [p for p in files.paths if str(pathlib.Path(p).resolve()) in tested]
    if not same_path:  # the same bytes elsewhere: only files of a test file's size are read

        def digest(path):
            return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()

        test_sizes = set(np.asarray(test.sizes).tolist())
        candidates = [p for p, size in zip(files.paths, files.sizes) if int(size) in test_sizes]
        if candidates:
            by_size = [p for p, size in zip(test.paths, test.sizes) if int(size) in set(map(int, files.sizes))]
            hashes = {digest(p) for p in by_size}
            same_path = [p for p in candidates if digest(p) in hashes]
    if same_path:
        raise DataError(
            f"{what} holds {len(same_path):,} image(s) of the test split of {spec!r} (by path or identical content), "
            f"e.g. {str(same_path[0])!r}: test images must never be trained on. Pass a folder of other images."
        )


def _name_ignored_splits(path: pathlib.Path, splits) -> None:
    """Says which folders beside `train/` a run does not read (`validation/`, `val/`, ...): a
    published layout's validation split is not the held-out labels kssl chooses on."""

    if not (path / "train").is_dir():
        return
    used = {"train", UNLABELED_FOLDER, *(s for s in splits if s)}
    ignored = sorted(
        p.name for p in path.iterdir() if p.is_dir() and p.name not in used and not p.name.startswith(".")
        and not holds_run(p)
    )  # fmt: skip
    if ignored:
        where = "trains on train/ and tests on test/" if "test" in splits else "splits train/ 80/20 into train and test"
        print(f"data: not used: {', '.join(f'{name}/' for name in ignored)} of {path} (kssl {where}, and makes its "
              "choices on labels held out of each draw); move a folder into train/ or test/ to use its images",
              flush=True)  # fmt: skip


def announce_data(notes):
    """Prints the data choices and their reasons, before any long decoding starts."""
    print(f"image size: {notes['image_size']} px ({notes['image_size_reason']})", flush=True)
    if "storage_reason" in notes:
        print(f"data: {notes['storage_reason']}", flush=True)


def _chosen_size(image_size, shapes, notes) -> int:

    if image_size is None:
        image_size, reason = planning.default_image_size(shapes, has_accelerator())
        notes.update(image_size=image_size, image_size_reason=f"{reason}; --image-size overrides")
    else:
        notes.update(image_size=image_size, image_size_reason=notes.get("size_source") or "as asked (--image-size)")
    return image_size


def in_memory_if_it_fits(subset, config):
    """A streamed labeled subset decoded into memory when it fits: fine-tuning reads it many times."""

    if not isinstance(subset, ImageFiles):
        return subset
    streaming, _ = choose_streaming(len(subset), subset.image_shapes(50), config.image_size)
    return subset if streaming else subset.load(config.image_size, config.skip_bad_images, progress=False)


def unlabeled_pool(train, config):
    """`(pool, extra)`: the images pretraining and semi-supervised fine-tuning read, and
    how many of them are images without a class. The pool is the training split
    (its labels unused), plus the images of `--unlabeled PATH` or of the data folder's
    `unlabeled/` (beside its class folders): streamed with a streamed split, else decoded
    into memory when both fit. Never the test split. Printed.
    """
    from kssl.data.files import ImageFiles, list_images, unlabeled_folder

    spec = parse_data_spec(config.data)
    folder = config.unlabeled or (unlabeled_folder(spec.name) if spec.kind == "folder" else None)
    if folder is None:
        return train, 0
    files = list_images(folder, config.refresh_listing, config.skip_bad_images).at_size(config.image_size)
    if not len(files):
        raise DataError(f"{str(folder)!r} holds no image files: pass a folder of images as --unlabeled.")
    check_not_test_images(files, config.data, config.seed, "--unlabeled" if config.unlabeled else str(folder))
    where = f"{len(files)} images without a class in {folder}"
    if isinstance(train, ImageFiles):
        pool = concatenated(train, files)
    elif (
        isinstance(train, ImageSet)
        and not choose_streaming(len(train) + len(files), files.image_shapes(50), config.image_size)[0]
    ):
        pool = concatenated(train, files.load(config.image_size, config.skip_bad_images))
    else:  # the split in memory (or a TFDS stream), the rest too large for memory: those alone, streamed
        print(f"unlabeled: {where}, streamed; the {len(train)} train images are not in the pool (they are held in "
              "memory and the pool would not fit)", flush=True)  # fmt: skip
        return files, len(files)
    print(f"unlabeled: {where}; with the {len(train)} train images (labels unused) a pool of {len(pool)} for "
          "pretraining and semi-supervised fine-tuning", flush=True)  # fmt: skip
    return pool, len(files)

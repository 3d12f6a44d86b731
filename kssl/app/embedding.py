"""`kssl embed` and `kssl similar`: embeddings of a folder's images, and exact search over them.

`kssl embed` computes, for every image, the L2-normalised features of the evaluation view
(`kssl.data.evaluation_view`), as evaluation and the SavedModel's `embed` signature do,
streaming the files (any number of them) with a progress bar, and writes an embedding
file (`kssl.evaluation.similarity`). `kssl similar` finds a query image's nearest neighbours, or the
near-duplicate pairs, in such a file, and draws a contact sheet of them.
"""

from __future__ import annotations

import csv
import io
import pathlib

import numpy as np

from kssl import defaults
from kssl.app.staging import check_output_file, file_sha256
from kssl.data.orientation import decode_image
from kssl.data.sources import parse_data_spec
from kssl.encoders.loading import encoder_file, load_encoder
from kssl.errors import DataError, InputError, MissingInputError
from kssl.evaluation.features import extract_features, features_by_row
from kssl.evaluation.similarity import check_format, l2_normalized, read_embeddings, top_k, write_embeddings
from kssl.outputs.atomic import atomic_file
from kssl.outputs.plots import plot_contact_sheet


def embedding_file(pretrained) -> pathlib.Path:
    """The `.keras` file of `pretrained`: the file itself, or a run folder's `classifier.keras`
    when it has one (the model it serves, so the vectors are the SavedModel's `embed`), else
    its `encoder.keras`."""

    path = pathlib.Path(pretrained).expanduser()
    if path.is_dir() and (path / "classifier.keras").is_file():
        path = path / "classifier.keras"
    return encoder_file(path)


def embedding_model(pretrained, image_size: int | None = None) -> tuple[pathlib.Path, object]:
    """`(file, encoder)` of `pretrained` (`embedding_file`), at `image_size` for a model of any size."""

    path = embedding_file(pretrained)
    return path, load_encoder(path, image_size)


def images_of(data: str, progress: bool = True):
    """`(images, paths, labels)` of `data`: a folder (`root/<class>/<image>` gives class
    names as labels; any other layout, every image under it without labels), `tfds:NAME[:SPLIT]`
    (SPLIT default train; paths `tfds:NAME:SPLIT[i]`) or `digits` (its train split)."""

    parsed = parse_data_spec(data)
    if parsed.kind == "folder":
        from kssl.data.files import class_root, list_folder, list_images

        root = pathlib.Path(parsed.name).expanduser()
        if not root.is_dir():
            raise MissingInputError(f"No folder at {str(root)!r}: pass the folder that holds the images.")
        try:
            classes = class_root(root, None) == root
        except InputError:
            classes = False
        files = list_folder(root, progress=progress) if classes else list_images(root, progress=progress)
        labels = None if files.labels is None else np.asarray(files.class_names)[files.labels]
        return files, [str(p) for p in files.paths], labels
    split = parsed.split or "train"
    if parsed.kind == "tfds":
        from kssl.data.tfds_stream import TFDSRecords

        images = TFDSRecords.open(parsed.name, split)
    else:
        from kssl.data.sources import load_digits

        images = load_digits(16, split)
    paths = [f"{data if parsed.kind == 'embedded' else f'tfds:{parsed.name}:{split}'}[{i}]" for i in range(len(images))]
    labels = None if images.labels is None else np.asarray(images.class_names)[images.labels]
    return images, paths, labels


def embed_job(pretrained, data: str, out, overwrite: bool = False, progress: bool = True,
              image_size: int | None = None) -> pathlib.Path:  # fmt: skip
    """`kssl embed`: the embedding file `out` (`.parquet` or `.npz`) of every image of `data`."""

    out = pathlib.Path(out).expanduser()
    check_format(out)
    check_output_file(out, overwrite)
    path, encoder = embedding_model(pretrained, image_size)
    images, paths, labels = images_of(data, progress)
    if not len(paths):
        raise InputError(f"{data!r} holds no images to embed.")
    if hasattr(images, "at_size"):  # streamed TFDS records read at the encoder's size
        images = images.at_size(encoder.input_shape[1])
    size = encoder.input_shape[1]
    print(f"embedding {len(paths):,} images with {path} ({size}-px evaluation view)", flush=True)
    features, rows = features_by_row(encoder, images, progress=progress)
    if not len(rows):
        raise DataError(f"None of the {len(paths):,} images of {data!r} could be read: nothing to embed.")
    if len(rows) < len(paths):  # each vector keeps its own file's path and label
        left_out = len(paths) - len(rows)
        print(
            f"left out of the embeddings: {left_out:,} unreadable image{'s' * (left_out > 1)} (named above)", flush=True
        )
        paths, labels = [paths[i] for i in rows], None if labels is None else labels[rows]
    model = {"path": str(path.resolve()), "sha256": file_sha256(path), "image_size": size}
    write_embeddings(out, paths, features, labels, model)
    print(f"Wrote {len(paths):,} embeddings of {features.shape[1]} dimensions to {out}", flush=True)
    return out


def query_vector(table, query, pretrained=None, embeddings=None) -> np.ndarray:
    """The embedding of the image file `query`: its row when the table holds it (and the
    file has not changed since the embedding file `embeddings` was written), else computed
    on its evaluation view by the table's model or `pretrained`, which must be the model
    that computed the table (the same SHA-256 as its record)."""
    query = pathlib.Path(query).expanduser()
    if not query.is_file():
        raise MissingInputError(f"No image at {str(query)!r}: pass an image file as --query.")
    resolved = str(query.resolve())
    row = next((i for i, path in enumerate(table.paths)
                if path == str(query) or str(pathlib.Path(path).resolve()) == resolved), None)  # fmt: skip
    written = pathlib.Path(embeddings).stat().st_mtime if embeddings is not None else float("inf")
    changed = row is not None and query.stat().st_mtime > written
    # A --pretrained model is checked even when the query's row is used: it names the wrong model.
    model = _table_model(table, pretrained) if pretrained is not None or row is None or changed else None
    if row is not None and not changed:
        return table.embeddings[row]
    if model is None:
        if changed:
            raise InputError(
                f"{str(query)!r} changed after {str(embeddings)!r} was written, so its stored vector is of the old "
                f"file, and the model that wrote it ({table.model.get('path')!r}) is not here: pass --pretrained (the "
                "run folder or .keras file the embeddings came from), or run `kssl embed` again."
            )
        raise MissingInputError(
            f"{str(query)!r} is not in the embedding file and the model that wrote it "
            f"({table.model.get('path')!r}) is not here: pass --pretrained (the run folder or .keras file the "
            "embeddings came from)."
        )
    if changed:
        print(f"{query} changed after {embeddings} was written: its vector is computed again from the file now")

    return l2_normalized(extract_features(model, _decoded(query)[None]))[0]


def _table_model(table, pretrained):
    """The encoder that computed `table`: `pretrained`, else the file its record names (None
    when that is gone); refused when its SHA-256 is not the record's."""

    if pretrained is None:
        recorded = table.model.get("path")
        if not recorded or not pathlib.Path(recorded).is_file():
            return None
        pretrained = recorded
    elif not pathlib.Path(pretrained).expanduser().exists():
        raise MissingInputError(f"No model at {str(pretrained)!r} (--pretrained): pass the run folder or .keras file "
                                "the embeddings came from.")  # fmt: skip
    path = embedding_file(pretrained)
    expected = table.model.get("sha256")
    if expected and file_sha256(path) != expected:
        raise InputError(
            f"{str(path)!r} is not the model that computed these embeddings ({table.model.get('path')!r}, SHA-256 "
            f"{expected[:12]}...): a query embedded by another model is not comparable with them. Pass that model as "
            "--pretrained, or run `kssl embed` again with this one."
        )

    return load_encoder(path, table.model.get("image_size"))


def _decoded(path) -> np.ndarray:
    """The pixels of an image file as kssl reads it (first frame, RGB, EXIF orientation applied)."""
    import tensorflow as tf

    try:
        return decode_image(tf.io.read_file(str(path))).numpy()
    except tf.errors.InvalidArgumentError:
        raise InputError(f"{str(path)!r} is not an image kssl can read (JPEG, PNG, BMP or GIF).") from None


def typical_similarity(embeddings, pairs: int = 10_000, seed: int = 0) -> float | None:
    """The median cosine similarity of `pairs` random pairs of distinct rows: what a threshold
    means for this encoder (features after a ReLU are all positive, so their cosines sit well
    above 0); None for fewer than two rows."""
    if len(embeddings) < 2:
        return None
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(embeddings), (2, pairs))
    keep = a != b
    return float(np.median(np.sum(embeddings[a[keep]] * embeddings[b[keep]], axis=1)))


def similar_job(embeddings, query=None, top: int = defaults.SIMILAR_TOP, duplicates: bool = False,
                threshold: float = defaults.DUPLICATE_THRESHOLD,
                out=None, pretrained=None, overwrite: bool = False, progress: bool = True) -> list:  # fmt: skip
    """`kssl similar`: with `query`, its `top` nearest rows (printed, and a contact sheet
    PNG of the query and them at `out`, default `similar-<query name>.png`); with
    `duplicates`, `duplicates_job`. Returns `(path, similarity, label)` rows, or the pairs."""

    if (query is None) == (not duplicates):
        raise InputError("Pass either --query IMAGE (its nearest images) or --duplicates (near-duplicate pairs).")
    if duplicates:
        return duplicates_job(embeddings, threshold, out, overwrite, progress)
    sheet = pathlib.Path(out or f"similar-{pathlib.Path(query).stem}.png").expanduser()
    if sheet.suffix.lower() != ".png":
        raise InputError(f"--out {str(sheet)!r}: name a .png file for the contact sheet.")
    check_output_file(sheet, overwrite)
    table = read_embeddings(embeddings)
    indices, scores = top_k(table.embeddings, query_vector(table, query, pretrained, embeddings), top)
    rows = [(table.paths[i], float(s), None if table.labels is None else str(table.labels[i]))
            for i, s in zip(indices, scores)]  # fmt: skip
    print(f"the {len(rows)} images of {embeddings} most similar to {query} (cosine similarity):")
    for rank, (path, score, label) in enumerate(rows, start=1):
        print(f"  {rank:>3}. {score:.3f}  {path}" + (f"  ({label})" if label is not None else ""))
    found = [(path, score) for path, score, _ in rows if pathlib.Path(path).is_file()]
    captions = ["query"] + [f"{score:.3f} {pathlib.Path(path).name}" for path, score in found]
    plot_contact_sheet([str(query)] + [path for path, _ in found], sheet,
                       f"{pathlib.Path(query).name} and its {len(found)} nearest images (cosine similarity)",
                       captions=captions)  # fmt: skip
    print(f"Wrote the contact sheet to {sheet}")
    return rows


def duplicates_job(
    embeddings, threshold: float = defaults.DUPLICATE_THRESHOLD, out=None, overwrite: bool = False, progress=True
) -> list:
    """`kssl similar --duplicates`: every pair at cosine >= `threshold`, most similar first
    (printed, the first ten; written as a CSV at `out`, default `duplicates.csv`, with a
    contact sheet of the first eight pairs beside it). Returns `(path_a, path_b, similarity)`s."""
    from kssl.evaluation.similarity import duplicate_pairs, read_embeddings

    out = pathlib.Path(out or "duplicates.csv").expanduser()
    if out.suffix.lower() != ".csv":
        raise InputError(f"--out {str(out)!r}: with --duplicates, name a .csv file (its contact sheet goes beside it).")
    for path in (out, out.with_suffix(".png")):
        check_output_file(path, overwrite)
    table = read_embeddings(embeddings)
    pairs, scores = duplicate_pairs(table.embeddings, threshold, progress=progress)
    found = [(table.paths[i], table.paths[j], float(score)) for (i, j), score in zip(pairs, scores)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["similarity", "path_a", "path_b"])
    writer.writerows([f"{score:.4f}", a, b] for a, b, score in found)
    typical = typical_similarity(table.embeddings)
    typical = "" if typical is None else f" (a random pair's: {typical:.3f}, the median of 10,000)"
    print(f"{len(found):,} pairs of {len(table):,} images at cosine similarity >= {threshold:g}{typical}, "
          "most similar first:")  # fmt: skip
    for a, b, score in found[:10]:
        print(f"  {score:.3f}  {a}  {b}")
    first = found[:8]
    sheet = out.with_suffix(".png")
    with atomic_file(out, suffix=".csv") as table_file:
        table_file.write_text(buffer.getvalue())
        if first:  # the CSV and its sheet are written together; a file gone since is a grey tile
            captions = [f"{score:.3f} {pathlib.Path(p).name}" for a, b, score in first for p in (a, b)]
            title = f"the {len(first)} most similar pairs (cosine >= {threshold:g}), side by side"
            plot_contact_sheet([p for a, b, _ in first for p in (a, b)], sheet, title, columns=4, captions=captions)
    print(f"Wrote the pairs to {out}" + (f" and the first ones' contact sheet to {sheet}" if first else ""))
    return found

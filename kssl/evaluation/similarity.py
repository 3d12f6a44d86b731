"""Embedding files and exact cosine search over them: what `kssl embed` writes and
`kssl similar` reads.

An embedding file holds one row per image: its `path`, its `label` (a class name; absent
when the images have no classes) and its L2-normalised `embedding`. It is a Parquet file
(`.parquet`, through pyarrow: `pip install pyarrow`; the `embedding` column is a list of
float32) or a NumPy archive (`.npz`, with the same names as keys), chosen by the suffix;
both also record the model that computed them (`model`, `model_sha256`), so a query image
can be embedded the same way later.

Search is exact (a dot product of unit vectors is their cosine) and chunked: the top-k of
a query reads `chunk_rows` rows at a time, and the near-duplicate pairs compare blocks
of `block_rows` x `block_rows` rows, so the memory beyond the embeddings themselves stays
the same for a million rows as for a thousand (BENCHMARKS.md "Similarity search" has the
times; the pairs' search grows with the square of the rows).

Examples:
    >>> import numpy as np, tempfile, os
    >>> vectors = np.eye(3, 4, dtype="float32") + 0.1
    >>> path = os.path.join(tempfile.mkdtemp(), "e.npz")
    >>> _ = write_embeddings(path, ["a.jpg", "b.jpg", "c.jpg"], vectors, labels=["x", "y", "x"])
    >>> table = read_embeddings(path)
    >>> len(table), str(table.labels[2]), round(float(np.linalg.norm(table.embeddings[0])), 4)
    (3, 'x', 1.0)
    >>> indices, similarities = top_k(table.embeddings, table.embeddings[0], k=2)
    >>> indices.tolist(), [round(float(s), 3) for s in similarities]
    ([0, 1], [1.0, 0.194])
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from kssl import defaults
from kssl.errors import InputError
from kssl.outputs.atomic import atomic_file

FORMATS = (".parquet", ".npz")


@dataclasses.dataclass
class EmbeddingTable:
    """The rows of an embedding file: `paths` (str), `labels` (class names, or None),
    `embeddings` (`(N, D)` float32, unit rows) and `model`, what computed them
    (`{"path": ..., "sha256": ...}`, or {} when unknown)."""

    paths: np.ndarray
    labels: np.ndarray | None
    embeddings: np.ndarray
    model: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)


def l2_normalized(vectors) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), in float32."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def check_format(path) -> str:
    """The format of `path` by its suffix (`.parquet` or `.npz`), or an `InputError`; for
    Parquet, an `InputError` too when pyarrow is missing (checked before any work)."""
    suffix = pathlib.Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{str(path)!r}: name a .parquet or .npz file (the suffix chooses the format).")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InputError(
                f"{str(path)!r}: Parquet files need pyarrow (pip install pyarrow, or pip install 'kssl[parquet]'); "
                "or name a .npz file."
            ) from None
    return suffix


def write_embeddings(path, paths, embeddings, labels=None, model: dict | None = None) -> pathlib.Path:
    """Writes an embedding file (format by suffix) atomically; rows are L2-normalised here."""
    path = pathlib.Path(path)
    suffix = check_format(path)
    embeddings = l2_normalized(embeddings)
    paths = np.asarray([str(p) for p in paths])
    if len(paths) != len(embeddings) or (labels is not None and len(labels) != len(paths)):
        raise ValueError(f"{len(paths)} paths, {len(embeddings)} embeddings and labels of another length")
    model = dict(model or {})
    with atomic_file(path, suffix=suffix) as tmp:
        if suffix == ".npz":
            arrays = {"path": paths, "embedding": embeddings, "model": np.asarray(json.dumps(model))}
            if labels is not None:
                arrays["label"] = np.asarray([str(label) for label in labels])
            with open(tmp, "wb") as handle:  # a file object: np.savez would add ".npz" to the name
                np.savez(handle, **arrays)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            columns = {"path": pa.array(paths.tolist(), pa.string())}
            if labels is not None:
                columns["label"] = pa.array([str(label) for label in labels], pa.string())
            width = embeddings.shape[1]
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), width)
            table = pa.table(columns).replace_schema_metadata({"kssl.model": json.dumps(model)})
            pq.write_table(table, tmp)
    return path


def read_embeddings(path) -> EmbeddingTable:
    """The rows of an embedding file (`.parquet` or `.npz`), embeddings normalised again
    (a file from elsewhere may hold raw features). Every file is checked as it is read: an
    `InputError` names the field that does not fit (a damaged file, arrays of other lengths,
    embeddings that are not a finite 2-D float array, a model record that is not JSON), so
    a vector never lends its neighbour's name."""
    path = pathlib.Path(path).expanduser()
    suffix = check_format(path)
    if not path.is_file():
        raise InputError(f"No embedding file at {str(path)!r}: write one with `kssl embed`.")
    try:
        fields = _npz_fields(path) if suffix == ".npz" else _parquet_fields(path)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - numpy, zipfile and pyarrow raise many types for damaged files
        raise InputError(f"{str(path)!r} is not a readable embedding file ({type(error).__name__}: {error}): "
                         "write it again with `kssl embed`.") from None  # fmt: skip
    return _checked_table(path, *fields)


def _npz_fields(path):
    with np.load(path, allow_pickle=False) as archive:
        missing = {"path", "embedding"} - set(archive.files)
        if missing:
            raise InputError(f"{str(path)!r} has no {' or '.join(sorted(missing))} array: write it with `kssl embed`.")
        model = str(archive["model"]) if "model" in archive.files else None
        labels = archive["label"] if "label" in archive.files else None
        return archive["path"], labels, archive["embedding"], model


def _parquet_fields(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if not {"path", "embedding"} <= set(table.column_names):
        raise InputError(f"{str(path)!r} has no path and embedding columns: write it with `kssl embed`.")
    column = table.column("embedding").combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type)):
        raise InputError(f"{str(path)!r}: its embedding column holds {column.type}, not lists of numbers.")
    widths = set(column.value_lengths().to_pylist()) if pa.types.is_list(column.type) else {column.type.list_size}
    if len(widths) > 1 or None in widths:
        raise InputError(f"{str(path)!r}: its embeddings have {len(widths)} lengths; write it with `kssl embed`.")
    embeddings = np.asarray(column.flatten().to_numpy(zero_copy_only=False)).reshape(len(table), -1)
    labels = np.asarray(table.column("label").to_pylist()) if "label" in table.column_names else None
    metadata = (table.schema.metadata or {}).get(b"kssl.model")
    return np.asarray(table.column("path").to_pylist()), labels, embeddings, metadata


def _checked_table(path, paths, labels, embeddings, model) -> EmbeddingTable:
    """The fields of an embedding file as a table, each checked against the others."""
    where = repr(str(path))

    def refuse(field, problem):
        raise InputError(f"{where}: its {field} {problem}; write it again with `kssl embed`.")

    paths = np.asarray(paths)
    if paths.ndim != 1 or paths.dtype.kind not in "UO":
        refuse("path array", f"is a {paths.ndim}-D {paths.dtype} array, not one string per image")
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.dtype.kind != "f" or not embeddings.shape[1]:
        refuse("embedding array", f"has shape {embeddings.shape} and dtype {embeddings.dtype}, not (images, "
               "dimensions) of floats")  # fmt: skip
    if len(embeddings) != len(paths):
        refuse("embedding array", f"has {len(embeddings):,} rows for {len(paths):,} paths")
    if not np.isfinite(embeddings).all():
        refuse("embedding array", "holds values that are not finite numbers")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(paths):
            refuse("label array", f"has shape {labels.shape} for {len(paths):,} paths")
        labels = labels.astype(str)
    record = {}
    if model is not None:
        try:
            record = json.loads(model)
        except (ValueError, TypeError):
            refuse("model record", "is not JSON")
        if not isinstance(record, dict) or not all(isinstance(record.get(k, ""), str) for k in ("path", "sha256")):
            refuse("model record", f"is {str(model)[:80]!r}, not kssl's {{path, sha256, image_size}}")
    return EmbeddingTable(paths.astype(str), labels, l2_normalized(embeddings), record)


def top_k(embeddings, query, k: int = defaults.SIMILAR_TOP, chunk_rows: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """`(indices, similarities)` of the `k` rows most similar to `query` (a unit vector),
    most similar first; exact, reading `chunk_rows` rows at a time."""
    query = l2_normalized(query).reshape(-1)
    k = min(int(k), len(embeddings))
    best_index, best_score = np.zeros(0, np.int64), np.zeros(0, np.float32)
    for start in range(0, len(embeddings), chunk_rows):
        scores = embeddings[start : start + chunk_rows] @ query
        keep = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        best_index = np.concatenate([best_index, keep + start])
        best_score = np.concatenate([best_score, scores[keep]])
        if len(best_score) > k:
            top = np.argpartition(-best_score, k - 1)[:k]
            best_index, best_score = best_index[top], best_score[top]
    order = np.lexsort((best_index, -best_score))  # most similar first; ties by row
    return best_index[order], best_score[order]


def duplicate_pairs(
    embeddings, threshold: float = defaults.DUPLICATE_THRESHOLD, block_rows: int = 2_048, progress: bool = False
):
    """`(pairs, similarities)`: every pair of rows `i < j` whose cosine similarity is at
    least `threshold` (`(P, 2)` int64, most similar first). Exact: every pair is compared,
    in blocks of `block_rows` x `block_rows`, so memory stays flat; time grows with the
    square of the rows."""
    from kssl.runtime.terminal import progress_bar

    count = len(embeddings)
    found_pairs, found_scores = [], []
    blocks = range(0, count, block_rows)
    with progress_bar(len(blocks), "comparing", enabled=progress, unit="block") as bar:
        for top in blocks:
            rows = embeddings[top : top + block_rows]
            for left in range(top, count, block_rows):
                scores = rows @ embeddings[left : left + block_rows].T
                i, j = np.nonzero(scores >= threshold)
                i, j = i + top, j + left
                above = i < j  # each pair once, not a row with itself
                found_pairs.append(np.stack([i[above], j[above]], axis=1))
                found_scores.append(scores[i[above] - top, j[above] - left])
            bar.update(1)
    pairs = np.concatenate(found_pairs) if found_pairs else np.zeros((0, 2), np.int64)
    scores = np.concatenate(found_scores) if found_scores else np.zeros(0, np.float32)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -scores)) if len(scores) else np.zeros(0, np.int64)
    return pairs[order].astype(np.int64), scores[order]

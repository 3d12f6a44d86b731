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

Example:
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

from kssl.atomic import atomic_file
from kssl.errors import InputError

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
    (a file from elsewhere may hold raw features)."""
    path = pathlib.Path(path).expanduser()
    suffix = check_format(path)
    if not path.is_file():
        raise InputError(f"No embedding file at {str(path)!r}: write one with `kssl embed`.")
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            missing = {"path", "embedding"} - set(archive.files)
            if missing:
                raise InputError(
                    f"{str(path)!r} has no {' or '.join(sorted(missing))} array: write it with `kssl embed`."
                )
            model = json.loads(str(archive["model"])) if "model" in archive.files else {}
            labels = archive["label"] if "label" in archive.files else None
            return EmbeddingTable(archive["path"].astype(str), labels, l2_normalized(archive["embedding"]), model)
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if not {"path", "embedding"} <= set(table.column_names):
        raise InputError(f"{str(path)!r} has no path and embedding columns: write it with `kssl embed`.")
    column = table.column("embedding").combine_chunks()
    embeddings = np.asarray(column.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(len(table), -1)
    labels = np.asarray(table.column("label").to_pylist()) if "label" in table.column_names else None
    metadata = (table.schema.metadata or {}).get(b"kssl.model")
    model = json.loads(metadata) if metadata else {}
    return EmbeddingTable(np.asarray(table.column("path").to_pylist()), labels, l2_normalized(embeddings), model)


def top_k(embeddings, query, k: int = 10, chunk_rows: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
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


def duplicate_pairs(embeddings, threshold: float = 0.95, block_rows: int = 2_048, progress: bool = False):
    """`(pairs, similarities)`: every pair of rows `i < j` whose cosine similarity is at
    least `threshold` (`(P, 2)` int64, most similar first). Exact: every pair is compared,
    in blocks of `block_rows` x `block_rows`, so memory stays flat; time grows with the
    square of the rows."""
    from kssl.data.files import progress_bar

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

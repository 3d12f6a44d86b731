import numpy as np
import pytest

from kssl.errors import InputError
from kssl.evaluation.similarity import duplicate_pairs, l2_normalized, read_embeddings, top_k, write_embeddings


@pytest.fixture
def vectors(rng):
    base = l2_normalized(rng.normal(size=(50, 6)))
    # Near copies of rows 3 and 17, and an exact one of row 40: the pairs to find.
    copies = l2_normalized(base[[3, 17, 40]] + [[0.01], [0.02], [0.0]] * rng.normal(size=(3, 6)))
    return np.concatenate([base, copies])


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
def test_top_k_is_the_exact_nearest_rows_in_any_chunking(vectors, chunk_rows):
    query = vectors[3]
    indices, similarities = top_k(vectors, query, k=5, chunk_rows=chunk_rows)
    brute = np.argsort(-(vectors @ query), kind="stable")[:5]
    assert indices.tolist() == brute.tolist() and indices[0] == 3
    np.testing.assert_allclose(similarities, (vectors @ query)[brute], rtol=1e-6)
    assert len(top_k(vectors, query, k=500)[0]) == len(vectors)


@pytest.mark.parametrize("block_rows", [4, 16, 4096])
def test_duplicate_pairs_are_every_pair_above_the_threshold_once_in_any_blocking(vectors, block_rows):
    pairs, similarities = duplicate_pairs(vectors, threshold=0.99, block_rows=block_rows)
    scores = vectors @ vectors.T
    expected = {(i, j) for i in range(len(vectors)) for j in range(i + 1, len(vectors)) if scores[i, j] >= 0.99}
    assert {tuple(pair) for pair in pairs.tolist()} == expected == {(3, 50), (17, 51), (40, 52)}
    assert len(pairs) == len(expected) and list(similarities) == sorted(similarities, reverse=True)
    np.testing.assert_allclose(similarities, scores[pairs[:, 0], pairs[:, 1]], rtol=1e-6)


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_both_formats_keep_paths_labels_unit_vectors_and_the_model(tmp_path, vectors, suffix):
    path = tmp_path / f"embeddings{suffix}"
    paths = [f"photos/{i}.jpg" for i in range(len(vectors))]
    labels = ["cat" if i % 2 else "dog" for i in range(len(vectors))]
    write_embeddings(path, paths, vectors * 3.0, labels, model={"path": "run/classifier.keras", "sha256": "ab"})
    table = read_embeddings(path)
    assert list(table.paths) == paths and list(table.labels) == labels
    np.testing.assert_allclose(table.embeddings, vectors, rtol=1e-6, atol=1e-7)
    assert table.model == {"path": "run/classifier.keras", "sha256": "ab"}
    write_embeddings(path, paths, vectors)  # without labels
    assert read_embeddings(path).labels is None
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # written atomically: no temporary left


def test_other_suffixes_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="name a .parquet or .npz file"):
        write_embeddings(tmp_path / "e.csv", ["a"], np.ones((1, 2)))
    with pytest.raises(InputError, match="No embedding file at"):
        read_embeddings(tmp_path / "missing.npz")

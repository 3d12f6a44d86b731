"""`kssl embed` and `kssl similar` as a user runs them: a folder in, a file and a contact sheet out."""

import csv
import shutil

import numpy as np
import pytest
from helpers import tiny_encoder, write_image_folder

from kssl.app.cli import main
from kssl.evaluation.similarity import read_embeddings

pytestmark = pytest.mark.eager_steps  # the commands' plumbing: see conftest


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A folder of any layout (one exact copy in it), its embeddings as .parquet, and the encoder."""
    root = tmp_path_factory.mktemp("embed")
    photos = write_image_folder(root / "photos" / "trip", classes=("day1", "day2"), per_class=6,
                                shapes=((16, 24), (20, 14)))  # fmt: skip
    shutil.copy(photos / "day1" / "00000.png", photos / "day2" / "copy.png")
    encoder = root / "encoder.keras"
    tiny_encoder(16).save(encoder)
    out = root / "photos.parquet"
    assert main(["embed", "--pretrained", str(encoder), "--data", str(root / "photos"), "--out", str(out)]) == 0
    return root, out


def test_embed_writes_a_row_per_image_of_any_layout_and_refuses_to_overwrite(embedded, capsys):
    root, out = embedded
    table = read_embeddings(out)
    assert len(table) == 13 and table.labels is None  # photos/trip/<day>/: not class folders of photos/
    assert all(path.startswith(str(root / "photos" / "trip")) for path in table.paths)
    np.testing.assert_allclose(np.linalg.norm(table.embeddings, axis=1), 1.0, rtol=1e-5)
    before = out.read_bytes()
    assert main(["embed", "--pretrained", str(root / "encoder.keras"), "--data", str(root / "photos"),
                 "--out", str(out)]) == 2  # fmt: skip
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["embed", "--pretrained", str(root / "encoder.keras"), "--data", str(root / "photos"),
                 "--out", str(root / "e.csv")]) == 2  # fmt: skip
    assert "name a .parquet or .npz file" in capsys.readouterr().err


def test_a_query_finds_itself_first_even_from_outside_the_file(embedded, capsys, tmp_path):
    root, out = embedded
    original = root / "photos" / "trip" / "day1" / "00003.png"
    outside = tmp_path / "query.png"  # not in the file: embedded by the model that wrote it
    shutil.copy(original, outside)
    sheet = tmp_path / "neighbours.png"
    assert main(["similar", "--embeddings", str(out), "--query", str(outside), "--top", "3", "--out", str(sheet)]) == 0
    printed = capsys.readouterr().out
    first = printed.splitlines()[1].split()
    assert first[0] == "1." and float(first[1]) > 0.9999 and first[2] == str(original)
    assert sheet.stat().st_size > 1000 and len(printed.splitlines()) == 1 + 3 + 1
    assert main(["similar", "--embeddings", str(out), "--query", str(outside), "--out", str(sheet)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_duplicates_are_the_copied_pair_written_as_a_csv_with_its_contact_sheet(embedded, tmp_path, capsys):
    _, out = embedded
    pairs = tmp_path / "pairs.csv"
    assert (
        main(["similar", "--embeddings", str(out), "--duplicates", "--threshold", "0.9999", "--out", str(pairs)]) == 0
    )
    with pairs.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and {rows[0]["path_a"].split("/")[-1], rows[0]["path_b"].split("/")[-1]} == {
        "00000.png", "copy.png"}  # fmt: skip
    assert (
        pairs.with_suffix(".png").is_file()
        and "1 pairs of 13 images at cosine similarity >= 0.9999 (a random pair" in capsys.readouterr().out
    )


def test_similar_needs_a_query_or_duplicates_and_a_readable_image():
    with pytest.raises(SystemExit) as exit_info:
        main(["similar", "--embeddings", "e.npz"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["similar", "--embeddings", "e.npz", "--duplicates", "--threshold", "1.5"])
    assert exit_info.value.code == 2


def test_an_unreadable_file_is_left_out_and_every_vector_keeps_its_own_path(embedded, tmp_path, capfd):
    import pathlib

    root, out = embedded
    folder = tmp_path / "photos"
    shutil.copytree(root / "photos", folder)
    (folder / "trip" / "day1" / "0-broken.png").write_bytes(b"\x89PNG cut short")  # listed before the others
    mine = tmp_path / "mine.npz"
    assert main(["embed", "--pretrained", str(root / "encoder.keras"), "--data", str(folder), "--out", str(mine)]) == 0
    printed = capfd.readouterr()
    assert "left out of the embeddings: 1 unreadable image (named above)" in printed.out
    assert printed.err.count("0-broken.png") == 1  # named once, by the pipeline's warning
    table, reference = read_embeddings(mine), read_embeddings(out)
    assert len(table) == len(reference) == 13 and not any("broken" in p for p in table.paths)
    by_name = {pathlib.Path(p).relative_to(root).as_posix(): v for p, v in zip(reference.paths, reference.embeddings)}
    for path, vector in zip(table.paths, table.embeddings):
        np.testing.assert_allclose(vector, by_name[pathlib.Path(path).relative_to(tmp_path).as_posix()], atol=1e-5)


def test_a_query_is_embedded_only_by_the_model_that_wrote_the_file(embedded, tmp_path, capsys):
    root, out = embedded
    other = tmp_path / "other.keras"
    tiny_encoder(16, widths=(8, 8, 16, 16, 16)).save(other)
    query = root / "photos" / "trip" / "day1" / "00003.png"
    args = ["similar", "--embeddings", str(out), "--query", str(query), "--out", str(tmp_path / "s.png")]
    assert main([*args, "--pretrained", str(other)]) == 2
    err = capsys.readouterr().err
    assert "other.keras' is not the model that computed these embeddings" in err and "encoder.keras" in err
    assert main([*args, "--pretrained", str(tmp_path / "missing.keras")]) == 2
    assert "No model at" in capsys.readouterr().err and not (tmp_path / "s.png").exists()


def test_a_query_changed_since_it_was_embedded_is_embedded_again_or_refused(embedded, tmp_path, capsys):
    import os

    root, out = embedded
    copy = tmp_path / "photos.parquet"
    shutil.copy(out, copy)
    query = root / "photos" / "trip" / "day2" / "00008.png"
    before, stat = query.read_bytes(), query.stat()
    later = copy.stat().st_mtime + 10
    try:
        query.write_bytes(b"overwritten: no image any more")
        os.utime(query, (later, later))
        args = ["similar", "--embeddings", str(copy), "--query", str(query)]
        assert main([*args, "--out", str(tmp_path / "a.png")]) == 2
        assert "is not an image kssl can read" in capsys.readouterr().err
        shutil.copy(root / "photos" / "trip" / "day1" / "00001.png", query)  # another picture at the same path
        os.utime(query, (later, later))
        assert main([*args, "--top", "1", "--out", str(tmp_path / "b.png")]) == 0
        printed = capsys.readouterr().out
        assert "changed after" in printed and printed.splitlines()[-2].endswith("day1/00001.png")
    finally:
        query.write_bytes(before)
        os.utime(query, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize(
    "damage, field",
    [
        ("fewer paths", "its embedding array has 13 rows for 12 paths"),
        ("short labels", "its label array has shape (3,)"),
        ("one-dimensional", "its embedding array has shape (13,)"),
        ("pickled", "is not a readable embedding file"),
        ("truncated", "is not a readable embedding file"),
        ("model not json", "its model record is not JSON"),
    ],
)
def test_a_damaged_embedding_file_is_refused_naming_the_field(embedded, tmp_path, capsys, damage, field):
    _, out = embedded
    table = read_embeddings(out)
    arrays = {"path": table.paths, "embedding": table.embeddings, "model": np.asarray('{"path": "e.keras"}')}
    if damage == "fewer paths":
        arrays["path"] = table.paths[:-1]
    elif damage == "short labels":
        arrays["label"] = table.paths[:3]
    elif damage == "one-dimensional":
        arrays["embedding"] = table.embeddings[:, 0]
    elif damage == "pickled":
        arrays["path"] = np.asarray(list(table.paths), dtype=object)
    elif damage == "model not json":
        arrays["model"] = np.asarray("{not json")
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:200])
    assert main(["similar", "--embeddings", str(bad), "--duplicates", "--out", str(tmp_path / "d.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kssl: error: ") and field in err and "Traceback" not in err
    assert not (tmp_path / "d.csv").exists()


def test_duplicates_in_a_file_of_one_image_claim_no_random_pair(tmp_path, capsys):
    from kssl.evaluation.similarity import write_embeddings

    one = write_embeddings(tmp_path / "one.npz", ["a.jpg"], np.ones((1, 4), "float32"))
    assert main(["similar", "--embeddings", str(one), "--duplicates", "--out", str(tmp_path / "d.csv")]) == 0
    assert "0 pairs of 1 images at cosine similarity >= 0.95, most similar first" in capsys.readouterr().out


def test_a_full_disk_is_one_line_exit_code_2_and_leaves_no_partial_file(embedded, tmp_path, capsys, monkeypatch):
    import errno

    root, _ = embedded

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "e.npz"))

    monkeypatch.setattr(np, "savez", no_space)
    out = tmp_path / "e.npz"
    assert main(["embed", "--pretrained", str(root / "encoder.keras"), "--data", str(root / "photos"),
                 "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("kssl: error: cannot write") and "the disk is full" in err
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind

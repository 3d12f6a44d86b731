"""`kssl embed` and `kssl similar` as a user runs them: a folder in, a file and a contact sheet out."""

import csv
import shutil

import numpy as np
import pytest
from helpers import tiny_encoder, write_image_folder

from kssl.cli import main
from kssl.similarity import read_embeddings

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

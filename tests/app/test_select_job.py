"""`kssl select` on a folder without labels: a CSV of existing files and a contact sheet,
an earlier selection extended, and bad input refused with exit code 2, nothing written."""

import csv
import pathlib

import numpy as np
import pytest
from PIL import Image

from kssl.app.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from kssl.encoders import conv4

    root = tmp_path_factory.mktemp("select")
    photos = root / "photos"  # any layout: loose files, nested folders, no classes
    rng = np.random.default_rng(0)
    for index in range(30):
        folder = photos if index < 10 else photos / f"trip{index % 3}" / "day1"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    (photos / "notes.txt").write_text("not an image")
    encoder = root / "encoder.keras"
    conv4(width=0.125, image_size=8).save(encoder)
    (root / "foreign.csv").write_text("rank,path\n1,/elsewhere/cat.jpg\n")  # picks made in another folder
    (root / "short.csv").write_text(f"rank,path\n1,{photos / '0.png'}\n2\n")  # a row cut short
    return root, photos, encoder


def rows_of(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_picks_existing_files_once_each_and_draws_their_contact_sheet(setup, tmp_path, capsys):
    _, photos, encoder = setup
    out = tmp_path / "picks.csv"
    assert (
        main(["select", "--pretrained", str(encoder), "--data", str(photos), "--budget", "7", "--out", str(out)]) == 0
    )  # fmt: skip (typiclust, the default)
    rows = rows_of(out)
    assert [int(r["rank"]) for r in rows] == list(range(1, 8))
    paths = [r["path"] for r in rows]
    assert len(set(paths)) == 7 and all(pathlib.Path(p).is_file() and p.endswith(".png") for p in paths)
    assert Image.open(tmp_path / "picks.png").size[0] > 500
    assert "Wrote the 7 images to label first" in capsys.readouterr().out


def test_an_earlier_selection_is_extended_without_picking_it_again(setup, tmp_path):
    _, photos, encoder = setup
    first, more = tmp_path / "first.csv", tmp_path / "more.csv"
    args = ["select", "--pretrained", str(encoder), "--data", str(photos)]
    assert main([*args, "--budget", "5", "--method", "kcenter", "--out", str(first)]) == 0
    assert main([*args, "--budget", "25", "--labeled", str(first), "--out", str(more)]) == 0
    earlier, later = {r["path"] for r in rows_of(first)}, {r["path"] for r in rows_of(more)}
    assert len(later) == 25 and not earlier & later  # 30 images: all of them, between the two


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--budget", "31"], "A budget of 31 images cannot be picked from 30 unlabeled images"),
        (["--budget", "3", "--pretrained", "/no/such/run"], "No encoder at"),
        (["--budget", "3", "--labeled", "/no/such.csv"], "No CSV at"),
        (["--budget", "3", "--labeled", "FOREIGN"], "1 file(s) of"),
        (["--budget", "3", "--labeled", "SHORT"], "line 3: no path in this row"),
        (["--budget", "3", "--out", "PICKS.txt"], "name a .csv file"),
        (["--budget", "3", "--out", "INSIDE"], "lies inside --data"),
        (["--budget", "3", "--out", "EXISTS"], "already exists; pass --overwrite"),
        (["--budget", "3", "--out", "/proc/kssl-picks.csv"], "Cannot write to '/proc'"),
    ],
)
def test_bad_input_is_one_line_exit_code_2_and_nothing_is_written(setup, tmp_path, capsys, extra, message):
    _, photos, encoder = setup
    (tmp_path / "exists.csv").write_text("mine")
    out = {"PICKS.txt": tmp_path / "picks.txt", "INSIDE": photos / "picks.csv", "EXISTS": tmp_path / "exists.csv",
           "FOREIGN": setup[0] / "foreign.csv", "SHORT": setup[0] / "short.csv"}  # fmt: skip
    args = ["select", "--pretrained", str(encoder), "--data", str(photos), "--out", str(tmp_path / "picks.csv")]
    extra = [str(out.get(value, value)) for value in extra]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("kssl: error:")
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["exists.csv"] and (tmp_path / "exists.csv").read_text() == "mine"
    )
    assert not (photos / "picks.csv").exists()


def test_a_budget_of_zero_is_refused_by_the_parser():
    with pytest.raises(SystemExit) as exit_info:
        main(["select", "--pretrained", "x", "--data", "y", "--budget", "0", "--out", "z.csv"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("method", ["typiclust", "kcenter"])
def test_an_unreadable_file_is_never_picked_nor_shifts_the_picks(setup, tmp_path, capfd, method):
    """One unreadable file that sorts first shifted every pick to the file before it."""
    import shutil

    _, photos, encoder = setup
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    args = ["select", "--pretrained", str(encoder), "--data", str(folder), "--budget", "6", "--method", method]
    assert main([*args, "--out", str(tmp_path / "clean.csv")]) == 0
    (folder / "0000-broken.png").write_bytes(b"\x89PNG not really")  # listed before every other file
    assert main([*args, "--out", str(tmp_path / "picks.csv")]) == 0
    assert [r["path"] for r in rows_of(tmp_path / "picks.csv")] == [r["path"] for r in rows_of(tmp_path / "clean.csv")]
    err = capfd.readouterr().err  # the pipeline's warning comes from TensorFlow's own stderr
    assert err.count("0000-broken.png") == 1 and "\r" not in err  # named once; whole lines, no Keras bar


def test_a_budget_that_only_the_unreadable_file_would_fill_writes_nothing(setup, tmp_path, capsys):
    _, photos, encoder = setup
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (12, 12), name[0] == "a" and "red" or "blue").save(folder / name)
    (folder / "c.png").write_bytes(b"broken")
    out = tmp_path / "picks.csv"
    args = ["select", "--pretrained", str(encoder), "--data", str(folder), "--out", str(out)]
    assert main([*args, "--budget", "3"]) == 2
    assert "from 2 readable unlabeled images ('" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    (folder / "a.png").write_bytes(b"broken too")
    (folder / "b.png").write_bytes(b"")
    assert main([*args, "--budget", "1"]) == 2
    assert "None of the 3 images could be read" in capsys.readouterr().err and not out.exists()

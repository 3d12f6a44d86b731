"""Atomic writes (`kssl.outputs.atomic`): a reader sees the old or the new, never a half, and
a failure leaves no trace."""

import pytest

from kssl.outputs.atomic import atomic_file, atomic_folder


def test_a_failed_file_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        assert target.read_text() == "old"  # not yet replaced while writing
        raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_written_file_replaces_the_old_one_with_ordinary_permissions(tmp_path):
    target = tmp_path / "deep" / "a.csv"
    with atomic_file(target, suffix=".csv") as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".csv"
        tmp.write_text("new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o044  # mkstemp's 0600 widened


def test_a_failed_folder_write_is_removed_or_kept_for_a_resume(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_folder(target) as folder:
        (folder / "new.txt").write_text("new")
        raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["old.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    staging = tmp_path / ".run.partial"
    with pytest.raises(KeyboardInterrupt), atomic_folder(target, staging=staging, keep_on_error=True) as folder:
        (folder / "checkpoint").write_text("step 100")
        raise KeyboardInterrupt
    assert (staging / "checkpoint").read_text() == "step 100"
    with atomic_folder(target, staging=staging) as folder:  # the resumed run finishes in the same folder
        assert (folder / "checkpoint").exists()
    assert sorted(p.name for p in target.iterdir()) == ["checkpoint"] and not staging.exists()

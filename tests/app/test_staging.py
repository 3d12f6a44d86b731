"""The jobs behind the command: data splits, staging folders and what a resume must match."""

import json

import pytest
from helpers import write_folder

from kssl.app.config import RunConfig
from kssl.app.staging import file_sha256, staged_folder
from kssl.errors import OutputExistsError


def interrupt_in(out, identity):
    with pytest.raises(KeyboardInterrupt), staged_folder(out, identity):
        raise KeyboardInterrupt


def test_an_interrupted_run_resumes_only_with_the_same_identity(tmp_path, capsys):
    out = tmp_path / "run"
    identity = RunConfig(epochs=3).resolved().result_fields()
    interrupt_in(out, identity)
    staging = tmp_path / ".run.partial"
    assert json.loads((staging / "run.json").read_text()) == json.loads(json.dumps(identity))
    changed = {**identity, "epochs": 4}
    with pytest.raises(OutputExistsError, match=r"epochs: 3 then, 4 now"):
        with staged_folder(out, changed):
            pass
    with staged_folder(out, RunConfig(epochs=3, overwrite=True).resolved().result_fields()) as folder:
        assert folder == staging
        (folder / "encoder.keras").write_text("weights")
    assert "resuming the interrupted run" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["encoder.keras"] and not staging.exists()


def test_a_run_refused_for_its_input_keeps_its_staging_folder_only_for_training_it_holds(tmp_path, capsys):
    from kssl.errors import DataError

    out, staging = tmp_path / "run", tmp_path / ".run.partial"
    identity = RunConfig(epochs=3).resolved().result_fields()
    with pytest.raises(DataError), staged_folder(out, identity):
        raise DataError("one class")  # the same command would fail again: nothing to resume
    assert not staging.exists() and not out.exists()
    with pytest.raises(DataError), staged_folder(out, identity) as folder:
        (folder / "checkpoints" / "pretrain").mkdir(parents=True)
        (folder / "checkpoints" / "pretrain" / "checkpoint").write_text("step 40")
        raise DataError("a file is gone since the listing")  # fixable: the pretraining is worth keeping
    assert (staging / "checkpoints" / "pretrain" / "checkpoint").is_file() and not out.exists()
    assert "once the input is fixed, a command with the same settings resumes it" in capsys.readouterr().out


def test_an_encoders_identity_is_its_content_not_its_path_or_time(tmp_path):
    import os

    content = bytes(range(256)) * 5000  # more than one read block
    (tmp_path / "a").write_bytes(content)
    (tmp_path / "copy").write_bytes(content)
    os.utime(tmp_path / "copy", (0, 0))
    (tmp_path / "changed").write_bytes(content[:-1] + b"x")  # one byte at the end of the last block
    assert file_sha256(tmp_path / "a") == file_sha256(tmp_path / "copy")
    assert file_sha256(tmp_path / "a") != file_sha256(tmp_path / "changed")


def test_an_out_inside_the_data_folder_or_holding_it_or_a_file_is_refused_before_any_work(tmp_path):
    from kssl.app.staging import check_output_folder
    from kssl.errors import InputError

    data = write_folder(tmp_path / "photos")
    with pytest.raises(InputError, match="is inside --data"):
        check_output_folder(data / "results", overwrite=False, data=str(data))
    with pytest.raises(InputError, match="is inside --out"):
        check_output_folder(tmp_path, overwrite=True, data=str(data))
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(InputError, match="is a file, not a run folder"):
        check_output_folder(tmp_path / "a-file", overwrite=True, data=str(data))
    assert (tmp_path / "a-file").read_text() == "mine"
    assert check_output_folder(tmp_path / "elsewhere", overwrite=False, data=str(data)) == tmp_path / "elsewhere"


def test_a_second_run_on_a_locked_out_stops_at_once_and_a_killed_holder_releases_it(tmp_path, capsys):
    import signal
    import subprocess
    import sys

    from kssl.app.cli import main

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import pathlib, sys, time\nfrom kssl.app.staging import run_lock\n"
         "with run_lock(pathlib.Path(sys.argv[1])):\n    print('locked', flush=True)\n    time.sleep(600)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        args = ["run", "--image-size", "8", "--epochs", "1", "--out", str(out)]
        assert main(args) == 2
        assert f"Another kssl run (process {holder.pid} on" in capsys.readouterr().err
        with pytest.raises(OutputExistsError, match="is writing"), staged_folder(out):
            pass
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with staged_folder(out) as folder:  # kill -9 released it: the same command goes on
        (folder / "done.txt").write_text("ok")
    assert (out / "done.txt").read_text() == "ok" and not (tmp_path / ".run.lock").exists()

"""The jobs behind the command: data splits, staging folders and what a resume must match."""

import json

import pytest
from helpers import write_image_folder

from kssl.app.config import RunConfig
from kssl.app.data import load_train_test
from kssl.app.staging import file_sha256, staged_folder
from kssl.errors import OutputExistsError


def write_folder(root, classes=("cat", "dog", "fox"), per_class=10, size=12):
    return write_image_folder(root, classes, per_class, shapes=((size, size),))


def test_a_folder_without_splits_is_divided_80_20_stratified_and_disjoint(tmp_path):
    train, test = load_train_test(str(write_folder(tmp_path / "photos")), image_size=8, seed=0)
    assert (len(train), len(test)) == (24, 6)
    assert train.class_counts() == {"cat": 8, "dog": 8, "fox": 8}
    assert test.class_counts() == {"cat": 2, "dog": 2, "fox": 2}
    rows = {tuple(image.ravel()) for image in train.images}
    assert not rows & {tuple(image.ravel()) for image in test.images}


def test_a_folder_with_train_and_test_uses_them(tmp_path):
    write_folder(tmp_path / "data" / "train", per_class=4)
    write_folder(tmp_path / "data" / "test", per_class=2)
    train, test = load_train_test(str(tmp_path / "data"), image_size=8)
    assert (len(train), len(test)) == (12, 6)


@pytest.mark.parametrize("stream", [False, True])
def test_a_test_split_lacking_a_class_is_labeled_by_the_training_splits_names(tmp_path, stream):
    write_folder(tmp_path / "data" / "train", per_class=4)
    write_folder(tmp_path / "data" / "test", classes=("cat", "fox"), per_class=2)  # no dog
    train, test = load_train_test(str(tmp_path / "data"), image_size=8, stream=stream)
    assert train.class_names == test.class_names == ["cat", "dog", "fox"]
    assert test.labels.tolist() == [0, 0, 2, 2]  # fox keeps id 2 (it was 1: every accuracy was wrong)


def test_settings_that_do_not_change_results_do_not_block_a_resume():
    first = RunConfig(epochs=3).resolved()
    again = RunConfig(epochs=3, overwrite=True, checkpoint_every=7, model_name="pets", version=2).resolved()
    assert first.result_fields() == again.result_fields()
    assert RunConfig(epochs=4).resolved().result_fields() != first.result_fields()


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


def test_a_classifier_is_evaluated_by_class_name_and_refuses_classes_it_never_saw(tmp_path):
    from helpers import tiny_encoder

    from kssl.app.jobs import labeled_as_classifier
    from kssl.errors import InputError
    from kssl.models import Classifier

    classifier = Classifier(tiny_encoder(8), 3, class_names=["cat", "dog", "fox"])
    write_folder(tmp_path / "two", classes=("cat", "fox"), per_class=5)
    _, test = load_train_test(str(tmp_path / "two"), image_size=8)  # its own ids: cat 0, fox 1
    relabeled = labeled_as_classifier(classifier, test, "two")
    assert relabeled.class_names == ["cat", "dog", "fox"] and sorted(set(relabeled.labels.tolist())) == [0, 2]
    write_folder(tmp_path / "other", classes=("cat", "owl"), per_class=5)
    _, other = load_train_test(str(tmp_path / "other"), image_size=8)
    with pytest.raises(InputError, match="class\\(es\\) 'owl' that the classifier was not trained on"):
        labeled_as_classifier(classifier, other, "other")
    unnamed = Classifier(tiny_encoder(8), 4)
    with pytest.raises(InputError, match="predicts 4 classes and 'other' has 2"):
        labeled_as_classifier(unnamed, other, "other")


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


def test_a_run_folder_left_inside_a_data_folder_is_not_read_as_a_class(tmp_path, caplog):
    import logging

    data = write_folder(tmp_path / "photos")
    run = data / "results"  # an earlier run's output, with its plots
    write_image_folder(run, ["plots"], per_class=2)
    (run / "config.json").write_text("{}")
    (run / "metrics.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="kssl"):
        train, test = load_train_test(str(data), image_size=8)
    assert train.class_names == ["cat", "dog", "fox"] and len(train) + len(test) == 30
    assert "hold a kssl run" in caplog.text


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


def test_the_results_table_names_the_k_that_knn_used():
    from kssl.app.report import results_table

    metrics = {"test_images": 10, "data": "photos", "method": "SimCLR", "train_images": 28, "knn_accuracy": 0.5,
               "knn_k": 28, "linear_probe_accuracy": 0.6, "label_budgets": []}  # fmt: skip
    table = results_table(metrics)
    assert "kNN (k=28)" in table and "k=200" not in table
    knn, probe = [line for line in table.splitlines() if "kNN" in line or "linear probe" in line]
    assert knn.index("50.0%") == probe.index("60.0%")  # the columns still line up

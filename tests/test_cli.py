import json
import subprocess
import sys

import pytest

from kssl.cli import main

TINY = ["--image-size", "8", "--width", "0.125", "--epochs", "1", "--finetune-epochs", "1", "--labels", "3"]


def test_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "kssl", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("pretrain", "finetune", "evaluate", "export", "run"))


def test_tiny_run_end_to_end_writes_every_artifact(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        "encoder.keras", "classifier.keras", "metrics.json", "config.json", "serving",
        "augmentations.png", "pretraining.png", "finetuning.png", "embeddings.png",
    }  # fmt: skip
    assert (out / "serving" / "kssl" / "1" / "saved_model.pb").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["label_budgets"][0]["labeled_images"] == 30 and 0 <= metrics["knn_accuracy"] <= 1
    assert json.loads((out / "config.json").read_text())["image_size"] == 8
    assert "from scratch" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left behind


def test_existing_output_is_refused_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["run", *TINY, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/folder"], "No folder at"),
        (["--data", "imagenet-9000"], "Unknown dataset"),
        (["--encoder", "resnet19"], "Unknown encoder"),
        (["--labels", "500"], "has only"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    assert main(["run", *TINY, "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("kssl: error:")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("labels", ["0", "1.5", "-0.1", "ten"])
def test_bad_label_budget_is_rejected_by_the_parser(labels):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--labels", labels])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("where", ["file", "proc"])
def test_unwritable_out_is_refused_before_any_work(tmp_path, capsys, where):
    if where == "file":
        (tmp_path / "plain-file").write_text("x")
        out = tmp_path / "plain-file" / "run"
    else:
        out = "/proc/kssl-test/run"
    assert main(["run", *TINY, "--out", str(out)]) == 2
    assert "Cannot write to" in capsys.readouterr().err


def test_pretrain_finetune_evaluate_export_as_separate_commands(tmp_path, capsys):
    pretrained, finetuned, serving = tmp_path / "pre", tmp_path / "fine", tmp_path / "serving"
    tiny_model = ["--image-size", "8", "--width", "0.125"]
    assert main(["pretrain", *tiny_model, "--epochs", "1", "--out", str(pretrained)]) == 0
    assert (pretrained / "encoder.keras").is_file() and (pretrained / "pretraining.png").is_file()
    assert main(["finetune", "--pretrained", str(pretrained), "--labels", "2,4", "--finetune-epochs", "1",
                 "--width", "0.125", "--out", str(finetuned)]) == 0  # fmt: skip
    rows = json.loads((finetuned / "metrics.json").read_text())["label_budgets"]
    assert [r["labeled_images"] for r in rows] == [20, 40] and (finetuned / "label_efficiency.png").is_file()
    assert main(["evaluate", "--pretrained", str(pretrained)]) == 0
    assert "knn_accuracy" in capsys.readouterr().out
    assert main(["export", "--model", str(finetuned), "--out", str(serving), "--version", "3"]) == 0
    assert (serving / "kssl" / "3" / "saved_model.pb").is_file()
    assert main(["export", "--model", str(finetuned), "--out", str(serving), "--version", "3"]) == 2
    assert main(["finetune", "--pretrained", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "No encoder at" in capsys.readouterr().err


def test_killed_cli_run_resumes_with_the_same_command(tmp_path):
    import os
    import signal
    import time

    import numpy as np

    env = dict(os.environ, TF_DETERMINISTIC_OPS="1", TF_CPP_MIN_LOG_LEVEL="2")
    args = ["pretrain", "--image-size", "8", "--width", "0.125", "--epochs", "4", "--batch-size", "64",
            "--checkpoint-every", "5"]  # fmt: skip

    def command(out):
        return [sys.executable, "-m", "kssl", *args, "--out", str(out)]

    subprocess.run(command(tmp_path / "reference"), env=env, check=True, capture_output=True, timeout=600)
    victim = subprocess.Popen(command(tmp_path / "run"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / ".run.partial" / "checkpoints" / "pretrain" / "checkpoint"
    deadline = time.time() + 300
    while not checkpoint.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL and not (tmp_path / "run").exists()
    resumed = subprocess.run(command(tmp_path / "run"), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming the interrupted run" in resumed.stdout
    assert not (tmp_path / ".run.partial").exists()
    import keras

    expected = keras.saving.load_model(tmp_path / "reference" / "encoder.keras").get_weights()
    actual = keras.saving.load_model(tmp_path / "run" / "encoder.keras").get_weights()
    for a, b in zip(actual, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

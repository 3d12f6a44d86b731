import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import TINY_MODEL, write_image_folder

from kssl.app.cli import main

# One draw and no validation folds: the draws and validation have their own tests (tests/app/).
# No kNN monitor (tests/evaluation/test_monitor.py and tests/app/test_config.py test it).
TINY = ["--image-size", "8", *TINY_MODEL, "--epochs", "1", "--finetune-epochs", "1", "--labels", "3", "--draws", "1",
        "--validation", "none", "--no-knn-monitor"]  # fmt: skip


def test_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "kssl", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    lines = result.stdout.split("COMMAND\n")[-1].splitlines()
    listed = [line.split()[0] for line in lines if line.startswith("    ") and not line.startswith("     ")]
    assert listed == [
        "run",
        "pretrain",
        "finetune",
        "evaluate",
        "export",
        "embed",
        "similar",
        "data-service",
        "select",
        "doctor",
    ]


@pytest.mark.parametrize("command", ["pretrain", "run"])
def test_help_lists_every_method_on_a_line_of_its_own(command):
    from kssl.methods import METHODS

    result = subprocess.run(
        [sys.executable, "-m", "kssl", command, "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    lines = result.stdout.split("pretraining methods (--method) and their options")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in lines[1:] if not line.startswith("      ")] == list(METHODS)
    assert all(spec.summary in result.stdout for spec in METHODS.values())
    options = [line.split()[0] for line in lines[1:] if line.startswith("      ")]
    assert options == [f"{key}={o.default}" for spec in METHODS.values() for key, o in spec.options.items()]
    if command == "run":
        from kssl.finetuning import MODES
        from kssl.semi_supervised import SEMI_SUPERVISED

        sections = (("fine-tuning modes (--modes)", MODES), ("semi-supervised fine-tuning", SEMI_SUPERVISED))
        for title, registry in sections:
            listed = result.stdout.split(title)[1].split("\n\n")[0].splitlines()[1:]
            assert [line.split()[0] for line in listed if not line.startswith("      ")] == list(registry)


@pytest.mark.slow  # the README's run at tiny scale; test_served_equals_measured runs `kssl run` by default
def test_tiny_run_end_to_end_writes_every_artifact(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        "encoder.keras", "classifier.keras", "metrics.json", "config.json", "serving", "logs",
        "augmentations.png", "pretraining.png", "finetuning.png", "embeddings.png",
    }  # fmt: skip
    assert (out / "serving" / "kssl" / "1" / "saved_model.pb").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    # Chance is 10%; kNN on the features of even a barely trained encoder is far above it.
    assert metrics["label_budgets"][0]["labeled_images"] == 30 and metrics["knn_accuracy"] > 0.2
    assert metrics["knn_accuracy"] * metrics["test_images"] == pytest.approx(round(metrics["knn_accuracy"] * 360))
    assert json.loads((out / "config.json").read_text())["image_size"] == 8
    printed = capsys.readouterr().out
    assert "from scratch" in printed and "frozen features of the SimCLR encoder" in printed
    assert metrics["method"] == "SimCLR"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left behind


def check_batching_parameters(path):
    """TF Serving's text format (its proto is not in tensorflow-serving-api's package): every line a
    comment, `name { value: N }` or `allowed_batch_sizes: N`; the last allowed size is the maximum."""
    import re

    values, allowed = {}, []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        if match := re.fullmatch(r"(\w+) \{ value: (\d+) \}", line):
            values[match[1]] = int(match[2])
        else:
            allowed.append(int(re.fullmatch(r"allowed_batch_sizes: (\d+)", line)[1]))
    assert set(values) == {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"}
    assert allowed == sorted(allowed) and allowed[-1] == values["max_batch_size"]


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
        (["--method", "mae", "--encoder", "resnet18"], "MAE needs a ViT encoder"),
        (["--method", "simsiam", "--temperature", "0.1"], "contrastive methods (simclr, moco)"),
        (["--modes", "linear,frozen"], "Unknown fine-tuning mode 'frozen'"),
        (["--encoder", "keras:ResNet51"], "Unknown keras.applications backbone 'ResNet51'"),
        (["--encoder", "keras:ResNet50V2"], "at image size 8"),
        (["--weights", "imagenet"], "--weights applies to keras.applications backbones"),
        (["--encoder", "keras:MobileNetV3Small", "--image-size", "32", "--weights", "/no/such.h5"], "No weights file"),
        (["--stage-decay", "2"], "--stage-decay must be in (0, 1]"),
        (["--batch-size", "1"], "A batch of 1 image(s) is too small for SimCLR"),  # it trained at loss 0
        (["--image-size", "5000"], "Training at 5000 px on batches of 256 needs about"),  # the kernel killed it
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    assert main(["run", *TINY, "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("kssl: error:")
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.partial").exists()


@pytest.mark.eager_steps
def test_weights_that_do_not_fit_the_backbone_stop_before_anything_is_written(tmp_path, capsys):
    import keras

    path = tmp_path / "minimalistic.weights.h5"  # another architecture of the same family
    keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                        minimalistic=True).save_weights(path)  # fmt: skip
    args = ["--encoder", "keras:MobileNetV3Small", "--image-size", "32", "--weights", str(path)]
    assert main(["run", *TINY, "--out", str(tmp_path / "x"), *args]) == 2
    assert "do not fit keras.applications.MobileNetV3Small" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "args",
    [["--lora-rank", "0"], ["--epsilon", "1.5"], ["--adversarial", "cw"], ["--modes", "lora", "--epsilon", "-1"]],
)
def test_bad_fine_tuning_options_are_rejected_by_the_parser(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *args])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--epochs", "inf"],
        ["run", "--budget", "nan"],
        ["pretrain", "--batch-size", "99999999999"],
        ["data-service", "dispatcher", "--port", "70000", "--work-dir", "w"],
        ["data-service", "worker", "--dispatcher", "localhost:1", "--port", "-1"],
    ],
)
def test_numbers_and_ports_out_of_range_are_rejected_by_the_parser(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and "error: argument" in capsys.readouterr().err


def test_a_dispatcher_port_out_of_range_is_refused_not_wrapped(capsys):
    assert main(["data-service", "worker", "--dispatcher", "127.0.0.1:99999"]) == 2
    assert "with a port of 1 to 65535" in capsys.readouterr().err


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


@pytest.mark.eager_steps
def test_pretrain_finetune_evaluate_export_as_separate_commands(tmp_path, capsys):
    pretrained, finetuned, serving = tmp_path / "pre", tmp_path / "fine", tmp_path / "serving"
    tiny_model = ["--image-size", "8", *TINY_MODEL]
    assert main(["pretrain", *tiny_model, "--epochs", "1", "--no-knn-monitor", "--no-tensorboard",
                 "--out", str(pretrained)]) == 0  # fmt: skip
    assert (pretrained / "encoder.keras").is_file() and (pretrained / "pretraining.png").is_file()
    assert not (pretrained / "logs").exists() and "tensorboard --logdir" not in capsys.readouterr().out
    assert main(["finetune", "--pretrained", str(pretrained), "--labels", "2,4", "--finetune-epochs", "1",
                 "--draws", "1", "--validation", "none", "--modes", "linear", "--width", "0.125",
                 "--out", str(finetuned)]) == 0  # fmt: skip
    assert sorted(p.name for p in (finetuned / "logs" / "finetune").iterdir())[:2] == [
        "linear-pretrained-20-draw0", "linear-pretrained-40-draw0"]  # fmt: skip
    rows = json.loads((finetuned / "metrics.json").read_text())["label_budgets"]
    assert [r["labeled_images"] for r in rows] == [20, 40] and (finetuned / "label_efficiency.png").is_file()
    assert main(["evaluate", "--pretrained", str(pretrained), "--few-shot", "5x5", "--few-shot-episodes", "50"]) == 0
    printed = capsys.readouterr().out
    assert "knn_accuracy" in printed and "5-way 5-shot, logistic" in printed and "+-" in printed
    assert "(50 episodes, 95% interval)" in printed
    assert main(["evaluate", "--pretrained", str(pretrained), "--few-shot", "5x40"]) == 2
    assert "5-way 40-shot needs 5 classes with more than 40 images" in capsys.readouterr().err
    modes = tmp_path / "modes"
    # The mode options through the command (one mode: several modes per budget are the
    # first finetune's and `kssl run`'s path).
    assert main(["finetune", "--pretrained", str(pretrained), "--labels", "3", "--finetune-epochs", "1", "--draws", "1",
                 "--validation", "none", "--modes", "LoRA", "--lora-rank", "2", "--adversarial", "fgsm",
                 "--out", str(modes)]) == 0  # fmt: skip
    metrics = json.loads((modes / "metrics.json").read_text())
    entry = metrics["label_budgets"][0]["modes"]["lora"]
    assert list(metrics["label_budgets"][0]["modes"]) == ["lora"]
    assert json.loads((modes / "config.json").read_text())["mode_options"]["rank"] == 2
    assert 0 < entry["trainable_share"] < 0.5
    # PGD raises the loss of the true class: what it leaves right was right before it.
    assert 0 <= entry["pretrained_robust_accuracy"] <= entry["pretrained_accuracy"]
    assert metrics["exported"]["mode"] == "lora" and metrics["adversarial"] == "fgsm"
    printed = capsys.readouterr().out
    assert "PGD-10" in printed and "saved: the" in printed
    assert main(["export", "--model", str(finetuned), "--out", str(serving), "--version", "3",
                 "--format", "saved_model,litert"]) == 0  # fmt: skip
    assert (serving / "kssl" / "3" / "saved_model.pb").is_file() and (serving / "kssl-v3.tflite").is_file()
    assert (serving / "kssl" / "3" / "assets.extra" / "tf_serving_warmup_requests").is_file()
    check_batching_parameters(serving / "batching_parameters.txt")
    assert main(["export", "--model", str(finetuned), "--out", str(serving), "--version", "3"]) == 2
    assert main(["export", "--model", str(finetuned), "--out", str(serving), "--version", "3",
                 "--format", "litert"]) == 2  # fmt: skip
    assert "kssl-v3.tflite' already exists" in capsys.readouterr().err
    assert main(["finetune", "--pretrained", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "No encoder at" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_and_is_not_blamed_on_the_input(tmp_path, capsys, monkeypatch):
    import kssl.app.jobs

    def broken(config):
        raise ValueError("shapes (3,) and (4,) not aligned")  # as a bug deep in a library would

    monkeypatch.setattr(kssl.app.jobs, "pretrain_job", broken)
    assert main(["pretrain", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "not aligned" in err and "bug" in err and "kssl: error:" not in err


def write_images(root, classes=2, per_class=12, bad=None):

    write_image_folder(root, [f"class{c}" for c in range(classes)], per_class, shapes=((10, 10),))
    if bad:
        (root / "class0" / bad).write_bytes(b"not a jpeg at all")
    return root


@pytest.mark.eager_steps
def test_an_unreadable_image_names_the_commands_own_option(tmp_path, capsys):
    data = write_images(tmp_path / "photos", bad="broken.jpg")
    args = ["pretrain", "--data", str(data), "--image-size", "8", *TINY_MODEL, "--epochs", "1",
            "--batch-size", "8"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "--skip-bad-images" in err
    assert main([*args, "--skip-bad-images", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "encoder.keras").is_file()


@pytest.mark.eager_steps
def test_select_labels_the_images_typiclust_picks_on_the_pretrained_features(tmp_path, capsys):
    import keras

    from kssl.data.sources import load_digits
    from kssl.encoders import conv4
    from kssl.evaluation.label_selection import select_for_labeling

    keras.utils.set_random_seed(1)
    conv4(width=0.125, image_size=8).save(tmp_path / "encoder.keras")
    out = tmp_path / "fine"
    assert main(["finetune", "--pretrained", str(tmp_path / "encoder.keras"), "--labels", "2", "--select", "typiclust",
                 "--draws", "1", "--validation", "none", "--modes", "linear", "--finetune-epochs", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "labels: 20 images picked by typiclust" in printed and "picked by typiclust on the pretrained" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["label_selection"] == "typiclust" and json.loads((out / "config.json").read_text())["select"]
    # The labeled images are TypiClust's picks from the train split (its labels revealed):
    # the same count per class as selecting them directly.
    train = load_digits(image_size=8)
    encoder = keras.saving.load_model(tmp_path / "encoder.keras")
    picks = select_for_labeling(encoder, train.at_size(8), 20, "typiclust", seed=0)
    expected = np.bincount(train.labels[picks], minlength=10)
    assert list(metrics["label_budgets"][0]["per_class"].values()) == expected.tolist()


@pytest.mark.eager_steps
def test_finetune_resumes_only_the_encoder_it_started_with(tmp_path, capsys, monkeypatch):
    import keras

    import kssl.app.jobs
    from kssl.app.staging import file_sha256
    from kssl.encoders import resnet

    for name, seed in (("a", 1), ("b", 2)):
        keras.utils.set_random_seed(seed)
        resnet(10, width=0.125, image_size=8).save(tmp_path / f"{name}.keras")
    out = tmp_path / "fine"
    args = ["finetune", "--labels", "2", "--finetune-epochs", "1", "--modes", "linear", "--width", "0.125",
            "--draws", "1", "--validation", "none", "--out", str(out)]  # fmt: skip
    real = kssl.app.jobs.finetune_into

    def killed(*a, **k):
        raise KeyboardInterrupt  # the run dies after writing its staging folder

    monkeypatch.setattr(kssl.app.jobs, "finetune_into", killed)
    assert main([*args, "--pretrained", str(tmp_path / "a.keras")]) == 130
    monkeypatch.setattr(kssl.app.jobs, "finetune_into", real)
    capsys.readouterr()
    assert main([*args, "--pretrained", str(tmp_path / "b.keras")]) == 2
    assert "pretrained_sha256" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--pretrained", str(tmp_path / "a.keras"), "--overwrite", "--checkpoint-every", "3"]) == 0
    assert "resuming the interrupted run" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pretrained_sha256"] == file_sha256(tmp_path / "a.keras")


@pytest.mark.slow
def test_mirrored_strategy_from_the_command_line(tmp_path):
    # In its own process, as a user runs it: a second MirroredStrategy in the test process
    # would share collective keys with the one the distribution tests use.
    args = [
        "pretrain",
        "--strategy",
        "mirrored",
        "--image-size",
        "8",
        *TINY_MODEL,
        "--epochs",
        "0.1",
        "--no-knn-monitor",
    ]
    result = subprocess.run([sys.executable, "-m", "kssl", *args, "--out", str(tmp_path / "m")],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "m" / "encoder.keras").is_file()


@pytest.mark.eager_steps
def test_pretrain_with_another_method_reports_its_own_metrics_and_prints_only_what_applies(tmp_path, capsys):
    out = tmp_path / "barlow"
    args = ["pretrain", "--method", "Barlow", "--image-size", "8", *TINY_MODEL, "--epochs", "1", "--no-knn-monitor"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    data_line = next(line for line in printed.splitlines() if line.startswith("data:"))
    assert data_line == "data: 1437 train / 360 test images, 10 classes"  # no label budget: pretraining uses none
    assert "precision: float32" in printed or "precision: mixed_bfloat16" in printed
    metrics = json.loads((out / "metrics.json").read_text())["pretraining"]
    assert {"final_loss", "final_embedding_std"} <= set(metrics) and "final_contrastive_accuracy" not in metrics
    assert json.loads((out / "config.json").read_text())["method"] == "barlow"


def test_method_errors_name_the_value(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--method", "byol-v9"])
    assert exit_info.value.code == 2 and "byol-v9" in capsys.readouterr().err
    assert main(["pretrain", "--method", "vicreg", "--temperature", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert "--temperature applies to contrastive methods" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_kssl_doctor_compares_one_device_with_all_and_says_ok():
    # In its own process, as users run it: a second MirroredStrategy over the same devices
    # in one process can reuse the first one's collective keys and abort its collectives.
    import subprocess
    import sys

    args = ["doctor", "--steps", "1", "--image-size", "8", "--batch-size", "16", "--precision", "float32"]
    done = subprocess.run([sys.executable, "-m", "kssl", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert "as 2 logical devices" in printed
    rows = [line for line in printed.splitlines() if line.startswith(("simclr", "finetune"))]
    assert len(rows) == 2 and all(line.rstrip().endswith("ok") for line in rows)
    assert all(float(line.split()[-2]) < 1e-4 for line in rows)  # float rounding, relative to the step
    assert all(" 2 x " in line for line in rows)
    views = [line for line in printed.splitlines() if line.startswith("views finished on")]
    assert len(views) == 1 and "CPU:1" in views[0] and views[0].rstrip().endswith("ok")
    assert float(views[0].split()[-2]) < 1e-5  # the same ops on the same kind of device


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method-option", "queue=5"], "simclr has no option 'queue'. Its options: temperature"),
        (["--method", "moco", "--method-option", "queue_size=big"], "queue_size takes int values"),
        (["--method", "byol", "--method-option", "momentum_schedule=maybe"], "momentum_schedule takes bool"),
        (["--method-option", "temperature"], "--method-option takes KEY=VALUE"),
        (["--modes", "full,lora", "--mode-option", "rank=2", "--mode-option", "depth=3"], "full: none; lora: rank"),
        (["--modes", "lora", "--mode-option", "rank=2.5"], "rank takes int values"),
        (["--config", "/no/such/config.json"], "No config file at"),
    ],
)
def test_bad_method_and_mode_options_are_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    assert main(["run", *TINY, "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("kssl: error:") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.eager_steps
def test_options_reach_the_method_and_config_json_alone_reruns_to_the_same_weights(tmp_path, capsys):
    import keras

    args = ["pretrain", "--image-size", "8", *TINY_MODEL, "--epochs", "0.1", "--batch-size", "32", "--no-knn-monitor",
            "--method", "moco", "--method-option", "queue_size=128", "--method-option", "temperature=0.3"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    config = json.loads((tmp_path / "first" / "config.json").read_text())
    assert config["method_options"] == {
        "temperature": 0.3, "queue_size": 128, "momentum": 0.99, "momentum_schedule": False, "symmetric": True,
    }  # fmt: skip
    assert (
        config["recipe"]["learning_rate"] == 0.3
        and config["recipe"]["weight_decay"] == 1e-4
        and config["view_augmentations"][0]["image_size"] == 8
    )
    assert config["kssl_version"] and config["epochs"] == 0.1
    again = tmp_path / "again"
    assert main(["pretrain", "--config", str(tmp_path / "first" / "config.json"), "--out", str(again)]) == 0
    expected = keras.saving.load_model(tmp_path / "first" / "encoder.keras").get_weights()
    actual = keras.saving.load_model(again / "encoder.keras").get_weights()
    for a, b in zip(actual, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    rerun = json.loads((again / "config.json").read_text())
    assert {k: v for k, v in rerun.items() if k != "out"} == {k: v for k, v in config.items() if k != "out"}


def _hostile_input(tmp_path, case):
    """The folder, model file or environment of one hostile case; returns the command's arguments."""
    import os

    import keras

    def folder(counts, nested=False):
        root = tmp_path / case
        for name, count in counts.items():
            write_image_folder(root / name if nested else root, [name] if not nested else ["x", "y"], count)
        return str(root)

    tiny = ["--image-size", "8", *TINY_MODEL, "--epochs", "1", "--labels", "1"]
    if case == "one class":
        return ["run", "--data", folder({"cats": 6}), *tiny]
    if case == "one image in a class":
        return ["run", "--data", folder({"cats": 6, "dogs": 1}), *tiny]
    if case == "dangling link":
        root = folder({"cats": 6, "dogs": 6})
        os.symlink("/no/such/picture.png", f"{root}/cats/gone.png")
        return ["pretrain", "--data", root, *tiny[:-2]]
    if case == "image size 7":
        return ["pretrain", "--data", folder({"cats": 6, "dogs": 6}), *tiny[:-2], "--image-size", "7"]
    if case == "classes of sub-folders":
        return ["pretrain", "--data", folder({"cats": 3, "dogs": 3}, nested=True), *tiny[:-2]]
    if case == "truncated model":
        (tmp_path / "encoder.keras").write_bytes(b"PK\x03\x04" + bytes(20))
        return ["finetune", "--pretrained", str(tmp_path / "encoder.keras"), "--labels", "1"]
    if case == "random model":
        (tmp_path / "encoder.keras").write_bytes(np.random.default_rng(0).bytes(300))
        return ["finetune", "--pretrained", str(tmp_path / "encoder.keras"), "--labels", "1"]
    if case == "not a model":
        (tmp_path / "classifier.txt").write_text("hello")
        return ["export", "--model", str(tmp_path / "classifier.txt")]
    if case == "code that safe_mode refuses":
        model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
        model.save(tmp_path / "classifier.keras")
        return ["export", "--model", str(tmp_path / "classifier.keras")]
    if case == "an activation that names os.system":
        import zipfile

        keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="relu")]).save(tmp_path / "m.keras")
        with zipfile.ZipFile(tmp_path / "m.keras") as original:
            files = {name: original.read(name) for name in original.namelist()}
        files["config.json"] = files["config.json"].replace(b'"relu"', b'"os.system"')
        with zipfile.ZipFile(tmp_path / "classifier.keras", "w") as hostile:
            for name, data in files.items():
                hostile.writestr(name, data)
        return ["export", "--model", str(tmp_path / "classifier.keras")]
    if case == "an encoder to export":
        keras.Sequential([keras.Input((4, 4, 3)), keras.layers.GlobalAveragePooling2D()]).save(tmp_path / "e.keras")
        return ["export", "--model", str(tmp_path / "e.keras")]
    if case.startswith("model name"):
        (tmp_path / "classifier.keras").write_bytes(b"never read: the name is checked first")
        name = {"model name outside --out": "../../x", "model name empty": "", "model name a path": "a/b"}[case]
        return ["export", "--model", str(tmp_path / "classifier.keras"), "--model-name", name]
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case, message",
    [
        ("one class", "has 1 class ('cats'); fine-tuning needs at least 2"),
        ("one image in a class", "'dogs' of"),
        ("dangling link", "gone.png': no such file or directory"),
        ("image size 7", "Cannot build conv4 at image size 7"),
        ("classes of sub-folders", "holds folders of folders (cats, dogs)"),
        ("truncated model", "is not a .keras file"),
        ("random model", "is not a .keras file"),
        ("not a model", "is not a .keras file"),
        ("code that safe_mode refuses", "safe_mode=False"),
        ("an activation that names os.system", "was refused as unsafe or unknown"),
        ("an encoder to export", "holds a Sequential, not a kssl classifier"),
        ("model name outside --out", "--model-name '../../x': a model name is one folder name"),
        ("model name empty", "--model-name '': a model name is one folder name"),
        ("model name a path", "--model-name 'a/b': a model name is one folder name"),
    ],
)
def test_hostile_folders_and_files_are_one_line_and_exit_code_2(tmp_path, capsys, case, message):
    args = _hostile_input(tmp_path, case)
    assert main([*args, "--out", str(tmp_path / "x")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the listing's progress bar
    assert message in last and last.startswith("kssl: error:"), last
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.partial").exists()


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{'cluster': nothing}", "TF_CONFIG is not a cluster description"),
        ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}', "task index 3"),
    ],
)
def test_a_bad_tf_config_is_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert main(["run", *TINY, "--strategy", "multiworker", "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["evaluate", "finetune"])
def test_an_image_size_the_encoder_does_not_take_is_refused_not_ignored(tmp_path, capsys, command):
    from helpers import tiny_encoder

    tiny_encoder(16).save(tmp_path / "encoder.keras")
    args = [command, "--pretrained", str(tmp_path / "encoder.keras"), "--image-size", "32"]
    assert main(args + (["--out", str(tmp_path / "x")] if command == "finetune" else [])) == 2
    err = capsys.readouterr().err  # it once printed "as asked" and used 16
    assert "--image-size 32: '" in err and "encoder.keras' takes 16-px images" in err

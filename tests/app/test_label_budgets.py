"""Fine-tuning at a label budget: several draws, intervals, and choices made on held-out
labeled images, never on the test split."""

import json

import numpy as np
import pytest

from kssl.app.cli import main
from kssl.evaluation.statistics import mean_interval

pytestmark = pytest.mark.eager_steps  # the command's plumbing: see conftest


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    import keras

    from kssl.encoders import conv4

    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("encoder") / "encoder.keras"
    conv4(width=0.125, image_size=8).save(path)
    return path


def test_draws_are_summarised_and_the_choice_ignores_a_test_only_signal(tmp_path, capsys, monkeypatch, encoder_file):
    import kssl.app.label_budgets as label_budgets

    real = label_budgets.accuracy_on
    scored = {"test": [], "validation": []}

    def planted(model, batches):
        # The test split (the digits' 360 test images) says linear is perfect and full
        # useless; the held-out labeled images say the opposite. Only the latter may choose.
        split = "test" if sum(int(labels.shape[0]) for _, labels in batches) == 360 else "validation"
        scored[split].append(model.mode)
        real(model, batches)  # it still runs
        jitter = 0.01 * (len(scored[split]) % 3)  # the draws differ: intervals of non-zero width
        if split == "test":
            return {"linear": 1.0, "full": 0.0}[model.mode] + jitter
        return {"linear": 0.3, "full": 0.9}[model.mode] + jitter

    monkeypatch.setattr(label_budgets, "accuracy_on", planted)
    out = tmp_path / "fine"
    assert main(["finetune", "--pretrained", str(encoder_file), "--labels", "5", "--draws", "2", "--modes",
                 "linear,full", "--finetune-epochs", "1", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    row = metrics["label_budgets"][0]
    assert row["draws"] == 2 and row["best_mode"] == "full" and metrics["exported"]["mode"] == "full"
    # linear, the first of --modes, is the default; full validates 59 points better (0.9 vs 0.3 planted, jittered),
    # more than the standard error of 20 held-out predictions (2 draws of 10).
    assert row["modes"]["full"]["validation_images"] == 20
    assert metrics["exported"]["chosen_by"].startswith("the best validation accuracy: +59.0 points over the default "
                                                       "(linear), more than the standard error of")  # fmt: skip
    assert metrics["exported"]["accuracy"] == row["modes"]["full"]["draws"][0]["pretrained_accuracy"]
    # 2 modes x 2 draws: one validation fit (a fifth of each class of 5) and two test fits each.
    assert sorted(scored["validation"]) == ["full"] * 2 + ["linear"] * 2
    assert sorted(scored["test"]) == ["full"] * 4 + ["linear"] * 4  # pretrained and scratch
    for entry in row["modes"].values():
        assert [draw["seed"] for draw in entry["draws"]] == [0, 1]
        assert entry["validation"] == "10 of the 50 labeled images held out (a fifth of each class)"
        for name in ("validation", "pretrained", "scratch"):
            mean, low, high = mean_interval([draw[f"{name}_accuracy"] for draw in entry["draws"]])
            assert entry[f"{name}_accuracy"] == pytest.approx(mean)
            assert entry[f"{name}_interval"] == pytest.approx([low, high])
    propagated = row["label_propagation"]  # the baseline: each draw's labels over the train split's features
    assert len(propagated["draws"]) == 2 and propagated["unlabeled_images"] == 1437
    assert propagated["accuracy"] == pytest.approx(np.mean(propagated["draws"]))
    assert "50 labels, label propagation on frozen features (a 20-NN graph over 1437 unlabeled images" in printed
    assert "50 labels, linear: draw 2 of 2 (seed 1)" in printed
    assert "means over 2 draws of the labeled images (seeds 0-1)" in printed
    assert "saved: the full classifier at 50 labels (the best validation accuracy: +59.0 points" in printed
    # Pretraining's gain is the chosen classifier against the whole network from scratch.
    full = row["modes"]["full"]
    assert row["over_scratch"]["gain"] == pytest.approx(full["pretrained_accuracy"] - full["scratch_accuracy"])
    assert "50 labels, pretraining's gain: the chosen full classifier" in printed
    assert (out / "label_efficiency.png").is_file()


def test_one_label_a_class_cannot_be_validated_and_the_first_mode_is_exported_saying_why(
    tmp_path, capsys, encoder_file
):
    out = tmp_path / "fine"
    assert main(["finetune", "--pretrained", str(encoder_file), "--labels", "1", "--draws", "1", "--modes",
                 "full,linear", "--finetune-epochs", "1", "--out", str(out)]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    entry = metrics["label_budgets"][0]["modes"]["linear"]
    assert entry["validation_accuracy"] is None and entry["pretrained_interval"] is None
    assert metrics["exported"]["mode"] == "full"
    assert "the first of --modes: nothing could be validated" in capsys.readouterr().out
    assert np.isclose(entry["pretrained_accuracy"], entry["draws"][0]["pretrained_accuracy"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--draws", "0"], "--draws"),
        (["--validation", "test"], "--validation"),
        (["--semi-passes", "0"], "argument --semi-passes: must be > 0, got 0"),
    ],
)
def test_bad_draws_validation_and_lengths_are_refused_by_the_parser(args, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["finetune", "--pretrained", "x", *args])
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_semi_supervised_fine_tuning_through_the_command_with_a_folder_of_unlabeled_images(
    tmp_path, capsys, encoder_file
):
    from helpers import write_image_folder

    extra = write_image_folder(tmp_path / "extra", ["trip"], per_class=30, shapes=((12, 16), (16, 12)))
    out = tmp_path / "fine"
    assert main(["finetune", "--pretrained", str(encoder_file), "--labels", "2", "--draws", "1", "--modes", "linear",
                 "--semi-supervised", "distill", "--semi-option", "ratio=1", "--unlabeled", str(extra),
                 "--finetune-epochs", "1", "--semi-passes", "0.1", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "Distillation: 0.1 passes over the 1,467 unlabeled images, 7 steps of 20" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    # The pool: the 1437 train images (labels unused) and the 30 without a class; never the test split.
    assert metrics["unlabeled_images"] == 1467 and metrics["images_without_class"] == 30
    entry = metrics["label_budgets"][0]["modes"]["linear"]
    semi = entry["semi_supervised"]
    assert semi["method"] == "distill" and semi["options"] == {"ratio": 1, "temperature": 1.0, "weight": 1.0}
    assert entry["validation"] == "2-fold cross-validation on the labeled images"
    assert semi["validation_accuracy"] is not None
    assert semi["accuracy"] == entry["draws"][0]["semi_supervised_accuracy"] and 0 <= semi["accuracy"] <= 1
    # What was asked for, unless plain fine-tuning validates better by more than the standard error
    # of the 20 held-out predictions; never the test split.
    from kssl.evaluation.statistics import accuracy_standard_error

    margin = entry["validation_accuracy"] - semi["validation_accuracy"]
    replaced = margin > accuracy_standard_error(entry["validation_accuracy"], 20)
    assert metrics["exported"]["training"] == ("supervised" if replaced else "distill")
    assert "+distill" in printed and "30 images without a class in" in printed
    # What shows whether it held still: each fold's held-out accuracy as training went, the
    # semi-supervised run's own curve, in metrics.json and TensorBoard.
    from kssl.outputs.tensorboard_logs import scalar_events

    draw = entry["draws"][0]
    # Each fold fits 10 labels: 1 step of plain fine-tuning, 15 of 10 unlabeled images (0.1 passes), every step.
    for how, points in (("supervised", 1), ("distill", 15)):
        folds = draw["validation_curves"][how]
        assert len(folds) == 2 and all(len(fold["steps"]) == len(fold["accuracy"]) == points for fold in folds)
        assert all(0 <= value <= 1 for fold in folds for value in fold["accuracy"])
    training = draw["semi_supervised_training"]
    assert training["steps"][-1] == 7 and len(training["unlabeled_loss"]) == len(training["steps"])
    logs = out / "logs" / "finetune"
    assert scalar_events(logs / "linear-distill-20-draw0")["unlabeled_loss"][-1][0] == 7
    fold = scalar_events(logs / "linear-validation-20-draw0-semi-fold0")["validation_accuracy"]
    assert [step for step, _ in fold] == draw["validation_curves"]["distill"][0]["steps"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--semi-option", "ratio=2"], "--semi-option needs --semi-supervised"),
        (["--semi-passes", "3"], "--semi-passes needs --semi-supervised"),
        (["--semi-supervised", "fixmatch", "--adversarial", "fgsm"], "does not combine with --adversarial"),
        (["--semi-supervised", "fixmatch", "--semi-option", "threshold=2"], "threshold must be in [0, 1]"),
        (["--semi-supervised", "fixmatch", "--semi-option", "mu=2"], "fixmatch has no option 'mu'"),
    ],
)
def test_bad_semi_supervised_options_stop_before_anything_is_written(args, message, tmp_path, capsys, encoder_file):
    out = tmp_path / "fine"
    assert main(["finetune", "--pretrained", str(encoder_file), *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_label_propagation_is_a_candidate_under_the_one_standard_error_rule():
    from kssl.app.label_budgets import chosen_classifier

    modes = {"full": {"validation_accuracy": 0.50, "validation_images": 100}}
    assert chosen_classifier(modes, {"validation_accuracy": 0.70, "validation_images": 100})[:2] == (
        "propagation", "propagation")  # fmt: skip
    kept = chosen_classifier(modes, {"validation_accuracy": 0.53, "validation_images": 100})  # within 4.6 points
    assert kept[:2] == ("full", "supervised") and "propagation validated +3.0 points, within" in kept[2]


def test_the_label_propagation_classifier_is_validated_and_exported_when_chosen(tmp_path, capsys, monkeypatch,
                                                                                encoder_file):  # fmt: skip
    import keras

    import kssl.app.label_budgets as label_budgets
    from kssl.data.pipeline import labeled_batches
    from kssl.data.sources import load_digits

    original = label_budgets.chosen_classifier

    def prefer_propagation(modes, propagation=None):
        original(modes, propagation)
        return "propagation", "propagation", "planted"

    monkeypatch.setattr(label_budgets, "chosen_classifier", prefer_propagation)
    out = tmp_path / "fine"
    assert main(["finetune", "--pretrained", str(encoder_file), "--labels", "2", "--draws", "2", "--modes", "full",
                 "--finetune-epochs", "1", "--out", str(out)]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    head = metrics["label_budgets"][0]["label_propagation"]["classifier"]
    assert len(head["draws"]) == 2 and head["accuracy"] == pytest.approx(np.mean(head["draws"]))
    assert 0 <= head["validation_accuracy"] <= 1 and head["validation_images"] == 2 * 20  # 2-fold: each held out once
    exported = metrics["exported"]
    assert exported["training"] == "propagation" and exported["accuracy"] == head["draws"][0]
    assert "a linear head on the frozen encoder, fitted to the labels spread over" in capsys.readouterr().out
    classifier = keras.saving.load_model(out / "classifier.keras")
    assert classifier.mode == "linear"
    test = load_digits(image_size=8, split="test")
    measured = classifier.evaluate(labeled_batches(test, 256), verbose=0, return_dict=True)["accuracy"]
    assert measured == pytest.approx(head["draws"][0], abs=2 / len(test))  # numpy's argmax against Keras', ties aside


def test_a_pseudo_labelling_run_reports_how_its_pseudo_labels_stood(tmp_path, capsys, encoder_file):
    out = tmp_path / "fine"
    assert main(["finetune", "--pretrained", str(encoder_file), "--labels", "2", "--draws", "1", "--modes", "full",
                 "--validation", "none", "--semi-supervised", "fixmatch", "--semi-option", "threshold=0.1",
                 "--semi-passes", "0.2", "--finetune-epochs", "1", "--out", str(out)]) == 0  # fmt: skip
    semi = json.loads((out / "metrics.json").read_text())["label_budgets"][0]["modes"]["full"]["semi_supervised"]
    training = json.loads((out / "metrics.json").read_text())["label_budgets"][0]["modes"]["full"]["draws"][0][
        "semi_supervised_training"]  # fmt: skip
    assert semi["final_mask_rate"] == training["mask_rate"][-1] > 0
    assert semi["final_pseudo_label_balance"] == training["pseudo_label_balance"][-1]
    assert 0 <= semi["final_pseudo_label_balance"] <= 1
    assert f"pseudo-labels kept {semi['final_mask_rate']:.0%} (balance " in capsys.readouterr().out

"""A run's settings checked and completed (`kssl.app.config`): what changes its results
decides whether a run may resume; the pretraining length from the data (20 epochs, at least
2,000 steps, printed with its reason; `--epochs` and `--budget` override; the library's
`pretrain` follows the same rule); multi-crop's size-dependent default decided once, on the
encoder the run trains, and recorded in `config.json`."""

import json

import pytest
from helpers import TINY_MODEL, write_image_folder

from kssl import defaults
from kssl.app.cli import main
from kssl.app.config import RunConfig, check_method_options, with_pretraining_length
from kssl.app.jobs import check_encoder_and_memory
from kssl.methods import method_class
from kssl.models.multicrop import AUTO_LOCAL_CROPS


def test_settings_that_do_not_change_results_do_not_block_a_resume():
    first = RunConfig(epochs=3).resolved()
    again = RunConfig(epochs=3, overwrite=True, checkpoint_every=7, model_name="pets", version=2).resolved()
    assert first.result_fields() == again.result_fields()
    assert RunConfig(epochs=4).resolved().result_fields() != first.result_fields()


pytestmark = pytest.mark.eager_steps  # the command's plumbing: see conftest


@pytest.mark.parametrize(
    "images, batch, epochs",
    [(50_000, 256, 20), (25_600, 256, 20), (25_599, 256, 21), (2_934, 256, 175), (3_000, 64, 43), (10, 256, 51_200)],
)
def test_small_sets_train_at_least_the_minimum_steps_in_whole_epochs(images, batch, epochs):
    chosen, reason = defaults.pretraining_epochs(images, batch)
    assert chosen == epochs
    assert chosen * images / batch >= defaults.MIN_PRETRAIN_STEPS
    assert (chosen - 1) * images / batch < defaults.MIN_PRETRAIN_STEPS or chosen == defaults.PRETRAIN_EPOCHS
    assert f"{chosen} epochs" in reason
    assert ("at least 2,000 steps" in reason) == (chosen > defaults.PRETRAIN_EPOCHS)


def test_the_choice_is_printed_and_given_lengths_are_kept(capsys):
    config = with_pretraining_length(RunConfig(data="photos/", batch_size=256), 2_934)
    assert config.epochs == 175
    assert "pretraining length: 175 epochs, 2,006 steps" in capsys.readouterr().out
    assert with_pretraining_length(RunConfig(data="photos/", epochs=3.0), 2_934).epochs == 3.0
    assert with_pretraining_length(RunConfig(data="photos/", budget=5.0), 2_934).epochs is None
    assert capsys.readouterr().out == ""
    assert with_pretraining_length(RunConfig(data="digits", batch_size=256), 1_437).epochs == 60


def test_a_folder_of_one_class_pretrains_with_rankme_alone_and_says_so(tmp_path, capsys):
    data = tmp_path / "photos"
    write_image_folder(data, ["all"], 24, shapes=((10, 12),))  # one folder of photos: nothing to tell apart
    out = tmp_path / "pre"
    args = ["pretrain", "--data", str(data), "--image-size", "8", *TINY_MODEL, "--batch-size", "8", "--out", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "kNN monitor: off (the training images have fewer than 2 classes); RankMe (effective rank" in printed
    pretraining = json.loads((out / "metrics.json").read_text())["pretraining"]
    assert "knn_monitor" not in pretraining and len(pretraining["rankme_monitor"]["steps"]) == 1
    assert 1 <= pretraining["rankme_monitor"]["curves"]["rankme"][0] <= 8  # conv4 at width 1/8: 8 features
    assert main([*args, "--epochs", "1", "--no-knn-monitor", "--out", str(tmp_path / "off")]) == 0
    assert "kNN monitor: off (--no-knn-monitor)" in capsys.readouterr().out


def test_a_labeled_folder_pretrains_with_the_monitor_in_metrics_and_the_plot(tmp_path, capsys):
    data = tmp_path / "photos"
    write_image_folder(data, ["a", "b"], 12, shapes=((10, 12),))
    out = tmp_path / "pre"
    args = ["pretrain", "--data", str(data), "--image-size", "8", *TINY_MODEL, "--batch-size", "8", "--out", str(out)]
    assert main([*args, "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "kNN monitor: 4 held-out training images against 15 (k=20, 200)" in printed  # of 19 train images
    assert "kNN monitor: 1 check took" in printed
    monitor = json.loads((out / "metrics.json").read_text())["pretraining"]["knn_monitor"]
    assert monitor["steps"] == [5] and len(monitor["curves"]["knn_20"]) == len(monitor["steps"])
    # Right answers out of 4 held-out images; k=20 and k=200 both take all 15 neighbours: one vote.
    assert all((4 * value).is_integer() for value in monitor["curves"]["knn_200"])
    assert monitor["curves"]["knn_20"] == monitor["curves"]["knn_200"]
    assert len(monitor["curves"]["rankme"]) == 1  # from the same forward pass


@pytest.mark.parametrize(
    ("size", "encoder", "options", "expected", "said"),
    [
        (96, "resnet18", {}, AUTO_LOCAL_CROPS, "multi-crop: 4 local crops of 41 px (from 64 px"),
        (32, "resnet18", {}, 0, "multi-crop: off (below 64 px"),
        (64, "vit6", {}, 0, "multi-crop: off (the encoder takes one size"),
        (96, "resnet18", {"local_crops": 2}, 2, None),  # asked for: nothing to say
    ],
)
def test_the_command_decides_local_crops_on_its_encoder_and_says_so(capsys, size, encoder, options, expected, said):
    config = check_method_options(RunConfig(data="photos/", image_size=size, encoder=encoder, method_options=options))
    assert config.method_options["local_crops"] is (None if not options else 2)
    config = check_encoder_and_memory(method_class("simclr"), config, pretraining=False)
    assert config.method_options["local_crops"] == expected
    out = capsys.readouterr().out
    assert (said in out) if said else "multi-crop" not in out

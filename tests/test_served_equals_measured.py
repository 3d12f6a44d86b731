"""What is served is what was measured: on wide and tall photos 4.5-5x the view, the exported SavedModel
(loaded in a fresh process with TensorFlow alone) predicts, image for image, what the
`Classifier` predicted on the evaluation view, and its accuracy is the one in `metrics.json`;
then, in that process, `import kssl` alone loads the run's .keras files."""

import json
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import TINY_MODEL, write_image_folder
from PIL import Image

from kssl.app.cli import main
from kssl.app.staging import file_sha256
from kssl.data.decoding import stored_side
from kssl.data.files import list_folder
from kssl.data.pipeline import labeled_batches
from kssl.evaluation.features import extract_features
from kssl.evaluation.similarity import read_embeddings
from kssl.outputs.tensorboard_logs import scalar_events

pytestmark = pytest.mark.eager_steps  # the command's plumbing: see conftest

SIZE = 8
# Photos of 4.5 and 5 times the view (noise: the worst case for aliasing), larger than the
# in-memory copies (1.5x the view): the measured views must be the originals', as served.
WIDE, TALL = (36, 60), (64, 40)
assert min(WIDE) > stored_side(SIZE) and min(TALL) > stored_side(SIZE)

SERVE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    from PIL import Image
    run, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    signatures = tf.saved_model.load(run + "/serving/kssl/1").signatures
    pixels = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    as_uint8 = [signatures["predict_uint8"](images=tf.constant(p[None]))["class_id"].numpy()[0] for p in pixels]
    as_bytes = signatures["predict_bytes"](image_bytes=tf.constant([open(p, "rb").read() for p in paths]))
    embedding = [signatures["embed"](images=tf.constant(p[None], tf.float32))["embedding"].numpy()[0] for p in pixels]
    served_alone = not any(m.startswith("kssl") for m in sys.modules)
    # Then, in the same process, `import kssl` alone is enough to load its .keras files
    # (its classes register themselves with Keras; no kssl.models import needed).
    import keras, kssl
    loaded = [type(keras.saving.load_model(f"{run}/{name}.keras")).__name__ for name in ("classifier", "encoder")]
    np.savez(out, uint8=as_uint8, bytes=as_bytes["class_id"].numpy(), embed=np.stack(embedding),
             alone=served_alone, loaded=loaded)
    """
)


def test_the_saved_model_predicts_what_was_measured_on_wide_and_tall_images(tmp_path, capsys):
    # Also the suite's one end-to-end `kssl run` (the README's digits run is `-m slow`):
    # every artifact, the report, and nothing left behind.
    root = tmp_path / "photos"
    for split, per_class in (("train", 12), ("test", 8)):
        write_image_folder(root / split, ("ant", "bee"), per_class, shapes=(WIDE, TALL), formats=("png", "bmp"))
    out = tmp_path / "run"
    args = ["run", "--data", str(root), "--image-size", str(SIZE), *TINY_MODEL, "--epochs", "1"]
    args += ["--finetune-epochs", "2", "--labels", "6", "--draws", "1", "--modes", "linear", "--out", str(out)]
    args += ["--export-formats", "onnx"]
    assert main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        "encoder.keras", "classifier.keras", "metrics.json", "config.json", "serving", "logs",
        "augmentations.png", "pretraining.png", "finetuning.png", "embeddings.png",
    }  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "run"]  # no staging folder left behind
    captured = capsys.readouterr()
    printed = captured.out
    assert printed.count("tensorboard --logdir") == 1
    assert "\r" not in captured.err  # listing and decoding in whole lines too (tqdm's bar is for terminals)
    assert "from scratch" in printed and "frozen features of the SimCLR encoder" in printed
    # capsys is not a terminal, as a pipe or a log file: whole short lines, no carriage
    # returns (Keras' bar would write every update on one line), printed as training goes.
    too_long = [line for line in printed.splitlines() if len(line) > 300]
    assert "\r" not in printed and not too_long, too_long
    steps = [line for line in printed.splitlines() if line.startswith("step ")]
    finals = [line for line in steps if re.match(r"step (\d+) of \1 \(100%\) \|.* loss \d", line)]
    assert len(finals) >= 3 and len(steps) > len(finals), steps  # pretraining, fine-tuning pretrained and scratch
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "SimCLR" and metrics["label_budgets"][0]["labeled_images"] == 12
    assert metrics["test_images"] == 16 and json.loads((out / "config.json").read_text())["image_size"] == SIZE

    check_tensorboard_logs(out / "logs", metrics)

    files = list_folder(root, "test", progress=False)
    assert {np.asarray(Image.open(p)).shape[:2] for p in files.paths} == {WIDE, TALL}
    served = tmp_path / "served.npz"
    result = subprocess.run(
        [sys.executable, "-c", SERVE, str(out), str(served), *map(str, files.paths)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    served = np.load(served)
    assert bool(served["alone"]) and list(served["loaded"]) == ["Classifier", "Functional"]
    assert (out / "serving" / "kssl-v1.onnx").stat().st_size > 1000  # --export-formats, beside the SavedModel

    test = files.load(SIZE, progress=False)
    assert test.images.shape[1:3] != test.evaluation_views.shape[1:3]  # copies are stored, originals are measured
    classifier = keras.saving.load_model(out / "classifier.keras")
    measured = classifier.predict(labeled_batches(test, 256).map(lambda x, y: x), verbose=0).argmax(1)
    np.testing.assert_array_equal(served["uint8"], measured)
    np.testing.assert_array_equal(served["bytes"], measured)
    assert np.mean(served["uint8"] == test.labels) == metrics["exported"]["accuracy"]

    # The linear mode keeps the pretrained encoder: `embed` gives the features kNN used.
    features = extract_features(keras.saving.load_model(out / "encoder.keras"), test)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose(served["embed"], features, atol=1e-5)
    # `kssl embed` writes the served `embed` vectors, a row per file with its class.
    assert (
        main(["embed", "--pretrained", str(out), "--data", str(root / "test"), "--out", str(tmp_path / "e.npz")]) == 0
    )
    embedded = read_embeddings(tmp_path / "e.npz")
    assert list(embedded.paths) == [str(p) for p in files.paths]
    assert list(embedded.labels) == [files.class_names[label] for label in files.labels]
    np.testing.assert_allclose(embedded.embeddings, served["embed"], atol=1e-5)
    assert embedded.model["sha256"] == file_sha256(out / "classifier.keras")


def check_tensorboard_logs(logs, metrics):
    """The run's TensorBoard logs: each training's curve (the points of its PNG, at the
    optimizer's steps) with the learning rate, the augmentation preview, and the projector."""
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    pretraining = scalar_events(logs / "pretrain")
    assert {"loss", "contrastive_accuracy", "learning_rate", "knn_20", "knn_200"} <= set(pretraining)
    monitor = metrics["pretraining"]["knn_monitor"]
    assert [step for step, _ in pretraining["knn_20"]] == monitor["steps"]
    steps = [step for step, _ in pretraining["loss"]]
    assert steps == sorted(steps) and steps[-1] == metrics["pretraining"]["steps"]
    assert pretraining["loss"][-1][1] == pytest.approx(metrics["pretraining"]["final_loss"], rel=1e-6)
    images = [value.tag for path in (logs / "pretrain").glob("events.*")
              for event in tf.compat.v1.train.summary_iterator(str(path)) for value in event.summary.value
              if value.metadata.plugin_data.plugin_name == "images"]  # fmt: skip
    assert images == ["augmentations"]
    assert sorted(p.name for p in (logs / "finetune").iterdir()) == ["linear-pretrained-12-draw0",
                                                                     "linear-scratch-12-draw0",
                                                                     "linear-validation-12-draw0-fold0"]  # fmt: skip
    for name in ("linear-pretrained-12-draw0", "linear-scratch-12-draw0"):
        assert {"loss", "accuracy", "learning_rate"} <= set(scalar_events(logs / "finetune" / name))
    # The validation fold: its held-out accuracy as it trained, the number the choice reads at the end.
    held_out = scalar_events(logs / "finetune" / "linear-validation-12-draw0-fold0")["validation_accuracy"]
    validation = metrics["label_budgets"][0]["modes"]["linear"]["draws"][0]["validation_curves"]["supervised"][0]
    assert [step for step, _ in held_out] == validation["steps"]
    assert held_out[-1][1] == pytest.approx(validation["accuracy"][-1], rel=1e-6)
    config = text_format.Parse(
        (logs / "embeddings" / "projector_config.pbtxt").read_text(), projector.ProjectorConfig()
    )
    reader = tf.train.load_checkpoint(str(logs / "embeddings"))
    table = reader.get_tensor(config.embeddings[0].tensor_name)
    names = (logs / "embeddings" / config.embeddings[0].metadata_path).read_text().splitlines()
    assert table.shape[0] == len(names) == metrics["test_images"] and set(names) == {"ant", "bee"}
    assert list((logs / "embeddings").glob("events.out.tfevents.*"))  # a run: TensorBoard's projector looks in runs

"""The jobs behind the `kssl` command: pretrain, fine-tune, evaluate, export, and run (all of them).

Every job that writes a folder stages it beside `out` and renames it into place at the
end, so an interrupted job leaves no half-written model, and an existing folder is
never replaced unless `overwrite=True`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np


@dataclasses.dataclass
class RunConfig:
    """Everything needed to reproduce a run (written to `config.json`)."""

    data: str = "digits"
    labels: list = dataclasses.field(default_factory=lambda: [10])
    image_size: int | None = None
    encoder: str = "resnet18"
    width: float = 0.25
    epochs: float | None = None
    budget: float | None = None
    batch_size: int = 256
    temperature: float = 0.2
    finetune_epochs: float = 100
    seed: int = 0
    out: str | None = None
    overwrite: bool = False
    model_name: str = "kssl"
    version: int = 1
    strategy: str = "default"
    precision: str | None = None
    jit_compile: bool | None = None
    checkpoint_every: int = 100

    def resolved(self) -> RunConfig:
        """Fills dataset-dependent defaults: digits are 8x8, so 16 px loses nothing."""
        config = dataclasses.replace(self)
        if not isinstance(config.labels, (list, tuple)):
            config.labels = [config.labels]
        if config.image_size is None:
            config.image_size = 16 if config.data == "digits" else 32
        if config.epochs is None and config.budget is None:
            config.epochs = 60 if config.data == "digits" else 20
        if config.precision is None or config.jit_compile is None:
            from kssl.precision import default_jit_compile, default_precision

            config.precision = config.precision or default_precision()
            config.jit_compile = default_jit_compile() if config.jit_compile is None else config.jit_compile
        if config.out is None:
            name = pathlib.Path(str(config.data).rstrip("/")).name.replace(":", "-") or "run"
            config.out = str(pathlib.Path("saved_models") / f"{name}-{config.encoder}-seed{config.seed}")
        return config


def check_output_folder(out, overwrite: bool) -> pathlib.Path:
    """Fails early, before any training, if `out` exists or cannot be written."""
    out = pathlib.Path(out).expanduser()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} already exists; pass --overwrite to replace it, or choose another --out.")
    existing = out.parent
    while not existing.exists():
        existing = existing.parent
    try:  # the real test of writability: root passes os.access checks on read-only mounts
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError:
        raise PermissionError(f"Cannot write to {str(out.parent)!r}: choose a writable --out.") from None
    return out


@contextlib.contextmanager
def staged_folder(out: pathlib.Path, config: RunConfig | None = None):
    """Yields the staging folder `.<name>.partial` beside `out`; on success it replaces `out`.

    A run that dies leaves its staging folder, with training checkpoints in
    `checkpoints/`: the same command started again resumes from them. A staging folder
    left by a run with a different configuration is an error, not silently reused.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial"
    recorded = staging / "config.json"
    current = json.dumps(dataclasses.asdict(config), indent=2, default=str) if config else "{}"
    if staging.exists():
        if recorded.exists() and recorded.read_text() != current:
            raise FileExistsError(
                f"{str(staging)!r} holds an interrupted run with another configuration; "
                "run the same command again to resume it, or delete that folder."
            )
        print(f"resuming the interrupted run in {staging}", flush=True)
    staging.mkdir(exist_ok=True)
    recorded.write_text(current)
    try:
        yield staging
    except BaseException:
        print(f"kssl: the unfinished run is kept in {staging}; the same command resumes it.", flush=True)
        raise
    shutil.rmtree(staging / "checkpoints", ignore_errors=True)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)


def load_train_test(spec: str, image_size: int, seed: int = 0):
    """Train and test `ImageSet`s: the source's own splits, or a stratified 80/20 split."""
    from sklearn.model_selection import train_test_split

    from kssl.data import sources

    path = pathlib.Path(spec)
    if spec in sources.EMBEDDED_DATASETS or (path.is_dir() and (path / "train").is_dir() and (path / "test").is_dir()):
        return sources.load(spec, image_size, split="train"), sources.load(spec, image_size, split="test")
    if spec.startswith("tfds:"):
        name = spec.split(":")[1]
        return sources.from_tfds(name, "train", image_size), sources.from_tfds(name, "test", image_size)
    everything = sources.load(spec, image_size)
    indices = np.arange(len(everything))
    train, test = train_test_split(indices, test_size=0.2, stratify=everything.labels, random_state=seed)
    return everything.subset(np.sort(train), f"{spec} (80%)"), everything.subset(np.sort(test), f"{spec} (20%)")


def _write_json(path, payload):
    pathlib.Path(path).write_text(json.dumps(payload, indent=2, default=str))


def _pretrain_into(folder, config, train, verbose):
    from kssl.callbacks import StepHistory
    from kssl.data.augment import ViewAugmentation
    from kssl.data.preview import save_view_grid
    from kssl.encoders import build_encoder
    from kssl.plots import plot_training_curves
    from kssl.training import pretrain

    augmentation = ViewAugmentation(config.image_size)
    save_view_grid(train.images, augmentation, folder / "augmentations.png", seed=config.seed)
    strategy = _strategy(config)
    with strategy.scope():
        encoder = build_encoder(config.encoder, config.image_size, config.width)
    curve = StepHistory()
    model, _ = pretrain(
        train,
        encoder,
        epochs=config.epochs,
        budget_minutes=config.budget,
        batch_size=min(config.batch_size, len(train)),
        temperature=config.temperature,
        augmentation=augmentation,
        seed=config.seed,
        strategy=strategy,
        jit_compile=config.jit_compile,
        checkpoint_dir=folder / "checkpoints" / "pretrain",
        checkpoint_every=config.checkpoint_every,
        callbacks=[curve],
        verbose=verbose,
    )
    encoder = model.encoder
    encoder.save(folder / "encoder.keras")
    plot_training_curves({"pretraining": (curve.steps, curve.logs)}, folder / "pretraining.png", "SimCLR pretraining")
    return encoder, {
        "steps": int(model.optimizer.iterations.numpy()),
        "final_loss": curve.logs["loss"][-1] if curve.steps else None,
        "final_contrastive_accuracy": curve.logs["contrastive_accuracy"][-1] if curve.steps else None,
    }


def _evaluate_frozen(encoder, train, test, folder=None, seed=0):
    from kssl.evaluation import evaluate_encoder, extract_features
    from kssl.plots import plot_embedding_map

    frozen = evaluate_encoder(encoder, train, test, k=min(200, len(train)))
    if folder is not None:
        features = extract_features(encoder, test)
        plot_embedding_map(features, test.labels, test.class_names, folder / "embeddings.png", seed=seed)
    return {"knn_accuracy": frozen["knn_accuracy"], "linear_probe_accuracy": frozen["linear_accuracy"]}


def _finetune_into(folder, config, encoder, subsets, test, verbose):
    """Fine-tunes a copy of `encoder` and a fresh one on every labeled subset; saves the
    classifier of the last budget and the curves; returns (rows, that classifier)."""
    from kssl.callbacks import StepHistory
    from kssl.data.pipeline import labeled_batches
    from kssl.encoders import build_encoder
    from kssl.plots import plot_label_efficiency, plot_training_curves
    from kssl.training import copy_model, finetune

    test_batches = labeled_batches(test, 256)
    rows, curves, kept = [], {}, None
    for labeled in subsets:
        row = {"labeled_images": len(labeled), "per_class": labeled.class_counts()}
        starts = {
            "pretrained": copy_model(encoder),
            "scratch": build_encoder(config.encoder, encoder.input_shape[1], config.width),
        }
        for name, start in starts.items():
            curve = StepHistory()
            classifier, _ = finetune(
                start,
                labeled,
                epochs=config.finetune_epochs,
                seed=config.seed,
                strategy=_strategy(config),
                jit_compile=config.jit_compile,
                checkpoint_dir=folder / "checkpoints" / f"finetune-{name}-{len(labeled)}",
                checkpoint_every=config.checkpoint_every,
                callbacks=[curve],
                verbose=verbose,
            )
            row[f"{name}_accuracy"] = float(classifier.evaluate(test_batches, return_dict=True, verbose=0)["accuracy"])
            curves[f"{name}, {len(labeled)} labels"] = (curve.steps, {"loss": curve.logs.get("loss", [])})
            if name == "pretrained":
                kept = classifier
        rows.append(row)
        print(
            f"  {len(labeled)} labels: fine-tuned {row['pretrained_accuracy']:.1%}, "
            f"from scratch {row['scratch_accuracy']:.1%}",
            flush=True,
        )
    kept.save(folder / "classifier.keras")
    plot_training_curves(curves, folder / "finetuning.png", "Fine-tuning")
    if len(rows) > 1:
        plot_label_efficiency(
            [r["labeled_images"] for r in rows],
            [r["pretrained_accuracy"] for r in rows],
            [r["scratch_accuracy"] for r in rows],
            folder / "label_efficiency.png",
        )
    return rows, kept


_STRATEGIES = {}


def _strategy(config):
    """One strategy object per name for the whole process (they hold devices and collectives)."""
    from kssl.distribute import strategy_from_name

    if config.strategy not in _STRATEGIES:
        _STRATEGIES[config.strategy] = strategy_from_name(config.strategy)
    return _STRATEGIES[config.strategy]


def _prepare(config):
    import keras

    from kssl.data.subsets import label_subset
    from kssl.encoders import build_encoder
    from kssl.precision import set_precision

    config = config.resolved()
    set_precision(config.precision)
    build_encoder(config.encoder, config.image_size, config.width)  # an unknown name fails before loading data
    keras.utils.set_random_seed(config.seed)
    train, test = load_train_test(config.data, config.image_size, config.seed)
    subsets = [label_subset(train, labels, seed=config.seed) for labels in config.labels]  # bad budgets fail now
    print(
        f"data: {len(train)} train / {len(test)} test images, {train.num_classes} classes; "
        f"label budgets: {', '.join(str(len(s)) for s in subsets)} images",
        flush=True,
    )
    return config, train, test, subsets


def load_encoder(path):
    """An encoder from a `.keras` file, or from a run folder holding `encoder.keras`."""
    import keras

    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "encoder.keras"
    if not path.is_file():
        raise FileNotFoundError(f"No encoder at {str(path)!r}: pass a run folder of `kssl pretrain` or a .keras file.")
    model = keras.saving.load_model(path)
    return getattr(model, "encoder", model)  # a SimCLR or Classifier file holds its encoder


def pretrain_job(config: RunConfig, verbose="auto") -> dict:
    """`kssl pretrain`: encoder.keras, augmentations.png, pretraining.png, metrics.json, config.json."""
    config = config.resolved()
    out = check_output_folder(config.out, config.overwrite)
    config, train, _, _ = _prepare(dataclasses.replace(config, labels=[]))
    with staged_folder(out, config) as folder:
        _, metrics = _pretrain_into(folder, config, train, verbose)
        _write_json(folder / "metrics.json", {"data": config.data, "pretraining": metrics})
        _write_json(folder / "config.json", dataclasses.asdict(config))
    print(f"Pretrained encoder in {out}/encoder.keras")
    return metrics


def finetune_job(config: RunConfig, pretrained, verbose="auto") -> dict:
    """`kssl finetune`: classifier.keras, finetuning.png, metrics.json, config.json."""
    config = config.resolved()
    out = check_output_folder(config.out, config.overwrite)
    encoder = load_encoder(pretrained)
    config = dataclasses.replace(config, image_size=encoder.input_shape[1])
    config, _, test, subsets = _prepare(config)
    with staged_folder(out, config) as folder:
        rows, _ = _finetune_into(folder, config, encoder, subsets, test, verbose)
        metrics = {"data": config.data, "test_images": len(test), "pretrained": str(pretrained), "label_budgets": rows}
        _write_json(folder / "metrics.json", metrics)
        _write_json(folder / "config.json", {**dataclasses.asdict(config), "pretrained": str(pretrained)})
    return metrics


def evaluate_job(config: RunConfig, pretrained) -> dict:
    """`kssl evaluate`: kNN and linear probe of an encoder's frozen features, and the test
    accuracy of the run's classifier when the folder has one. Writes nothing."""
    import keras

    from kssl.data.pipeline import labeled_batches

    encoder = load_encoder(pretrained)
    config = dataclasses.replace(config.resolved(), image_size=encoder.input_shape[1], labels=[])
    config, train, test, _ = _prepare(config)
    results = _evaluate_frozen(encoder, train, test)
    classifier_path = pathlib.Path(pretrained) / "classifier.keras"
    if classifier_path.is_file():
        classifier = keras.saving.load_model(classifier_path)
        batches = labeled_batches(test, 256)
        results["classifier_accuracy"] = float(classifier.evaluate(batches, return_dict=True, verbose=0)["accuracy"])
    width = max(len(name) for name in results)
    print("\n".join(f"  {name:<{width}}  {value:6.1%}" for name, value in results.items()))
    return results


def export_job(model, out, model_name="kssl", version=1, overwrite=False) -> pathlib.Path:
    """`kssl export`: `out/<model_name>/<version>/`, the layout TF Serving reads."""
    import keras

    from kssl.export import export_saved_model

    path = pathlib.Path(model)
    if path.is_dir():
        path = path / "classifier.keras"
    if not path.is_file():
        raise FileNotFoundError(f"No classifier at {str(path)!r}: pass a run folder or a classifier .keras file.")
    target = check_output_folder(pathlib.Path(out) / model_name / str(version), overwrite)
    export_saved_model(keras.saving.load_model(path), target, overwrite=overwrite)
    print(f"SavedModel in {target}/ (signatures: serving_default, predict_uint8, predict_bytes, embed)")
    return target


def run(config: RunConfig, verbose: int | str = "auto") -> dict:
    """`kssl run`: pretrains, evaluates frozen features, fine-tunes (pretrained and from
    scratch) for every label budget, exports, and returns the metrics of `metrics.json`."""
    from kssl.export import export_saved_model

    started = time.perf_counter()
    config = config.resolved()
    out = check_output_folder(config.out, config.overwrite)
    config, train, test, subsets = _prepare(config)
    with staged_folder(out, config) as folder:
        print("[1/4] pretraining with SimCLR (labels unused)", flush=True)
        encoder, pretraining = _pretrain_into(folder, config, train, verbose)
        print("[2/4] evaluating frozen features (kNN, linear probe, embedding map)", flush=True)
        frozen = _evaluate_frozen(encoder, train, test, folder, config.seed)
        print("[3/4] fine-tuning: pretrained encoder vs. the same architecture from scratch", flush=True)
        rows, classifier = _finetune_into(folder, config, encoder, subsets, test, verbose)
        print("[4/4] exporting the SavedModel for TF Serving", flush=True)
        export_saved_model(classifier, folder / "serving" / config.model_name / str(config.version))
        metrics = {
            "data": config.data,
            "train_images": len(train),
            "test_images": len(test),
            "pretraining": pretraining,
            **frozen,
            "label_budgets": rows,
            "seconds": round(time.perf_counter() - started, 1),
        }
        _write_json(folder / "metrics.json", metrics)
        _write_json(folder / "config.json", dataclasses.asdict(config))
    print(results_table(metrics, out))
    return metrics


def results_table(metrics: dict, out) -> str:
    """The short table `kssl run` prints at the end."""
    lines = [
        f"\nTest accuracy on {metrics['test_images']} images of {metrics['data']}:",
        f"  frozen features, all {metrics['train_images']} train labels:",
        f"    kNN (k=200)                   {metrics['knn_accuracy']:6.1%}",
        f"    linear probe                  {metrics['linear_probe_accuracy']:6.1%}",
        "  labels   fine-tuned (pretrained)   from scratch   gain",
    ]
    for row in metrics["label_budgets"]:
        gain = row["pretrained_accuracy"] - row["scratch_accuracy"]
        lines.append(
            f"  {row['labeled_images']:>6}   {row['pretrained_accuracy']:>23.1%}   {row['scratch_accuracy']:>12.1%}"
            f"   {gain:+.1%}"
        )
    lines.append(f"Artifacts in {out}/ ({metrics['seconds']:.0f}s)")
    return "\n".join(lines)

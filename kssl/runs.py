"""The end-to-end job behind `kssl run`: pretrain, evaluate, fine-tune, compare, export.

Everything is written to a staging folder beside `out` and renamed into place at the
end, so an interrupted run leaves no half-written model, and an existing run folder is
never replaced unless `overwrite=True`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np

logger = logging.getLogger("kssl")


@dataclasses.dataclass
class RunConfig:
    """Everything needed to reproduce a run (written to `config.json`)."""

    data: str = "digits"
    labels: float = 10
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

    def resolved(self) -> RunConfig:
        """Fills dataset-dependent defaults: digits are 8x8, so 16 px loses nothing."""
        config = dataclasses.replace(self)
        if config.image_size is None:
            config.image_size = 16 if config.data == "digits" else 32
        if config.epochs is None and config.budget is None:
            config.epochs = 60 if config.data == "digits" else 20
        if config.out is None:
            name = pathlib.Path(str(config.data).rstrip("/")).name.replace(":", "-") or "run"
            config.out = str(pathlib.Path("saved_models") / f"{name}-{config.encoder}-seed{config.seed}")
        return config


def check_output_folder(out, overwrite: bool) -> pathlib.Path:
    """Fails early, before any training, if `out` exists or cannot be written."""
    out = pathlib.Path(out).expanduser()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} already exists; pass --overwrite to replace it, or choose another --out.")
    parent = out.parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise PermissionError(f"Cannot write to {str(parent)!r}: choose a writable --out.")
    return out


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


def run(config: RunConfig, verbose: int | str = "auto") -> dict:
    """Runs the whole job and returns the metrics written to `metrics.json`."""
    import keras

    from kssl.data.augment import ViewAugmentation
    from kssl.data.pipeline import labeled_batches
    from kssl.data.preview import save_view_grid
    from kssl.data.subsets import label_subset
    from kssl.encoders import build_encoder
    from kssl.evaluation import evaluate_encoder
    from kssl.export import export_saved_model
    from kssl.training import finetune, pretrain

    config = config.resolved()
    out = check_output_folder(config.out, config.overwrite)
    build_encoder(config.encoder, config.image_size, config.width)  # unknown names fail before loading data
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    train, test = load_train_test(config.data, config.image_size, config.seed)
    labeled = label_subset(train, config.labels, seed=config.seed)
    print(
        f"data: {len(train)} train / {len(test)} test images, {train.num_classes} classes; "
        f"{len(labeled)} labeled for fine-tuning",
        flush=True,
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        augmentation = ViewAugmentation(config.image_size)
        save_view_grid(train.images, augmentation, staging / "augmentations.png", seed=config.seed)

        print("1/4 pretraining (SimCLR, labels unused)", flush=True)
        encoder = build_encoder(config.encoder, config.image_size, config.width)
        batch_size = min(config.batch_size, len(train))
        _, history = pretrain(
            train,
            encoder,
            epochs=config.epochs,
            budget_minutes=config.budget,
            batch_size=batch_size,
            temperature=config.temperature,
            augmentation=augmentation,
            seed=config.seed,
            verbose=verbose,
        )
        encoder.save(staging / "encoder.keras")

        print("2/4 evaluating frozen features (kNN, linear probe)", flush=True)
        frozen = evaluate_encoder(encoder, train, test, k=min(200, len(train)))

        print(f"3/4 fine-tuning on {len(labeled)} labels: pretrained, then from scratch", flush=True)
        classifier, _ = finetune(
            encoder, labeled, mode="full", epochs=config.finetune_epochs, seed=config.seed, verbose=verbose
        )
        scratch, _ = finetune(
            build_encoder(config.encoder, config.image_size, config.width),
            labeled,
            mode="full",
            epochs=config.finetune_epochs,
            seed=config.seed,
            verbose=verbose,
        )
        test_batches = labeled_batches(test, 256)
        pretrained_accuracy = classifier.evaluate(test_batches, return_dict=True, verbose=0)["accuracy"]
        scratch_accuracy = scratch.evaluate(test_batches, return_dict=True, verbose=0)["accuracy"]
        classifier.save(staging / "classifier.keras")

        print("4/4 exporting the SavedModel", flush=True)
        export_saved_model(classifier, staging / "serving" / "kssl" / "1")
        metrics = {
            "data": config.data,
            "train_images": len(train),
            "test_images": len(test),
            "labeled_images": len(labeled),
            "labeled_per_class": labeled.class_counts(),
            "pretraining": {
                "final_loss": float(history.history["loss"][-1]),
                "final_contrastive_accuracy": float(history.history["contrastive_accuracy"][-1]),
            },
            "knn_accuracy": frozen["knn_accuracy"],
            "linear_probe_accuracy": frozen["linear_accuracy"],
            "finetuned_accuracy": float(pretrained_accuracy),
            "scratch_accuracy": float(scratch_accuracy),
            "seconds": round(time.perf_counter() - started, 1),
        }
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (staging / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    print(results_table(metrics, out))
    return metrics


def results_table(metrics: dict, out) -> str:
    rows = [
        ("kNN on frozen features", metrics["knn_accuracy"]),
        ("linear probe on frozen features", metrics["linear_probe_accuracy"]),
        (f"fine-tuned, pretrained ({metrics['labeled_images']} labels)", metrics["finetuned_accuracy"]),
        (f"trained from scratch ({metrics['labeled_images']} labels)", metrics["scratch_accuracy"]),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"\nTest accuracy on {metrics['test_images']} images of {metrics['data']}:"]
    lines += [f"  {name:<{width}}  {value:6.1%}" for name, value in rows]
    gain = metrics["finetuned_accuracy"] - metrics["scratch_accuracy"]
    lines.append(f"  pretraining {'helped' if gain > 0 else 'did not help'}: {gain:+.1%} over scratch")
    lines.append(f"Artifacts in {out}/ ({metrics['seconds']:.0f}s)")
    return "\n".join(lines)

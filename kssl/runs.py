"""The jobs behind the `kssl` command: pretrain, fine-tune, evaluate, export, and run (all of them).

Every job that writes a folder stages it beside `out` and renames it into place at the
end, so an interrupted job leaves no half-written model, and an existing folder is
never replaced unless `overwrite=True`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np

from kssl.atomic import atomic_file
from kssl.data.sources import parse_data_spec
from kssl.errors import MissingInputError, OutputExistsError, UnwritableOutputError
from kssl.methods import method_class
from kssl.recipes import recipe_for

# RunConfig fields that do not change what a run computes: a resumed run may differ in them.
_NOT_RESULT_FIELDS = ("out", "overwrite", "checkpoint_every", "model_name", "version", "augment_on_device")


@dataclasses.dataclass
class RunConfig:
    """Everything needed to reproduce a run (written to `config.json`)."""

    data: str = "digits"
    labels: list = dataclasses.field(default_factory=lambda: [10])
    image_size: int | None = None
    encoder: str | None = None
    width: float = 0.25
    epochs: float | None = None
    budget: float | None = None
    batch_size: int = 256
    method: str = "simclr"
    temperature: float | None = None
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
    skip_bad_images: bool = False
    weights: str | None = None
    modes: list = dataclasses.field(default_factory=lambda: ["full"])
    lora_rank: int = 8
    stage_decay: float = 1.0
    adversarial: str = "none"
    epsilon: float = 8 / 255
    attack_steps: int = 7
    few_shot: list | None = None
    stream: bool | None = None
    cache_size: int | None = None
    refresh_listing: bool = False
    augment_on_device: bool | None = None

    def resolved(self, default_encoder: bool = True) -> RunConfig:
        """Fills the defaults that need no data read (digits are 8x8, so 16 px loses
        nothing) and the output folder. Imports no TensorFlow: the defaults that depend
        on the machine or the images (precision, XLA, resolution, streaming) are filled
        once the strategy exists (`_prepare`)."""
        config = dataclasses.replace(self)
        spec = parse_data_spec(config.data)
        if not isinstance(config.labels, (list, tuple)):
            config.labels = [config.labels]
        if config.image_size is None and spec.kind == "embedded":
            config.image_size = 16  # digits are 8x8: 16 px loses nothing
        if config.epochs is None and config.budget is None:
            config.epochs = 60 if spec.kind == "embedded" else 20
        if config.encoder is None and default_encoder:
            config.encoder = recipe_for(config.method).encoder
        if config.out is None:
            name = f"{spec.short_name}-{config.method}-{config.encoder}-seed{config.seed}"
            config.out = str(pathlib.Path("saved_models") / name)
        return config

    def result_fields(self) -> dict:
        """The fields that determine what the run computes (what a resume must match)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_RESULT_FIELDS}


def check_output_folder(out, overwrite: bool) -> pathlib.Path:
    """Fails early, before any training, if `out` exists or cannot be written."""
    out = pathlib.Path(out).expanduser()
    if out.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(out)!r} already exists; pass --overwrite to replace it, or choose another --out."
        )
    existing = out.parent
    while not existing.exists():
        existing = existing.parent
    try:  # the real test of writability: root passes os.access checks on read-only mounts
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError:
        raise UnwritableOutputError(f"Cannot write to {str(out.parent)!r}: choose a writable --out.") from None
    return out


@contextlib.contextmanager
def staged_folder(out: pathlib.Path, identity: dict | None = None):
    """Yields the staging folder `.<name>.partial` beside `out`; on success it replaces `out`.

    A run that dies leaves its staging folder, with training checkpoints in
    `checkpoints/` and, in `run.json`, `identity`: what determines the run's result
    (`RunConfig.result_fields()`, and the hash of the pretrained encoder it fine-tunes).
    The same command started again resumes from the checkpoints. A staging folder left
    by a run with another identity is an error naming what differs, never reused.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial"
    recorded = staging / "run.json"
    identity = json.loads(json.dumps(identity or {}, default=str))  # as it reads back from JSON
    if staging.exists():
        previous = json.loads(recorded.read_text()) if recorded.exists() else None
        if previous != identity:
            if previous is None:
                what = "an unknown configuration (it has no run.json)"
            else:
                keys = sorted(k for k in {*previous, *identity} if previous.get(k) != identity.get(k))
                what = "; ".join(f"{k}: {previous.get(k)!r} then, {identity.get(k)!r} now" for k in keys)
            raise OutputExistsError(
                f"{str(staging)!r} holds an interrupted run that differs from this one ({what}). "
                "Run that command again to resume it, or delete the folder to start afresh."
            )
        print(f"resuming the interrupted run in {staging}", flush=True)
    staging.mkdir(exist_ok=True)
    _write_json(recorded, identity)
    try:
        yield staging
    except BaseException:
        print(f"kssl: the unfinished run is kept in {staging}; the same command resumes it.", flush=True)
        raise
    shutil.rmtree(staging / "checkpoints", ignore_errors=True)
    recorded.unlink(missing_ok=True)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes: the identity of a saved encoder."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_train_test(
    spec: str,
    image_size: int | None = None,
    seed: int = 0,
    skip_bad_images: bool = False,
    stream: bool | None = None,
    cache_size: int | None = None,
    refresh_listing: bool = False,
    notes: dict | None = None,
):
    """Train and test sets: the source's own splits, or a stratified 80/20 split.

    `tfds:NAME:SPLIT` trains on SPLIT (e.g. `train[:10%]`) and tests on `test`; a folder
    with `train/` and `test/` subfolders uses them; any other folder is split 80/20.
    Folders and TFDS sets are decoded into memory or streamed from disk
    (`kssl.data.planning.choose_streaming`; `stream` forces it); `image_size=None`
    takes the data's default (`default_image_size`). `notes`, if given, receives the
    choices and their reasons (`image_size`, `storage`, ...).
    """
    from sklearn.model_selection import train_test_split

    from kssl.data import planning, sources
    from kssl.data.files import cached_copies, list_folder

    notes = {} if notes is None else notes
    parsed = sources.parse_data_spec(spec)
    if parsed.kind == "embedded":
        reason = "as asked (--image-size)" if image_size else "digits are 8x8: 16 px loses nothing"
        image_size = image_size or 16
        notes.update(image_size=image_size, image_size_reason=reason, storage="in memory")
        _announce(notes)
        return sources.load_digits(image_size, "train"), sources.load_digits(image_size, "test")
    if parsed.kind == "tfds":
        from kssl.data.tfds_stream import TFDSRecords

        records = TFDSRecords.open(parsed.name, parsed.split or "train")
        shapes = records.image_shapes(50)
        image_size = _chosen_size(image_size, shapes, notes)
        streaming, reason = planning.choose_streaming(len(records), shapes, image_size, stream)
        notes.update(storage="streaming" if streaming else "in memory", storage_reason=reason)
        _announce(notes)
        if streaming:
            return records.at_size(image_size), TFDSRecords.open(parsed.name, "test").at_size(image_size)
        train = sources.from_tfds(parsed.name, parsed.split or "train", image_size)
        return train, sources.from_tfds(parsed.name, "test", image_size)
    path = pathlib.Path(parsed.name)
    splits = ("train", "test") if (path / "train").is_dir() and (path / "test").is_dir() else (None,)
    listed = []
    for split in splits:
        files = list_folder(path, split, refresh=refresh_listing, skip_bad_images=skip_bad_images)
        if cache_size:
            files = cached_copies(files, cache_size, skip_bad_images=skip_bad_images)
        listed.append(files)
    shapes = listed[0].image_shapes(200, seed)
    image_size = _chosen_size(image_size, shapes, notes)
    streaming, reason = planning.choose_streaming(sum(map(len, listed)), shapes, image_size, stream)
    notes.update(storage="streaming" if streaming else "in memory", storage_reason=reason)
    _announce(notes)
    if streaming:
        loaded = [files.at_size(image_size) for files in listed]
    else:
        loaded = [files.load(image_size, skip_bad_images) for files in listed]
    if len(loaded) == 2:
        return tuple(loaded)
    everything = loaded[0]
    indices = np.arange(len(everything))
    train, test = train_test_split(indices, test_size=0.2, stratify=everything.labels, random_state=seed)
    return everything.subset(np.sort(train), f"{spec} (80%)"), everything.subset(np.sort(test), f"{spec} (20%)")


def _announce(notes):
    """Prints the data choices and their reasons, before any long decoding starts."""
    print(f"image size: {notes['image_size']} px ({notes['image_size_reason']})", flush=True)
    if "storage_reason" in notes:
        print(f"data: {notes['storage_reason']}", flush=True)


def _chosen_size(image_size, shapes, notes) -> int:
    from kssl.data import planning

    if image_size is None:
        image_size, reason = planning.default_image_size(shapes, planning.has_accelerator())
        notes.update(image_size=image_size, image_size_reason=f"{reason}; --image-size overrides")
    else:
        notes.update(image_size=image_size, image_size_reason="as asked (--image-size)")
    return image_size


def _write_json(path, payload):
    with atomic_file(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str))


def _final_metrics(curve) -> dict:
    return {f"final_{name}": values[-1] for name, values in curve.logs.items() if values}


def _pretrain_into(folder, config, strategy, train, verbose):
    from kssl.callbacks import StepHistory
    from kssl.data.preview import save_view_grid
    from kssl.encoders import build_encoder
    from kssl.plots import plot_training_curves
    from kssl.training import pretrain

    model_class = method_class(config.method)
    augmentation = model_class.view_augmentations(config.image_size)
    save_view_grid(train, augmentation, folder / "augmentations.png", seed=config.seed)
    with strategy.scope():
        encoder = build_encoder(config.encoder, config.image_size, config.width, config.weights)
    curve = StepHistory()
    model, _ = pretrain(
        train,
        encoder,
        epochs=config.epochs,
        budget_minutes=config.budget,
        batch_size=min(config.batch_size, len(train)),
        temperature=config.temperature,
        augmentation=augmentation,
        method=config.method,
        seed=config.seed,
        strategy=strategy,
        jit_compile=config.jit_compile,
        augment_on_device=config.augment_on_device,
        checkpoint_dir=folder / "checkpoints" / "pretrain",
        checkpoint_every=config.checkpoint_every,
        callbacks=[curve],
        verbose=verbose,
    )
    encoder = model.encoder
    encoder.save(folder / "encoder.keras")
    title = f"{model_class.__name__} pretraining"
    plot_training_curves({"pretraining": (curve.steps, curve.logs)}, folder / "pretraining.png", title)
    return encoder, {"steps": int(model.optimizer.iterations.numpy()), **_final_metrics(curve)}


def _evaluate_frozen(encoder, train, test, folder=None, seed=0):
    from kssl.evaluation import evaluate_encoder, extract_features
    from kssl.plots import plot_embedding_map

    frozen = evaluate_encoder(encoder, train, test, k=min(200, len(train)))
    if folder is not None:
        features = extract_features(encoder, test)
        plot_embedding_map(features, test.labels, test.class_names, folder / "embeddings.png", seed=seed)
    return {"knn_accuracy": frozen["knn_accuracy"], "linear_probe_accuracy": frozen["linear_accuracy"]}


def _mode_options(config, mode) -> dict:
    return {"rank": config.lora_rank} if mode == "lora" else {}


def _adversarial_training(config):
    from kssl.finetuning.adversarial import AdversarialTraining

    if config.adversarial == "none":
        return None
    return AdversarialTraining(config.adversarial, config.epsilon, config.attack_steps, seed=config.seed)


def _finetune_into(folder, config, strategy, encoder, subsets, test, verbose):
    """Fine-tunes a copy of `encoder` and a fresh one with every mode on every labeled
    subset; saves the best mode's classifier at the largest budget, the curves and the
    plot; returns (rows, that classifier, what was exported)."""
    import keras

    from kssl.callbacks import StepHistory
    from kssl.data.pipeline import labeled_batches
    from kssl.encoders import build_encoder
    from kssl.finetuning.adversarial import evaluate_robustness
    from kssl.plots import plot_label_efficiency, plot_training_curves
    from kssl.training import copy_model, finetune

    test_batches = labeled_batches(test, 256)
    adversarial = _adversarial_training(config)
    rows, curves, kept, exported = [], {}, None, None
    for labeled in subsets:
        row = {"labeled_images": len(labeled), "per_class": labeled.class_counts(), "strategies": {}}
        for mode in config.modes:
            entry = {}
            with strategy.scope():
                starts = {
                    "pretrained": copy_model(encoder),
                    "scratch": (
                        build_encoder(config.encoder, encoder.input_shape[1], config.width)
                        if config.encoder
                        else keras.models.clone_model(encoder)  # the same architecture, fresh weights
                    ),
                }
            for name, start in starts.items():
                curve = StepHistory()
                classifier, _ = finetune(
                    start,
                    labeled,
                    mode=mode,
                    mode_options=_mode_options(config, mode),
                    stage_decay=config.stage_decay,
                    adversarial=adversarial,
                    epochs=config.finetune_epochs,
                    seed=config.seed,
                    strategy=strategy,
                    jit_compile=config.jit_compile,
                    checkpoint_dir=folder / "checkpoints" / f"finetune-{mode}-{name}-{len(labeled)}",
                    checkpoint_every=config.checkpoint_every,
                    callbacks=[curve],
                    verbose=verbose,
                )
                deployed = classifier.merged()
                if deployed is not classifier:  # LoRA: a plain copy, for evaluation, saving and serving
                    deployed.compile()
                entry[f"{name}_accuracy"] = float(
                    deployed.evaluate(test_batches, return_dict=True, verbose=0)["accuracy"]
                )
                if adversarial is not None:
                    robustness = evaluate_robustness(deployed, test, config.epsilon, steps=10, seed=config.seed)
                    entry[f"{name}_robust_accuracy"] = robustness["robust_accuracy"]
                if name == "pretrained":
                    counts = classifier.parameter_counts()
                    entry["trainable_parameters"], entry["trainable_share"] = counts["trainable"], counts["share"]
                    if labeled is subsets[-1] and (
                        exported is None or entry[f"{name}_accuracy"] > exported["accuracy"]
                    ):
                        kept = deployed
                        exported = {
                            "mode": mode,
                            "labeled_images": len(labeled),
                            "accuracy": entry["pretrained_accuracy"],
                        }
                curves[f"{mode}, {name}, {len(labeled)} labels"] = (curve.steps, {"loss": curve.logs.get("loss", [])})
            row["strategies"][mode] = entry
            robust = (
                f" (PGD-10 at epsilon {config.epsilon:.4f}: {entry['pretrained_robust_accuracy']:.1%} / "
                f"{entry['scratch_robust_accuracy']:.1%})"
                if adversarial is not None
                else ""
            )
            print(
                f"  {len(labeled)} labels, {mode}: fine-tuned {entry['pretrained_accuracy']:.1%}, "
                f"from scratch {entry['scratch_accuracy']:.1%}{robust}",
                flush=True,
            )
        best = max(row["strategies"], key=lambda m: row["strategies"][m]["pretrained_accuracy"])
        row.update(
            best_mode=best,
            pretrained_accuracy=row["strategies"][best]["pretrained_accuracy"],
            scratch_accuracy=row["strategies"][best]["scratch_accuracy"],
        )
        rows.append(row)
    kept.save(folder / "classifier.keras")
    plot_training_curves(curves, folder / "finetuning.png", "Fine-tuning")
    if len(rows) > 1 or len(config.modes) > 1:
        plot_label_efficiency(
            [r["labeled_images"] for r in rows],
            {
                mode: (
                    [r["strategies"][mode]["pretrained_accuracy"] for r in rows],
                    [r["strategies"][mode]["scratch_accuracy"] for r in rows],
                )
                for mode in config.modes
            },
            folder / "label_efficiency.png",
        )
    return rows, kept, exported


_STRATEGIES = {}


def _methods_with(parameter: str) -> list[str]:
    """The registered methods whose class takes `parameter` (e.g. "temperature")."""
    from kssl.methods import METHODS

    return [name for name in METHODS if parameter in inspect.signature(method_class(name)).parameters]


def start_strategy(name: str):
    """The process's strategy for `name`, created on first use.

    Call it before anything else touches TensorFlow: `MultiWorkerMirroredStrategy`
    configures collective ops, which TensorFlow accepts only before its runtime starts
    (loading data or building a model starts it). One object per name, since strategies
    hold devices and collectives.
    """
    from kssl.distribute import strategy_from_name

    if name not in _STRATEGIES:
        _STRATEGIES[name] = strategy_from_name(name)
    return _STRATEGIES[name]


def _prepare(config, strategy, labeled=True):
    """Fills the machine's defaults, loads the data and takes the labeled subsets.

    Returns `(config, train, test, subsets)`; bad input fails here, before any training.
    """
    import keras

    from kssl.data.subsets import label_subset
    from kssl.encoders import build_encoder
    from kssl.errors import InputError
    from kssl.precision import precision_choice, resolve_jit_compile, set_precision

    model_class = method_class(config.method)  # an unknown method fails here
    if config.temperature is not None and "temperature" not in inspect.signature(model_class).parameters:
        raise InputError(
            f"--temperature applies to contrastive methods ({', '.join(_methods_with('temperature'))}); "
            f"{config.method} has none. Leave it out."
        )

    if config.precision is None:
        precision, reason = precision_choice()
        print(f"precision: {precision} ({reason}; --precision overrides)", flush=True)
        config = dataclasses.replace(config, precision=precision)
    config = dataclasses.replace(config, jit_compile=resolve_jit_compile(config.jit_compile, strategy))
    if config.augment_on_device is None:
        config = dataclasses.replace(config, augment_on_device=_announce_augmentation_place())
    set_precision(config.precision)
    # An unknown name, or an encoder the method cannot train, fails before loading data.
    if config.encoder is not None and config.image_size is not None:
        model_class.check_encoder(build_encoder(config.encoder, config.image_size, config.width, config.weights))
    elif config.weights is not None:
        raise InputError("--weights needs a keras.applications backbone: add --encoder keras:ResNet50V2 (or another).")
    config = _check_finetuning(config)
    keras.utils.set_random_seed(config.seed)
    notes, size_was_given = {}, config.image_size is not None
    train, test = load_train_test(
        config.data,
        config.image_size,
        config.seed,
        config.skip_bad_images,
        config.stream,
        config.cache_size,
        config.refresh_listing,
        notes,
    )
    if config.image_size is None:
        config = dataclasses.replace(config, image_size=notes["image_size"])
    config = dataclasses.replace(config, stream=notes["storage"] == "streaming")
    if config.encoder is not None and not size_was_given:  # checked above when the size was known
        model_class.check_encoder(build_encoder(config.encoder, config.image_size, config.width, config.weights))
    subsets = [label_subset(train, labels, seed=config.seed) for labels in config.labels] if labeled else []
    subsets = [_in_memory_if_it_fits(subset, config) for subset in subsets]
    model_class.check_batch_size(min(config.batch_size, len(train)))
    line = f"data: {len(train)} train / {len(test)} test images, {train.num_classes} classes"
    if subsets:
        line += f"; labeled subsets of {', '.join(str(len(s)) for s in subsets)} images"
    if strategy.num_replicas_in_sync > 1:
        line += f"; {strategy.num_replicas_in_sync} replicas"
    print(line, flush=True)
    return config, train, test, subsets


def _announce_augmentation_place() -> bool:
    """The default of `augment_on_device` (on a GPU), printed with the reason."""
    from kssl.precision import has_gpu

    gpu = has_gpu()
    if gpu:
        print("augmentation: crops on the host, the rest on the GPU in the train step (--augment-on-host overrides)",
              flush=True)  # fmt: skip
    return gpu


def _in_memory_if_it_fits(subset, config):
    """A streamed labeled subset decoded into memory when it fits: fine-tuning reads it many times."""
    from kssl.data.files import ImageFiles
    from kssl.data.planning import choose_streaming

    if not isinstance(subset, ImageFiles):
        return subset
    streaming, _ = choose_streaming(len(subset), subset.image_shapes(50), config.image_size)
    return subset if streaming else subset.load(config.image_size, config.skip_bad_images, progress=False)


def _check_finetuning(config):
    """The fine-tuning options checked (modes in the registry's spelling), or an `InputError`."""
    from kssl.errors import InputError
    from kssl.finetuning import check_mode, strategy_class
    from kssl.finetuning.adversarial import ATTACKS, check_epsilon

    modes = [check_mode(mode) for mode in (config.modes or [])]
    if not modes:
        raise InputError("--modes is empty: name one or more of linear, partial, full, lora, adapter, gradual.")
    for mode in modes:
        try:
            strategy_class(mode)(**_mode_options(config, mode))
        except ValueError as error:
            raise InputError(f"--modes {mode}: {error}") from None
    if config.adversarial not in ("none", *ATTACKS):
        raise InputError(f"--adversarial must be none, fgsm or pgd. Received: {config.adversarial!r}")
    try:
        check_epsilon(config.epsilon)
    except ValueError as error:
        raise InputError(f"--epsilon: {error}") from None
    if not 0 < config.stage_decay <= 1:
        raise InputError(f"--stage-decay must be in (0, 1] (1 turns it off). Received: {config.stage_decay!r}")
    return dataclasses.replace(config, modes=list(dict.fromkeys(modes)))


def encoder_file(path) -> pathlib.Path:
    """The encoder `.keras` file of `path`: the file itself, or a run folder's `encoder.keras`."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "encoder.keras"
    if not path.is_file():
        raise MissingInputError(f"No encoder at {str(path)!r}: pass a run folder of `kssl pretrain` or a .keras file.")
    return path


def load_encoder(path):
    """An encoder from a `.keras` file, or from a run folder holding `encoder.keras`."""
    import keras

    model = keras.saving.load_model(encoder_file(path))
    return getattr(model, "encoder", model)  # a pretraining model's or a Classifier's file holds its encoder


def pretrain_job(config: RunConfig, verbose="auto") -> dict:
    """`kssl pretrain`: encoder.keras, augmentations.png, pretraining.png, metrics.json, config.json."""
    config = config.resolved()
    out = check_output_folder(config.out, config.overwrite)
    strategy = start_strategy(config.strategy)
    config, train, _, _ = _prepare(dataclasses.replace(config, labels=[]), strategy, labeled=False)
    with staged_folder(out, config.result_fields()) as folder:
        _, metrics = _pretrain_into(folder, config, strategy, train, verbose)
        _write_json(folder / "metrics.json", {"data": config.data, "pretraining": metrics})
        _write_json(folder / "config.json", dataclasses.asdict(config))
    print(f"Pretrained encoder in {out}/encoder.keras")
    return metrics


def finetune_job(config: RunConfig, pretrained, verbose="auto") -> dict:
    """`kssl finetune`: classifier.keras, finetuning.png, metrics.json, config.json.

    The from-scratch baseline is `config.encoder` if given, else the pretrained
    encoder's architecture with fresh weights."""
    config = config.resolved(default_encoder=False)
    out = check_output_folder(config.out, config.overwrite)
    path = encoder_file(pretrained)
    strategy = start_strategy(config.strategy)
    encoder = load_encoder(path)
    config = dataclasses.replace(config, image_size=encoder.input_shape[1])
    config, _, test, subsets = _prepare(config, strategy)
    source = {"pretrained": str(pretrained), "pretrained_sha256": file_sha256(path)}
    with staged_folder(out, {**config.result_fields(), "pretrained_sha256": source["pretrained_sha256"]}) as folder:
        rows, _, exported = _finetune_into(folder, config, strategy, encoder, subsets, test, verbose)
        metrics = {
            "data": config.data,
            "test_images": len(test),
            **source,
            "modes": config.modes,
            "adversarial": config.adversarial,
            "label_budgets": rows,
            "exported": exported,
        }
        _write_json(folder / "metrics.json", metrics)
        _write_json(folder / "config.json", {**dataclasses.asdict(config), **source})
    print(results_table(metrics))
    print(f"Fine-tuned classifier in {out}/classifier.keras")
    return metrics


def evaluate_job(config: RunConfig, pretrained) -> dict:
    """`kssl evaluate`: kNN and linear probe of an encoder's frozen features, and the test
    accuracy of the run's classifier when the folder has one. Writes nothing."""
    import keras

    from kssl.data.pipeline import labeled_batches

    path = encoder_file(pretrained)
    strategy = start_strategy("default")
    encoder = load_encoder(path)
    config = dataclasses.replace(config.resolved(), image_size=encoder.input_shape[1], labels=[])
    config, train, test, _ = _prepare(config, strategy, labeled=False)
    if config.few_shot:
        _check_few_shot(config.few_shot, test.labels)
    results = _evaluate_frozen(encoder, train, test)
    classifier_path = pathlib.Path(pretrained) / "classifier.keras"
    if classifier_path.is_file():
        classifier = keras.saving.load_model(classifier_path)
        batches = labeled_batches(test, 256)
        results["classifier_accuracy"] = float(classifier.evaluate(batches, return_dict=True, verbose=0)["accuracy"])
    width = max(len(name) for name in results)
    print("\n".join(f"  {name:<{width}}  {value:6.1%}" for name, value in results.items()))
    if config.few_shot:
        results["few_shot"] = _few_shot(encoder, test, config.few_shot, config.seed)
    return results


def _check_few_shot(settings, labels):
    from kssl.errors import InputError
    from kssl.few_shot import few_shot_episodes

    for ways, shots in settings:
        try:
            next(few_shot_episodes(labels, ways, shots, episodes=1))
        except ValueError as error:
            raise InputError(f"--few-shot {ways}x{shots} on the test split: {error}") from None


def _few_shot(encoder, test, settings, seed) -> list[dict]:
    """N-way K-shot accuracy of the test split's frozen features, both classifiers, printed."""
    from kssl.evaluation import extract_features
    from kssl.few_shot import CLASSIFIERS, few_shot_accuracy

    features = extract_features(encoder, test)
    print(f"  few-shot on the {len(test)} test images (600 episodes, 95% interval):")
    results = []
    for ways, shots in settings:
        for classifier in CLASSIFIERS:
            result = few_shot_accuracy(features, test.labels, ways, shots, classifier=classifier, seed=seed)
            results.append(result)
            print(
                f"    {ways}-way {shots}-shot, {classifier.replace('_', ' '):<12}  "
                f"{result['accuracy']:6.1%} +- {result['ci95']:.1%}  ({result['queries']} queries a class)"
            )
    return results


def export_job(model, out, model_name="kssl", version=1, overwrite=False) -> pathlib.Path:
    """`kssl export`: `out/<model_name>/<version>/`, the layout TF Serving reads."""
    import keras

    from kssl.export import export_saved_model

    path = pathlib.Path(model)
    if path.is_dir():
        path = path / "classifier.keras"
    if not path.is_file():
        raise MissingInputError(f"No classifier at {str(path)!r}: pass a run folder or a classifier .keras file.")
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
    strategy = start_strategy(config.strategy)
    config, train, test, subsets = _prepare(config, strategy)
    with staged_folder(out, config.result_fields()) as folder:
        print(f"[1/4] pretraining with {method_class(config.method).__name__} (labels unused)", flush=True)
        encoder, pretraining = _pretrain_into(folder, config, strategy, train, verbose)
        print("[2/4] evaluating frozen features (kNN, linear probe, embedding map)", flush=True)
        frozen = _evaluate_frozen(encoder, train, test, folder, config.seed)
        print("[3/4] fine-tuning: pretrained encoder vs. the same architecture from scratch", flush=True)
        rows, classifier, exported = _finetune_into(folder, config, strategy, encoder, subsets, test, verbose)
        print("[4/4] exporting the SavedModel for TF Serving", flush=True)
        export_saved_model(classifier, folder / "serving" / config.model_name / str(config.version))
        metrics = {
            "data": config.data,
            "method": method_class(config.method).__name__,
            "train_images": len(train),
            "test_images": len(test),
            "pretraining": pretraining,
            **frozen,
            "modes": config.modes,
            "adversarial": config.adversarial,
            "label_budgets": rows,
            "exported": exported,
            "seconds": round(time.perf_counter() - started, 1),
        }
        _write_json(folder / "metrics.json", metrics)
        _write_json(folder / "config.json", dataclasses.asdict(config))
    print(results_table(metrics, out))
    return metrics


def results_table(metrics: dict, out=None) -> str:
    """The table `kssl run` and `kssl finetune` print at the end: accuracy per label
    budget and fine-tuning mode, pretrained vs. from scratch, and what each mode trains."""
    lines = [f"\nTest accuracy on {metrics['test_images']} images of {metrics['data']}:"]
    if "knn_accuracy" in metrics:
        lines += [
            f"  frozen features of the {metrics['method']} encoder, all {metrics['train_images']} train labels:",
            f"    kNN (k=200)                   {metrics['knn_accuracy']:6.1%}",
            f"    linear probe                  {metrics['linear_probe_accuracy']:6.1%}",
        ]
    adversarial = metrics.get("adversarial", "none") != "none"
    header = "  labels  mode      fine-tuned  from scratch    gain   trains"
    if adversarial:
        header += "    PGD-10 (pretrained / scratch)"
    lines.append(header)
    for row in metrics["label_budgets"]:
        for mode, entry in row["strategies"].items():
            gain = entry["pretrained_accuracy"] - entry["scratch_accuracy"]
            line = (
                f"  {row['labeled_images']:>6}  {mode:<8}  {entry['pretrained_accuracy']:>10.1%}  "
                f"{entry['scratch_accuracy']:>12.1%}  {gain:>+6.1%}  {entry['trainable_share']:>6.1%} "
                f"({entry['trainable_parameters']:,})"
            )
            if adversarial:
                line += f"  {entry['pretrained_robust_accuracy']:.1%} / {entry['scratch_robust_accuracy']:.1%}"
            lines.append(line)
    exported = metrics.get("exported")
    if exported:
        lines.append(
            f"  saved: the {exported['mode']} classifier at {exported['labeled_images']} labels "
            "(best test accuracy at the largest label budget)"
        )
    if out is not None:
        seconds = f" ({metrics['seconds']:.0f}s)" if "seconds" in metrics else ""
        lines.append(f"Artifacts in {out}/{seconds}")
    return "\n".join(lines)

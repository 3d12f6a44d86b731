"""The jobs behind the `kssl` command: pretrain, fine-tune, evaluate, and run (all of them);
export is `kssl.app.export_job`, embed and similar `kssl.app.embedding`, select `kssl.app.select_job`.

Each job checks its input (`prepare`: exit code 2 in the command, before anything is
written), stages its folder (`kssl.app.staging`), runs its stages (`kssl.app.run_stages`)
and reports (`kssl.app.report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import pathlib
import time

import numpy as np

from kssl.app.choices import adaptation_paid
from kssl.app.config import (
    RunConfig,
    check_finetuning,
    check_method_options,
    pretrained_start,
    recorded_config,
    with_pretraining_length,
)
from kssl.app.data import in_memory_if_it_fits, load_train_test, unlabeled_pool
from kssl.app.export_job import export_formats, export_job, export_targets  # noqa: F401  (export_job: the command)
from kssl.app.label_budgets import finetune_into
from kssl.app.report import results_table
from kssl.app.run_stages import (
    announce_tensorboard,
    build_start,
    check_few_shot,
    evaluate_frozen,
    few_shot,
    pretrain_into,
)
from kssl.app.staging import check_output_folder, file_sha256, staged_folder, write_json
from kssl.data.pipeline import labeled_batches
from kssl.data.service import check_reachable
from kssl.data.subsets import draw_seed, label_draws
from kssl.encoders import build_encoder
from kssl.encoders.loading import as_encoder, declared_size, encoder_file, load_keras_file
from kssl.errors import DataError, InputError
from kssl.evaluation.label_selection import picked_subset
from kssl.methods import method_class
from kssl.models.multicrop import AUTO_FROM_SIZE, local_size, resolve_local_crops
from kssl.runtime.distribute import strategy_from_name
from kssl.runtime.memory import check_training_memory
from kssl.runtime.precision import has_gpu, precision_choice, resolve_jit_compile, set_precision

_STRATEGIES = {}


def finetuning_metrics(config, pool, extra, rows, exported) -> dict:
    """The fine-tuning part of `metrics.json` (`kssl finetune` and `kssl run` alike)."""
    return {
        "label_selection": config.select or "stratified random draw",
        "unlabeled_images": len(pool),
        "images_without_class": extra,
        "modes": config.modes,
        "semi_supervised": config.semi_supervised,
        "adversarial": config.adversarial,
        "label_budgets": rows,
        "exported": exported,
    }


def start_strategy(name: str):
    """The process's strategy for `name`, created on first use.

    Call it before anything else touches TensorFlow: `MultiWorkerMirroredStrategy`
    configures collective ops, which TensorFlow accepts only before its runtime starts
    (loading data or building a model starts it). One object per name, since strategies
    hold devices and collectives.
    """

    if name not in _STRATEGIES:
        _STRATEGIES[name] = strategy_from_name(name)
    return _STRATEGIES[name]


def prepare(config, strategy, labeled=True, pretraining=False, size_source=None):
    """Fills the machine's defaults, loads the data and takes the labeled subsets.

    Returns `(config, train, test, budgets)`, `budgets` holding each label budget's
    drawn subsets (`kssl.data.subsets.label_draws`); bad input fails here, before any
    training (for a job that is `pretraining`, also a step that cannot fit in memory).
    """
    import keras

    from kssl.errors import InputError

    model_class = method_class(config.method)  # an unknown method fails here
    config = check_method_options(config)

    if config.precision is None:
        precision, reason = precision_choice()
        print(f"precision: {precision} ({reason}; --precision overrides)", flush=True)
        config = dataclasses.replace(config, precision=precision)
    config = dataclasses.replace(config, jit_compile=resolve_jit_compile(config.jit_compile, strategy))
    if config.augment_on_device is None:
        config = dataclasses.replace(config, augment_on_device=_announce_augmentation_place())
    set_precision(config.precision)
    # An unknown name, an encoder the method cannot train, or a step that cannot fit in
    # memory fails before loading data.
    if config.encoder is not None and config.image_size is not None:
        config = check_encoder_and_memory(model_class, config, pretraining)
    elif config.weights is not None:
        raise InputError("--weights needs a keras.applications backbone: add --encoder keras:ResNet50V2 (or another).")
    config = check_finetuning(config)
    keras.utils.set_random_seed(config.seed)
    notes, size_was_given = {"size_source": size_source}, config.image_size is not None
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
        config = check_encoder_and_memory(model_class, config, pretraining, min(config.batch_size, len(train)))
    if labeled:
        check_classes(train, config.data, "fine-tuning")
    budgets = [label_draws(train, labels, config.draws, config.seed) for labels in config.labels] if labeled else []
    budgets = [[in_memory_if_it_fits(subset, config) for subset in draws] for draws in budgets]
    model_class.check_batch_size(min(config.batch_size, len(train)), **config.method_options)
    line = f"data: {len(train)} train / {len(test)} test images, {train.num_classes} classes"
    if budgets:
        line += f"; labeled subsets of {', '.join(_drawn(draws) for draws in budgets)}"
    if strategy.num_replicas_in_sync > 1:
        line += f"; {strategy.num_replicas_in_sync} replicas"
    print(line, flush=True)
    return config, train, test, budgets


def _drawn(draws) -> str:
    if len(draws) == 1:
        return f"{len(draws[0])} images"
    return f"{len(draws[0])} images ({len(draws)} draws: --draws)"


def picked_subsets(encoder, train, budgets, config) -> list:
    """With `config.select`, the labeled subsets that method picks on `encoder`'s features
    (for each budget, as many draws as `budgets` holds, seeded like them, each of as many
    images as a random draw, whose draws checked the budgets), printed; else `budgets`."""
    if config.select is None:
        return budgets

    picked = []
    for labels, draws in zip(config.labels, budgets):
        subsets = []
        for index in range(len(draws)):
            seed = draw_seed(config.seed, index)
            subset = in_memory_if_it_fits(picked_subset(encoder, train, labels, config.select, seed), config)
            covered = int((np.bincount(subset.labels, minlength=train.num_classes) > 0).sum())
            print(
                f"labels: {len(subset)} images picked by {config.select} (seed {seed}) on the pretrained encoder's "
                f"features (as many as a random draw of {labels}), covering {covered} of {train.num_classes} classes",
                flush=True,
            )
            subsets.append(subset)
        picked.append(subsets)
    return picked


def check_encoder_and_memory(model_class, config, pretraining, batch_size=None):
    """`config` with multi-crop's size-dependent default decided on its encoder, or an
    `InputError` unless the method can train `config`'s encoder and, when `pretraining`,
    a step of `batch_size` (default `config.batch_size`) fits in memory
    (`kssl.runtime.memory.check_training_memory`)."""

    with contextlib.redirect_stdout(io.StringIO()):  # what was done to it is said where the job builds it
        encoder = build_encoder(config.encoder, config.image_size, config.width, config.weights)
    model_class.check_encoder(encoder)
    if model_class.supports_local_crops and config.method_options.get("local_crops", 0) is None:
        local_crops = resolve_local_crops(None, config.image_size, encoder)
        config = dataclasses.replace(config, method_options={**config.method_options, "local_crops": local_crops})
        reason = (
            f"from {AUTO_FROM_SIZE} px"
            if local_crops
            else f"below {AUTO_FROM_SIZE} px"
            if config.image_size < AUTO_FROM_SIZE
            else "the encoder takes one size"
        )
        what = f"{local_crops} local crops of {local_size(config.image_size)} px" if local_crops else "off"
        print(f"multi-crop: {what} ({reason}; --method-option local_crops=N overrides)", flush=True)
    if pretraining:
        views = model_class.view_augmentations(config.image_size, **config.method_options)
        check_training_memory(encoder, batch_size or config.batch_size, views)
    return config


def check_classes(train, data, job: str) -> None:
    """An `InputError`, before any training, when `train` has fewer than 2 classes:
    a classifier (or a probe) of one class learns nothing and its accuracy is 1."""
    if train.num_classes < 2:
        names = ", ".join(map(repr, train.class_names)) or "none"
        raise DataError(
            f"{data!r} has {train.num_classes} class ({names}); {job} needs at least 2. Put each class's images "
            "in a folder of its own, or use `kssl pretrain`, which needs no labels."
        )


def _announce_augmentation_place() -> bool:
    """The default of `augment_on_device` (on a GPU), printed with the reason."""

    gpu = has_gpu()
    if gpu:
        print("augmentation: crops on the host, the rest on the GPU in the train step (--augment-on-host overrides)",
              flush=True)  # fmt: skip
    return gpu


def with_service_streaming(config):
    """With `--data-service`, `config` streaming its files unless `--in-memory` was given: the
    service's workers read the files themselves; images in memory would travel to each of them
    inside the pipeline's graph."""
    if config.data_service is None:
        return config

    check_reachable(config.data_service, timeout=min(10.0, config.data_service_timeout))  # before any work
    if config.stream is not None:
        return config
    print("data: streamed from the files, which the tf.data service's workers read (--data-service sets --stream)",
          flush=True)  # fmt: skip
    return dataclasses.replace(config, stream=True)


def pretrain_job(config: RunConfig, verbose="auto") -> dict:
    """`kssl pretrain`: encoder.keras, augmentations.png, pretraining.png, metrics.json, config.json."""
    config = with_service_streaming(config.resolved())
    out = check_output_folder(config.out, config.overwrite, config.data)
    strategy = start_strategy(config.strategy)
    config, train, _, _ = prepare(dataclasses.replace(config, labels=[]), strategy, labeled=False, pretraining=True)
    pool, _ = unlabeled_pool(train, config)
    config = with_pretraining_length(config, len(pool))
    announce_tensorboard(config, out)
    with staged_folder(out, config.result_fields()) as folder:
        _, metrics = pretrain_into(folder, config, strategy, pool, verbose, labeled=train)
        write_json(folder / "metrics.json", {"data": config.data, "pretraining": metrics})
        write_json(folder / "config.json", recorded_config(config))
    print(f"Pretrained encoder in {out}/encoder.keras")
    return metrics


def finetune_job(config: RunConfig, pretrained, verbose="auto") -> dict:
    """`kssl finetune`: classifier.keras, finetuning.png, metrics.json, config.json.

    The from-scratch baseline is `config.encoder` if given, else the pretrained
    encoder's architecture with fresh weights."""
    asked = config.image_size
    config = config.resolved(default_encoder=False)
    out = check_output_folder(config.out, config.overwrite, config.data)
    path = encoder_file(pretrained)
    strategy = start_strategy(config.strategy)
    model = load_keras_file(path)
    size, size_source = declared_size(model, asked, path)
    config, train, test, budgets = prepare(dataclasses.replace(config, image_size=size), strategy,
                                           size_source=size_source)  # fmt: skip
    encoder = as_encoder(model, config.image_size, path)
    source = {"pretrained": str(pretrained), "pretrained_sha256": file_sha256(path)}
    announce_tensorboard(config, out)
    with staged_folder(out, {**config.result_fields(), "pretrained_sha256": source["pretrained_sha256"]}) as folder:
        budgets = picked_subsets(encoder, train, budgets, config)
        pool, extra = unlabeled_pool(train, config)
        rows, _, exported = finetune_into(folder, config, strategy, encoder, budgets, test, verbose, pool)
        metrics = {
            "data": config.data,
            "test_images": len(test),
            **source,
            **finetuning_metrics(config, pool, extra, rows, exported),
        }
        write_json(folder / "metrics.json", metrics)
        write_json(folder / "config.json", recorded_config(config, pretraining=False, **source))
    print(results_table(metrics))
    print(f"Fine-tuned classifier in {out}/classifier.keras")
    return metrics


def evaluate_job(config: RunConfig, pretrained) -> dict:
    """`kssl evaluate`: kNN and linear probe of an encoder's frozen features, and the test
    accuracy of the run's classifier when the folder has one. Writes nothing."""

    path = encoder_file(pretrained)
    strategy = start_strategy("default")
    model = load_keras_file(path)
    size, size_source = declared_size(model, config.image_size, path)
    config = dataclasses.replace(config.resolved(default_encoder=False), image_size=size, labels=[])
    config, train, test, _ = prepare(config, strategy, labeled=False, size_source=size_source)
    encoder = as_encoder(model, config.image_size, path)
    check_classes(train, config.data, "evaluation (kNN, linear probe)")
    if config.few_shot:
        check_few_shot(config.few_shot, test.labels)
    classifier_path = pathlib.Path(pretrained) / "classifier.keras"
    if classifier_path.is_file():  # checked before any work: its classes must be the data's
        classifier = load_keras_file(classifier_path)
        classifier_test = labeled_as_classifier(classifier, test, config.data)
    results = evaluate_frozen(encoder, train, test)
    if classifier_path.is_file():
        batches = labeled_batches(classifier_test, 256)
        results["classifier_accuracy"] = float(classifier.evaluate(batches, return_dict=True, verbose=0)["accuracy"])
    labels = {name: f"{name} (k={results['knn_k']})" if name == "knn_accuracy" else name for name in results}
    accuracies = {labels[name]: value for name, value in results.items() if name.endswith("accuracy")}
    width = max(len(label) for label in accuracies)
    print("\n".join(f"  {label:<{width}}  {value:6.1%}" for label, value in accuracies.items()))
    if config.few_shot:
        results["few_shot"] = few_shot(encoder, test, config.few_shot, config.seed, config.few_shot_episodes)
    return results


def labeled_as_classifier(classifier, test, data):
    """`test` with the classifier's class ids (matched by class name), or an `InputError`
    when the data holds a class the classifier does not know: an accuracy over other
    classes' ids would be meaningless."""
    names = classifier.class_names
    if names is None:
        if classifier.num_classes != test.num_classes:
            raise InputError(
                f"The classifier predicts {classifier.num_classes} classes and {data!r} has {test.num_classes}: "
                "evaluate it on data with its classes."
            )
        return test
    unknown = [name for name in test.class_names if name not in names]
    if unknown:
        raise InputError(
            f"{data!r} has class(es) {', '.join(map(repr, unknown))} that the classifier was not trained on "
            f"(its classes: {', '.join(names)}): evaluate it on data with its classes."
        )
    if list(test.class_names) == list(names):
        return test
    position = np.asarray([names.index(name) for name in test.class_names], np.int64)
    return dataclasses.replace(test, labels=position[test.labels], class_names=list(names))


def run(config: RunConfig, verbose: int | str = "auto") -> dict:
    """`kssl run`: pretrains, evaluates frozen features, fine-tunes (pretrained and from
    scratch) for every label budget, exports, and returns the metrics of `metrics.json`.

    From pretrained weights (`--encoder PATH.keras`, `keras_hub:PRESET`, `--weights`), the
    start itself is measured too, frozen and fine-tuned at every budget, its classifier a
    candidate for export, and the report says whether adapting it paid."""
    started = time.perf_counter()
    config = with_service_streaming(config.resolved())
    out = check_output_folder(config.out, config.overwrite, config.data)
    strategy = start_strategy(config.strategy)
    config, train, test, budgets = prepare(config, strategy, pretraining=True)
    pool, extra = unlabeled_pool(train, config)
    config = with_pretraining_length(config, len(pool))
    serving = (config.model_name, config.version, ["saved_model", *config.export_formats])
    export_targets(out / "serving", *serving)  # a format that cannot be written fails now, not after training
    announce_tensorboard(config, out)
    with staged_folder(out, config.result_fields()) as folder:
        start = build_start(config, strategy) if pretrained_start(config) else None
        print(f"[1/4] pretraining with {method_class(config.method).__name__} (labels unused)", flush=True)
        encoder, pretraining = pretrain_into(folder, config, strategy, pool, verbose, labeled=train, start=start)
        print("[2/4] evaluating frozen features (kNN, linear probe, embedding map)", flush=True)
        frozen = evaluate_frozen(encoder, train, test, folder, config.seed, config.tensorboard)
        started_from = None
        if start is not None:
            started_from = {"encoder": config.encoder, **evaluate_frozen(start, train, test)}
            print(f"  the start as it came ({config.encoder}): kNN {started_from['knn_accuracy']:.1%}, linear probe "
                  f"{started_from['linear_probe_accuracy']:.1%}; adapted: kNN {frozen['knn_accuracy']:.1%}, "
                  f"linear probe {frozen['linear_probe_accuracy']:.1%}", flush=True)  # fmt: skip
        against = " and the unadapted start" if start is not None else ""
        print(f"[3/4] fine-tuning: pretrained encoder vs. the same architecture from scratch{against}", flush=True)
        budgets = picked_subsets(encoder, train, budgets, config)
        rows, classifier, exported = finetune_into(folder, config, strategy, encoder, budgets, test, verbose, pool,
                                                   start)  # fmt: skip
        print("[4/4] exporting the SavedModel for TF Serving", flush=True)
        export_formats(classifier, export_targets(folder / "serving", *serving), config.model_name,
                       staged=(folder, out))  # fmt: skip
        metrics = {
            "data": config.data,
            "method": method_class(config.method).__name__,
            "train_images": len(train),
            "test_images": len(test),
            "pretraining": pretraining,
            **frozen,
            **({"start": started_from} if started_from else {}),
            **finetuning_metrics(config, pool, extra, rows, exported),
            "seconds": round(time.perf_counter() - started, 1),
        }
        if started_from:
            metrics["adaptation"] = adaptation_paid(frozen, started_from, rows)
        write_json(folder / "metrics.json", metrics)
        write_json(folder / "config.json", recorded_config(config))
    print(results_table(metrics, out))
    return metrics

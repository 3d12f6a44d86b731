"""What the jobs do inside their staging folder: pretrain, evaluate frozen features,
few-shot episodes (fine-tuning at every label budget: `kssl.app.label_budgets`)."""

from __future__ import annotations

import time

from kssl import defaults
from kssl.app.config import pretraining_recipe
from kssl.data.preview import save_view_grid
from kssl.defaults import steps_for
from kssl.encoders import build_encoder
from kssl.errors import InputError
from kssl.evaluation.features import evaluate_encoder, readable_features
from kssl.evaluation.few_shot import CLASSIFIERS, few_shot_accuracy, few_shot_episodes
from kssl.evaluation.monitor import KNNMonitor, monitor_every
from kssl.methods import method_class
from kssl.outputs.plots import plot_embedding_map, plot_training_curves
from kssl.outputs.tensorboard_logs import TensorBoardScalars
from kssl.training import pretrain
from kssl.training.curves import StepHistory


def _final_metrics(curve) -> dict:
    return {f"final_{name}": values[-1] for name, values in curve.logs.items() if values}


def tensorboard_scalars(config, folder, name: str, sources) -> list:
    """`[TensorBoardScalars]` of `sources` into `folder/logs/name`, or `[]` with `--no-tensorboard`."""
    if not config.tensorboard:
        return []

    return [TensorBoardScalars(folder / "logs" / name, sources)]


def announce_tensorboard(config, out) -> None:
    """Prints, once per job, where its TensorBoard logs go and the command that shows them."""
    if config.tensorboard:
        print(
            f"TensorBoard: logs in {out}/logs (until the run ends: {out.parent}/.{out.name}.partial/logs; "
            f"--no-tensorboard: none)\n  to watch them: tensorboard --logdir {out.parent}",
            flush=True,
        )


def knn_monitor(labeled, config, pool, path):
    """A `KNNMonitor` (kNN and RankMe) on the labeled training images, a `RankMeMonitor` on
    the pool when there are no classes, or None with `--no-knn-monitor` (printed either way)."""

    if config.knn_monitor is False:
        print("kNN monitor: off (--no-knn-monitor)", flush=True)
        return None
    steps = None
    if config.epochs is not None and config.budget is None:
        steps = steps_for(config.epochs, len(pool), min(config.batch_size, len(pool)))
    if labeled is None or getattr(labeled, "labels", None) is None or labeled.num_classes < 2:
        from kssl.evaluation.monitor import RankMeMonitor

        monitor = RankMeMonitor(pool, every=monitor_every(steps), seed=config.seed, path=path)
        print(f"kNN monitor: off (the training images have fewer than 2 classes); {monitor.describe()}", flush=True)
        return monitor
    monitor = KNNMonitor(labeled, every=monitor_every(steps), seed=config.seed, path=path)
    print(monitor.describe(), flush=True)
    return monitor


def build_start(config, strategy):
    """The encoder pretraining starts from (`config.encoder`, with its weights if it brings
    any), built in `strategy`'s scope."""

    with strategy.scope():
        return build_encoder(config.encoder, config.image_size, config.width, config.weights)


def pretrain_into(folder, config, strategy, train, verbose, labeled=None, start=None):
    """Pretrains on `train` (the pool) into `folder`; `labeled`, the labeled training
    split, feeds the kNN monitor only. `start`: the encoder to start from, kept as it is (a
    copy trains); default: `build_start(config, strategy)`."""
    from kssl.evaluation.monitor import KNNMonitor

    model_class = method_class(config.method)
    recipe, why = pretraining_recipe(config)
    print(f"recipe: {recipe.optimizer.upper()} at {recipe.peak_learning_rate(min(config.batch_size, len(train))):.3g} "
          f"peak for the heads, the encoder at {recipe.encoder_rate:g} of it, batch norm "
          f"{'frozen' if recipe.frozen_batch_norm else 'training'}, {recipe.warmup_fraction:.0%} warm-up"
          f"{', no local crops unless asked' if recipe.local_crops == 0 else ''} ({why})",
          flush=True)  # fmt: skip
    augmentation = model_class.view_augmentations(config.image_size, **config.method_options)
    preview = save_view_grid(train, augmentation, folder / "augmentations.png", seed=config.seed)
    if config.tensorboard:
        from kssl.outputs.tensorboard_logs import write_image

        write_image(folder / "logs" / "pretrain", "augmentations", preview)
    if start is None:
        encoder = build_start(config, strategy)
    else:
        from kssl.training import copy_model

        with strategy.scope():
            encoder = copy_model(start)
    teacher = None
    if config.teacher:
        from kssl.encoders.loading import load_teacher

        teacher = load_teacher(config.teacher, config.image_size)
        print(f"teacher: {config.teacher}: {teacher.output_shape[-1]}-d features of {teacher.input_shape[1]}-px "
              "views, frozen, in inference mode", flush=True)  # fmt: skip
    checkpoints = folder / "checkpoints" / "pretrain"
    curve = StepHistory(path=checkpoints.with_name("pretrain-curve.json"))  # the whole run's, across resumes
    monitor = knn_monitor(labeled, config, train, checkpoints.with_name("knn-monitor.json"))
    sources = [curve] + ([monitor] if monitor else [])
    started = time.perf_counter()
    model, _ = pretrain(
        train,
        encoder,
        epochs=config.epochs,
        budget_minutes=config.budget,
        batch_size=min(config.batch_size, len(train)),
        method_options=config.method_options,
        augmentation=augmentation,
        method=config.method,
        seed=config.seed,
        strategy=strategy,
        jit_compile=config.jit_compile,
        augment_on_device=config.augment_on_device,
        data_service=config.data_service,
        data_service_timeout=config.data_service_timeout,
        checkpoint_dir=checkpoints,
        checkpoint_every=config.checkpoint_every,
        # The monitor after the curve (it adds to the logs), TensorBoard last (it reads both).
        callbacks=[curve, *sources[1:], *tensorboard_scalars(config, folder, "pretrain", sources)],
        verbose=verbose,
        teacher=teacher,
        recipe=recipe,
    )
    seconds = time.perf_counter() - started
    if teacher is not None:
        print(teacher_share(model, model.views, min(config.batch_size, len(train)), seconds), flush=True)
    if monitor is not None and monitor.steps:
        checks = f"{len(monitor.steps)} check" + ("s" if len(monitor.steps) > 1 else "")
        kind = "kNN" if isinstance(monitor, KNNMonitor) else "RankMe"
        print(f"{kind} monitor: {checks} took {monitor.seconds:.0f} s, "
              f"{monitor.seconds / max(seconds, 1e-9):.1%} of pretraining's {seconds:.0f} s", flush=True)  # fmt: skip
    encoder = model.encoder
    encoder.save(folder / "encoder.keras")
    title = f"{model_class.__name__} pretraining"
    curves = {"pretraining": (curve.steps, curve.logs)}
    if monitor is not None:
        what = "kNN monitor (held-out train images)" if isinstance(monitor, KNNMonitor) else "RankMe (no labels)"
        curves[what] = (monitor.steps, monitor.curves)
    plot_training_curves(curves, folder / "pretraining.png", title)
    metrics = {"steps": int(model.optimizer.iterations.numpy()), **_final_metrics(curve)}
    if monitor is not None:
        metrics["knn_monitor" if isinstance(monitor, KNNMonitor) else "rankme_monitor"] = monitor.record()
    return encoder, metrics


def teacher_share(model, views: int, batch_size: int, seconds: float) -> str:
    """One line: the time the teacher takes of each pretraining step (its features of a step's
    views, timed once after training) against the steps' mean time."""
    import tensorflow as tf

    steps = max(int(model.optimizer.iterations.numpy()), 1)
    size = model.teacher_size or model.encoder.input_shape[1]
    batch = tf.zeros([views * batch_size, size, size, 3])
    forward = tf.function(lambda images: model.teacher(images, training=False))
    forward(batch)  # traced once, as in the step
    started = time.perf_counter()
    forward(batch).numpy()
    teacher = time.perf_counter() - started
    step = seconds / steps
    return (f"teacher: about {teacher * 1000:.0f} ms of each {step * 1000:.0f} ms step ({min(teacher / step, 1):.0%}; "
            "its features of a step's views, timed once after training)")  # fmt: skip


def evaluate_frozen(encoder, train, test, folder=None, seed=0, tensorboard=False):
    """kNN and linear-probe accuracy of `encoder`'s frozen features; with a `folder`, the
    test embeddings' map (`embeddings.png`) and, with `tensorboard`, the projector's files."""

    k = min(200, len(train))
    frozen = evaluate_encoder(encoder, train, test, k=k)
    if folder is not None:
        features, test = readable_features(encoder, test)
        plot_embedding_map(features, test.labels, test.class_names, folder / "embeddings.png", seed=seed)
        if tensorboard:
            from kssl.outputs.tensorboard_logs import survived, write_projector

            with survived(folder / "logs" / "embeddings"):
                write_projector(folder / "logs" / "embeddings", features, test.labels, test.class_names, seed)
    return {"knn_accuracy": frozen["knn_accuracy"], "knn_k": k, "linear_probe_accuracy": frozen["linear_accuracy"]}


def few_shot(encoder, test, settings, seed, episodes=defaults.FEW_SHOT_EPISODES) -> list[dict]:
    """N-way K-shot accuracy of the test split's frozen features, both classifiers, printed."""
    from kssl.evaluation.features import readable_features

    features, test = readable_features(encoder, test)
    print(f"  few-shot on the {len(test)} test images ({episodes} episodes, 95% interval):")
    results = []
    for ways, shots in settings:
        for classifier in CLASSIFIERS:
            result = few_shot_accuracy(
                features, test.labels, ways, shots, episodes=episodes, classifier=classifier, seed=seed
            )
            results.append(result)
            print(
                f"    {ways}-way {shots}-shot, {classifier.replace('_', ' '):<12}  "
                f"{result['accuracy']:6.1%} +- {result['ci95']:.1%}  ({result['queries']} queries a class)"
            )
    return results


def check_few_shot(settings, labels):

    for ways, shots in settings:
        try:
            next(few_shot_episodes(labels, ways, shots, episodes=1))
        except ValueError as error:
            raise InputError(f"--few-shot {ways}x{shots} on the test split: {error}") from None

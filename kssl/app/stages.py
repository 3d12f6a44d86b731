"""What the jobs do inside their staging folder: pretrain, evaluate frozen features,
fine-tune every mode at every label budget, few-shot episodes."""

from __future__ import annotations

from kssl.app.config import mode_options_of
from kssl.app.report import budget_line
from kssl.methods import method_class


def _final_metrics(curve) -> dict:
    return {f"final_{name}": values[-1] for name, values in curve.logs.items() if values}


def pretrain_into(folder, config, strategy, train, verbose):
    from kssl.callbacks import StepHistory
    from kssl.data.preview import save_view_grid
    from kssl.encoders import build_encoder
    from kssl.plots import plot_training_curves
    from kssl.training import pretrain

    model_class = method_class(config.method)
    augmentation = model_class.view_augmentations(config.image_size, **config.method_options)
    save_view_grid(train, augmentation, folder / "augmentations.png", seed=config.seed)
    with strategy.scope():
        encoder = build_encoder(config.encoder, config.image_size, config.width, config.weights)
    checkpoints = folder / "checkpoints" / "pretrain"
    curve = StepHistory(path=checkpoints.with_name("pretrain-curve.json"))  # the whole run's, across resumes
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
        checkpoint_dir=checkpoints,
        checkpoint_every=config.checkpoint_every,
        callbacks=[curve],
        verbose=verbose,
    )
    encoder = model.encoder
    encoder.save(folder / "encoder.keras")
    title = f"{model_class.__name__} pretraining"
    plot_training_curves({"pretraining": (curve.steps, curve.logs)}, folder / "pretraining.png", title)
    return encoder, {"steps": int(model.optimizer.iterations.numpy()), **_final_metrics(curve)}


def evaluate_frozen(encoder, train, test, folder=None, seed=0):
    from kssl.evaluation import evaluate_encoder, extract_features
    from kssl.plots import plot_embedding_map

    k = min(200, len(train))
    frozen = evaluate_encoder(encoder, train, test, k=k)
    if folder is not None:
        features = extract_features(encoder, test)
        plot_embedding_map(features, test.labels, test.class_names, folder / "embeddings.png", seed=seed)
    return {"knn_accuracy": frozen["knn_accuracy"], "knn_k": k, "linear_probe_accuracy": frozen["linear_accuracy"]}


def _adversarial_training(config):
    from kssl.finetuning.adversarial import AdversarialTraining

    if config.adversarial == "none":
        return None
    return AdversarialTraining(config.adversarial, config.epsilon, config.attack_steps, seed=config.seed)


def finetune_into(folder, config, strategy, encoder, subsets, test, verbose):
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
        row = {"labeled_images": len(labeled), "per_class": labeled.class_counts(), "modes": {}}
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
                checkpoints = folder / "checkpoints" / f"finetune-{mode}-{name}-{len(labeled)}"
                curve = StepHistory(path=checkpoints.with_name(f"{checkpoints.name}-curve.json"))
                classifier, _ = finetune(
                    start,
                    labeled,
                    mode=mode,
                    mode_options=mode_options_of(config, mode),
                    stage_decay=config.stage_decay,
                    adversarial=adversarial,
                    epochs=config.finetune_epochs,
                    seed=config.seed,
                    strategy=strategy,
                    jit_compile=config.jit_compile,
                    checkpoint_dir=checkpoints,
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
            row["modes"][mode] = entry
            print(
                budget_line(len(labeled), mode, entry, config.epsilon if adversarial is not None else None), flush=True
            )
        best = max(row["modes"], key=lambda m: row["modes"][m]["pretrained_accuracy"])
        row.update(
            best_mode=best,
            pretrained_accuracy=row["modes"][best]["pretrained_accuracy"],
            scratch_accuracy=row["modes"][best]["scratch_accuracy"],
        )
        rows.append(row)
    kept.save(folder / "classifier.keras")
    plot_training_curves(curves, folder / "finetuning.png", "Fine-tuning")
    if len(rows) > 1 or len(config.modes) > 1:
        plot_label_efficiency(
            [r["labeled_images"] for r in rows],
            {
                mode: (
                    [r["modes"][mode]["pretrained_accuracy"] for r in rows],
                    [r["modes"][mode]["scratch_accuracy"] for r in rows],
                )
                for mode in config.modes
            },
            folder / "label_efficiency.png",
        )
    return rows, kept, exported


def few_shot(encoder, test, settings, seed, episodes=600) -> list[dict]:
    """N-way K-shot accuracy of the test split's frozen features, both classifiers, printed."""
    from kssl.evaluation import extract_features
    from kssl.few_shot import CLASSIFIERS, few_shot_accuracy

    features = extract_features(encoder, test)
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
    from kssl.errors import InputError
    from kssl.few_shot import few_shot_episodes

    for ways, shots in settings:
        try:
            next(few_shot_episodes(labels, ways, shots, episodes=1))
        except ValueError as error:
            raise InputError(f"--few-shot {ways}x{shots} on the test split: {error}") from None

"""Fine-tuning at every label budget, as `kssl run` and `kssl finetune` do it: every mode,
pretrained and from scratch, on several independent draws of each budget; the choices
(the best mode, the exported classifier) made on held-out **labeled** images, never on
the test split.

For each budget, each mode and each draw:
1. validation: the pretrained encoder fine-tuned on part of the draw's labels and
   scored on the rest (`kssl.data.subsets.validation_folds`: a fifth of each class held
   out, k-fold when a class has fewer than 5 labels, none with a single label);
2. test: the pretrained encoder and a fresh one fine-tuned on all the draw's labels and
   scored on the test split (the numbers reported, as means and 95% intervals).

The exported classifier is the mode with the best mean validation accuracy at the
largest budget, refit on all the labels of its first draw (step 2's model, so no extra
training). With nothing to validate on, it is the first of `--modes`, and the report
says so.
"""

from __future__ import annotations

import numpy as np

from kssl.app.config import mode_options_of
from kssl.app.report import budget_line, with_interval
from kssl.data.subsets import describe_validation, draw_seed, validation_folds
from kssl.statistics import mean_interval

STARTS = ("pretrained", "scratch")


def accuracy_on(model, batches) -> float:
    """`model`'s accuracy on labeled `batches` (validation or test)."""
    return float(model.evaluate(batches, return_dict=True, verbose=0)["accuracy"])


def _adversarial_training(config):
    from kssl.finetuning.adversarial import AdversarialTraining

    if config.adversarial == "none":
        return None
    return AdversarialTraining(config.adversarial, config.epsilon, config.attack_steps, seed=config.seed)


class _Finetuner:
    """Fine-tunes one start (a copy of the pretrained encoder, or a fresh one) on a labeled set."""

    def __init__(self, folder, config, strategy, encoder, verbose):
        self.folder, self.config, self.strategy, self.encoder, self.verbose = folder, config, strategy, encoder, verbose
        self.adversarial = _adversarial_training(config)

    def start(self, name):
        import keras

        from kssl.encoders import build_encoder
        from kssl.training import copy_model

        config = self.config
        with self.strategy.scope():
            if name == "pretrained":
                return copy_model(self.encoder)
            if config.encoder:
                return build_encoder(config.encoder, self.encoder.input_shape[1], config.width)
            return keras.models.clone_model(self.encoder)  # the same architecture, fresh weights

    def fit(self, name, mode, labeled, seed, tag, curve=None, verbose=None):
        """The classifier as it is deployed (LoRA merged), trained with checkpoints under `tag`."""
        from kssl.training import finetune

        config = self.config
        checkpoints = self.folder / "checkpoints" / tag
        classifier, _ = finetune(
            self.start(name),
            labeled,
            mode=mode,
            mode_options=mode_options_of(config, mode),
            stage_decay=config.stage_decay,
            adversarial=self.adversarial,
            epochs=config.finetune_epochs,
            seed=seed,
            strategy=self.strategy,
            jit_compile=config.jit_compile,
            checkpoint_dir=checkpoints,
            checkpoint_every=config.checkpoint_every,
            callbacks=[] if curve is None else [curve],
            verbose=self.verbose if verbose is None else verbose,
        )
        deployed = classifier.merged()
        if deployed is not classifier:  # LoRA: a plain copy, for evaluation, saving and serving
            deployed.compile()
        return classifier, deployed


def _validation_accuracy(finetuner, mode, labeled, seed, tag):
    """Mean accuracy on the held-out labels over `validation_folds`, or None when none can be held out."""
    from kssl.data.pipeline import labeled_batches

    folds = validation_folds(labeled.labels, seed) if finetuner.config.validation == "auto" else []
    accuracies = []
    for index, (fit, held_out) in enumerate(folds):
        _, model = finetuner.fit("pretrained", mode, labeled.subset(fit), seed, f"{tag}-fold{index}", verbose=0)
        accuracies.append(accuracy_on(model, labeled_batches(labeled.subset(held_out), 256)))
    return (float(np.mean(accuracies)) if accuracies else None), folds


def _summary(per_draw: list[dict], key: str) -> dict:
    values = [draw[key] for draw in per_draw if draw.get(key) is not None]
    if not values:
        return {key: None, key.replace("accuracy", "interval"): None}
    mean, low, high = mean_interval(values)
    return {key: mean, key.replace("accuracy", "interval"): None if low is None else [low, high]}


def chosen_mode(modes: dict) -> tuple[str, str]:
    """The mode with the best mean validation accuracy, and why; the first listed when no
    mode could be validated. The test accuracy plays no part.

    Example:
    >>> chosen_mode({"linear": {"validation_accuracy": 0.5}, "full": {"validation_accuracy": 0.7}})
    ('full', 'the best validation accuracy')
    >>> chosen_mode({"linear": {"validation_accuracy": None}, "full": {"validation_accuracy": None}})
    ('linear', 'the first of --modes: nothing could be validated')
    """
    if len(modes) == 1:
        return next(iter(modes)), "the only mode of --modes"
    validated = {mode: entry["validation_accuracy"] for mode, entry in modes.items()
                 if entry.get("validation_accuracy") is not None}  # fmt: skip
    if not validated:
        return next(iter(modes)), "the first of --modes: nothing could be validated"
    return max(validated, key=validated.get), "the best validation accuracy"


def _label_propagation(encoder, draws, unlabeled_features, test_features, test_labels) -> dict:
    """Label propagation's test accuracy from each draw's labels over the unlabeled pool
    (`kssl.evaluation.label_propagation_accuracy`): the mean, its interval and every draw."""
    from kssl.evaluation import extract_features, label_propagation_accuracy

    accuracies = [
        label_propagation_accuracy(
            extract_features(encoder, labeled), labeled.labels, unlabeled_features, test_features, test_labels
        )
        for labeled in draws
    ]
    mean, low, high = mean_interval(accuracies)
    return {"accuracy": mean, "interval": None if low is None else [low, high], "draws": accuracies}


def finetune_into(folder, config, strategy, encoder, budgets, test, verbose, unlabeled=None):
    """Fine-tunes every mode, pretrained and from scratch, on every draw of every label
    budget (`budgets`: per budget, its list of drawn labeled subsets); saves the chosen
    classifier, the curves and the plot; returns `(rows, that classifier, what was exported)`.

    With `unlabeled` (the pool of training images, labels unused), each budget also
    reports label propagation from its draws' labels over the pool on the pretrained
    encoder's frozen features: the cheap semi-supervised baseline."""
    from kssl.callbacks import StepHistory
    from kssl.data.pipeline import labeled_batches
    from kssl.evaluation import extract_features
    from kssl.finetuning.adversarial import evaluate_robustness
    from kssl.plots import plot_label_efficiency, plot_training_curves

    test_batches = labeled_batches(test, 256)
    finetuner = _Finetuner(folder, config, strategy, encoder, verbose)
    if unlabeled is not None:
        unlabeled_features, test_features = extract_features(encoder, unlabeled), extract_features(encoder, test)
    adversarial = finetuner.adversarial
    rows, curves, candidates = [], {}, {}
    for draws in budgets:
        size = len(draws[0])
        row = {"labeled_images": size, "per_class": draws[0].class_counts(), "draws": len(draws), "modes": {}}
        if unlabeled is not None:
            propagated = _label_propagation(encoder, draws, unlabeled_features, test_features, test.labels)
            row["label_propagation"] = {**propagated, "unlabeled_images": len(unlabeled), "k": 20}
            print(f"  {size} labels, label propagation over {len(unlabeled)} unlabeled images' frozen features: "
                  f"{with_interval(propagated['accuracy'], propagated['interval'])}", flush=True)  # fmt: skip
        for mode in config.modes:
            per_draw, counts = [], None
            for index, labeled in enumerate(draws):
                seed = draw_seed(config.seed, index)
                if len(draws) > 1:
                    print(f"  {size} labels, {mode}: draw {index + 1} of {len(draws)} (seed {seed})", flush=True)
                tag = f"finetune-{mode}-{{}}-{size}-draw{index}"
                result = {"seed": seed}
                result["validation_accuracy"], folds = _validation_accuracy(
                    finetuner, mode, labeled, seed, tag.format("validation")
                )
                for name in STARTS:
                    curve = StepHistory(path=folder / "checkpoints" / f"{tag.format(name)}-curve.json")
                    classifier, deployed = finetuner.fit(name, mode, labeled, seed, tag.format(name), curve)
                    result[f"{name}_accuracy"] = accuracy_on(deployed, test_batches)
                    if adversarial is not None:
                        robustness = evaluate_robustness(deployed, test, config.epsilon, steps=10, seed=config.seed)
                        result[f"{name}_robust_accuracy"] = robustness["robust_accuracy"]
                    if name == "pretrained":
                        counts = classifier.parameter_counts()
                        if index == 0 and draws is budgets[-1]:
                            candidates[mode] = (deployed, result)
                    if index == 0:
                        curves[f"{mode}, {name}, {size} labels"] = (curve.steps, {"loss": curve.logs.get("loss", [])})
                per_draw.append(result)
            entry = {}
            for key in ("validation_accuracy", *(f"{name}_accuracy" for name in STARTS)):
                entry.update(_summary(per_draw, key))
            if adversarial is not None:
                for name in STARTS:
                    entry[f"{name}_robust_accuracy"] = float(np.mean([d[f"{name}_robust_accuracy"] for d in per_draw]))
            validation = describe_validation(folds) if config.validation == "auto" else "off (--validation none)"
            entry.update(trainable_parameters=counts["trainable"], trainable_share=counts["share"],
                         validation=validation, draws=per_draw)  # fmt: skip
            row["modes"][mode] = entry
            print(budget_line(size, mode, entry, config.epsilon if adversarial is not None else None), flush=True)
        best, reason = chosen_mode(row["modes"])
        row.update(
            best_mode=best,
            chosen_by=reason,
            validation_accuracy=row["modes"][best]["validation_accuracy"],
            pretrained_accuracy=row["modes"][best]["pretrained_accuracy"],
            scratch_accuracy=row["modes"][best]["scratch_accuracy"],
        )
        rows.append(row)
    mode, reason = chosen_mode(rows[-1]["modes"])
    kept, result = candidates[mode]
    exported = {
        "mode": mode,
        "labeled_images": rows[-1]["labeled_images"],
        "draw_seed": result["seed"],
        "chosen_by": reason,
        "validation_accuracy": result["validation_accuracy"],
        "accuracy": result["pretrained_accuracy"],
    }
    kept.save(folder / "classifier.keras")
    plot_training_curves(curves, folder / "finetuning.png", "Fine-tuning")
    if len(rows) > 1 or len(config.modes) > 1 or rows[-1]["draws"] > 1:
        plot_label_efficiency(
            [r["labeled_images"] for r in rows],
            {
                mode: tuple(
                    [(r["modes"][mode][f"{name}_accuracy"], r["modes"][mode][f"{name}_interval"]) for r in rows]
                    for name in STARTS
                )
                for mode in config.modes
            },
            folder / "label_efficiency.png",
        )
    return rows, kept, exported

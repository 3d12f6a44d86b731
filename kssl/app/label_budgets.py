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

With `--semi-supervised`, each mode is also fine-tuned with the unlabeled pool, validated
and tested the same way (its teacher, for distillation, the plain classifier of the same
labels). When the run started from pretrained weights (`start`: the encoder before
kssl's pretraining), every mode is also fine-tuned from that start, validated and tested
the same way, so the report shows what adapting it to the data gave. The exported
classifier is the mode (plain, semi-supervised, or from the unadapted start) with the
best mean validation accuracy at the largest budget, refit on all the labels of its first
draw (step 2's model, so no extra training). With nothing to validate on, it is the first
of `--modes` (semi-supervised when asked for), and the report says so.
"""

from __future__ import annotations

import numpy as np

from kssl.app.choices import (
    FROM_START,
    PROPAGATION,
    STARTS,
    chosen_accuracy,
    chosen_classifier,
    chosen_entry,
    gain_over_scratch,
)
from kssl.app.config import mode_options_of, pretrained_start
from kssl.app.report import budget_line, with_interval
from kssl.app.run_stages import tensorboard_scalars
from kssl.data.pipeline import labeled_batches
from kssl.data.subsets import describe_validation, draw_seed, validation_folds
from kssl.encoders import build_encoder
from kssl.evaluation.features import label_propagation_accuracy, readable_features
from kssl.evaluation.statistics import mean_interval
from kssl.finetuning.adversarial import AdversarialTraining, evaluate_robustness
from kssl.outputs.plots import plot_label_efficiency, plot_training_curves
from kssl.semi_supervised.propagation import propagation_accuracy, propagation_head
from kssl.training import copy_model, finetune
from kssl.training.curves import StepHistory


def accuracy_on(model, batches) -> float:
    """`model`'s accuracy on labeled `batches` (validation or test)."""
    return float(model.evaluate(batches, return_dict=True, verbose=0)["accuracy"])


def _adversarial_training(config):

    if config.adversarial == "none":
        return None
    return AdversarialTraining(config.adversarial, config.epsilon, config.attack_steps, seed=config.seed)


class _Finetuner:
    """Fine-tunes one start (a copy of the pretrained encoder, or a fresh one) on a labeled set,
    plainly or, with `--semi-supervised`, with the unlabeled pool too."""

    def __init__(self, folder, config, strategy, encoder, verbose, unlabeled=None, start=None):
        self.folder, self.config, self.strategy, self.encoder, self.verbose = folder, config, strategy, encoder, verbose
        self.adversarial = _adversarial_training(config)
        self.unlabeled = unlabeled
        self.start_encoder = start  # the pretrained weights before kssl adapted them, or None

    @property
    def starts(self) -> tuple[str, ...]:
        """The starts fine-tuned at every draw: pretrained, from scratch, and the unadapted start if any."""
        return STARTS + ((FROM_START,) if self.start_encoder is not None else ())

    def start(self, name):
        import keras

        config = self.config
        with self.strategy.scope():
            if name == "pretrained":
                return copy_model(self.encoder)
            if name == FROM_START:
                return copy_model(self.start_encoder)
            if config.encoder and not pretrained_start(config):
                return build_encoder(config.encoder, self.encoder.input_shape[1], config.width)
            # The same architecture, fresh weights (a .keras or keras-hub start would bring its own).
            return keras.models.clone_model(self.encoder)

    def fit(self, name, mode, labeled, seed, tag, curve=None, verbose=None, semi_supervised=False, teacher=None,
            held_out=None):  # fmt: skip
        """`(classifier, deployed, curves)`: the classifier and the model as it is deployed
        (LoRA merged), trained with checkpoints under `tag`; with `semi_supervised`, on the
        unlabeled pool too (distillation's `teacher`: the plain fine-tuning's classifier).
        `curves` holds the points TensorBoard shows (under `logs/finetune/<tag>`): `training`,
        the `curve`'s (a semi-supervised fit always has one: its losses, mask rate and
        pseudo-label balance), and `validation`, the accuracy on the `held_out` images."""
        from kssl.training.curves import StepHistory, ValidationCurve

        config = self.config
        log_name = "finetune/" + tag.removeprefix("finetune-")
        semi, saved = {}, self.folder / "checkpoints" / tag
        if semi_supervised:
            semi = dict(semi_supervised=config.semi_supervised, unlabeled_set=self.unlabeled,
                        semi_supervised_options=config.semi_options, unlabeled_passes=config.semi_passes,
                        teacher=teacher)  # fmt: skip
            curve = curve or StepHistory(path=f"{saved}-curve.json")
        validation = None
        if held_out is not None:
            validation = ValidationCurve(labeled_batches(held_out, 256), path=f"{saved}-validation.json")
        sources = [source for source in (curve, validation) if source is not None]
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
            checkpoint_dir=saved,
            checkpoint_every=config.checkpoint_every,
            callbacks=[*sources, *tensorboard_scalars(config, self.folder, log_name, sources)] if sources else [],
            verbose=self.verbose if verbose is None else verbose,
            **semi,
        )
        deployed = classifier.merged()
        if deployed is not classifier:  # LoRA: a plain copy, for evaluation, saving and serving
            deployed.compile()
        curves = {}
        if curve is not None:
            curves["training"] = {"steps": curve.steps, **curve.logs}
        if validation is not None:
            curves["validation"] = {"steps": validation.steps, "accuracy": validation.curves["validation_accuracy"]}
        return classifier, deployed, curves


def _validation(finetuner, mode, labeled, seed, tag) -> tuple[dict, list]:
    """`({"validation_accuracy", "semi_supervised_validation_accuracy", "start_validation_accuracy",
    "validation_curves"}, folds)`: mean accuracies on the held-out labels over `validation_folds`
    (None when none can be held out); the semi-supervised one only with `--semi-supervised`
    (each fold's plain classifier its teacher), the start's only when the run has an unadapted
    start; `validation_curves`, per way of training, each fold's accuracy on its held-out
    labels as the fine-tuning went (`kssl.training.curves.ValidationCurve`)."""

    config = finetuner.config
    folds = validation_folds(labeled.labels, seed) if config.validation == "auto" else []
    plain, semi, start = [], [], []
    curves = {}
    for index, (fit, held_out) in enumerate(folds):
        part, held = labeled.subset(fit), labeled.subset(held_out)
        batches = labeled_batches(held, 256)
        _, model, curve = finetuner.fit("pretrained", mode, part, seed, f"{tag}-fold{index}", verbose=0, held_out=held)
        plain.append(accuracy_on(model, batches))
        curves.setdefault("supervised", []).append(curve["validation"])
        if finetuner.start_encoder is not None:
            _, unadapted, _ = finetuner.fit(FROM_START, mode, part, seed, f"{tag}-start-fold{index}", verbose=0)
            start.append(accuracy_on(unadapted, batches))
        if config.semi_supervised:
            _, student, curve = finetuner.fit("pretrained", mode, part, seed, f"{tag}-semi-fold{index}", verbose=0,
                                              semi_supervised=True, teacher=model, held_out=held)  # fmt: skip
            semi.append(accuracy_on(student, batches))
            curves.setdefault(config.semi_supervised, []).append(curve["validation"])
    mean = lambda values: float(np.mean(values)) if values else None  # noqa: E731
    scores = {"validation_accuracy": mean(plain), "validation_images": sum(len(held_out) for _, held_out in folds)}
    if config.semi_supervised:
        scores["semi_supervised_validation_accuracy"] = mean(semi)
    if finetuner.start_encoder is not None:
        scores["start_validation_accuracy"] = mean(start)
    if curves:
        scores["validation_curves"] = curves
    return scores, folds


def _summary(per_draw: list[dict], key: str) -> dict:
    values = [draw[key] for draw in per_draw if draw.get(key) is not None]
    if not values:
        return {key: None, key.replace("accuracy", "interval"): None}
    mean, low, high = mean_interval(values)
    return {key: mean, key.replace("accuracy", "interval"): None if low is None else [low, high]}


def readable_labeled(encoder, images):
    """`(features, labels)` of the images that could be read, row for row."""

    features, read = readable_features(encoder, images)
    return features, read.labels


def _label_propagation(encoder, draws, unlabeled_features, test_features, test_labels, config) -> tuple[dict, list]:
    """Label propagation from each draw's labels over the unlabeled pool's frozen features:
    the graph's own test accuracy (`kssl.evaluation.features.label_propagation_accuracy`), and under
    `classifier` the candidate it makes for export, a linear head fitted to the labeled and
    propagated images (`kssl.semi_supervised.propagation`): its test accuracy and its
    validation on the folds every mode is validated on (the fit part's labels propagated,
    the held-out images scored). `(record, each draw's head)`."""

    num_classes = draws[0].num_classes
    graph, head_accuracies, validations, images, heads = [], [], [], 0, []
    for index, labeled in enumerate(draws):
        features, labels = readable_labeled(encoder, labeled)
        graph.append(label_propagation_accuracy(features, labels, unlabeled_features, test_features, test_labels))
        heads.append(propagation_head(features, labels, unlabeled_features, num_classes))
        head_accuracies.append(propagation_accuracy(heads[-1], test_features, test_labels))
        folds = validation_folds(labels, draw_seed(config.seed, index)) if config.validation == "auto" else []
        scores = [propagation_accuracy(propagation_head(features[fit], labels[fit], unlabeled_features, num_classes),
                                       features[held_out], labels[held_out]) for fit, held_out in folds]  # fmt: skip
        if scores:
            validations.append(float(np.mean(scores)))
        images += sum(len(held_out) for _, held_out in folds)
    summary = lambda values: _summary([{"accuracy": value} for value in values], "accuracy")  # noqa: E731
    classifier = {**summary(head_accuracies), "draws": head_accuracies,
                  "validation_accuracy": float(np.mean(validations)) if validations else None,
                  "validation_images": images}  # fmt: skip
    return {**summary(graph), "draws": graph, "classifier": classifier}, heads


def _one_draw(finetuner, mode, labeled, index, test, test_batches, curves):
    """Validation, then every start on all of the draw's labels, scored on the test split:
    `(result, deployed models by how they were trained, the pretrained classifier's counts)`."""

    config, size = finetuner.config, len(labeled)
    seed = draw_seed(config.seed, index)
    tag = f"finetune-{mode}-{{}}-{size}-draw{index}"
    scores, folds = _validation(finetuner, mode, labeled, seed, tag.format("validation"))
    result, models = {"seed": seed, **scores}, {}
    for name in finetuner.starts:
        curve = StepHistory(path=finetuner.folder / "checkpoints" / f"{tag.format(name)}-curve.json")
        classifier, deployed, _ = finetuner.fit(name, mode, labeled, seed, tag.format(name), curve)
        result[f"{name}_accuracy"] = accuracy_on(deployed, test_batches)
        if finetuner.adversarial is not None:
            robustness = evaluate_robustness(deployed, test, config.epsilon, steps=10, seed=config.seed)
            result[f"{name}_robust_accuracy"] = robustness["robust_accuracy"]
        if name == "pretrained":
            counts, models["supervised"] = classifier.parameter_counts(), deployed
        if name == FROM_START:
            models[FROM_START] = deployed
        if index == 0:
            curves[f"{mode}, {name}, {size} labels"] = (curve.steps, {"loss": curve.logs.get("loss", [])})
    if config.semi_supervised:
        _, student, curves = finetuner.fit("pretrained", mode, labeled, seed, tag.format(config.semi_supervised),
                                           semi_supervised=True, teacher=models["supervised"])  # fmt: skip
        result["semi_supervised_accuracy"] = accuracy_on(student, test_batches)
        result["semi_supervised_training"] = curves["training"]
        models[config.semi_supervised] = student
    return result, models, counts, folds


def _mode_entry(config, per_draw, counts, folds, starts=STARTS) -> dict:
    """A mode's results at a budget: means and intervals over the draws, and every draw."""
    entry = {}
    for key in ("validation_accuracy", *(f"{name}_accuracy" for name in starts)):
        entry.update(_summary(per_draw, key))
    if FROM_START in starts:
        entry["start_validation_accuracy"] = _summary(per_draw, "start_validation_accuracy")[
            "start_validation_accuracy"
        ]
    if config.adversarial != "none":
        for name in STARTS:
            entry[f"{name}_robust_accuracy"] = float(np.mean([d[f"{name}_robust_accuracy"] for d in per_draw]))
    if config.semi_supervised:
        semi = {"method": config.semi_supervised, "options": config.semi_options}
        for key in ("semi_supervised_accuracy", "semi_supervised_validation_accuracy"):
            summary = _summary(per_draw, key)
            semi.update({k.replace("semi_supervised_", ""): v for k, v in summary.items()})
        for name in ("mask_rate", "pseudo_label_balance"):  # the last interval's, averaged over the draws
            ends = [draw["semi_supervised_training"][name][-1] for draw in per_draw
                    if draw.get("semi_supervised_training", {}).get(name)]  # fmt: skip
            if ends:
                semi[f"final_{name}"] = float(np.mean(ends))
        entry["semi_supervised"] = semi
    entry["validation_images"] = sum(draw.get("validation_images", 0) for draw in per_draw)
    validation = describe_validation(folds) if config.validation == "auto" else "off (--validation none)"
    entry.update(trainable_parameters=counts["trainable"], trainable_share=counts["share"], validation=validation,
                 draws=per_draw)  # fmt: skip
    return entry


def finetune_into(folder, config, strategy, encoder, budgets, test, verbose, unlabeled=None, start=None):
    """Fine-tunes every mode, pretrained and from scratch, on every draw of every label
    budget (`budgets`: per budget, its list of drawn labeled subsets); saves the chosen
    classifier, the curves and the plot; returns `(rows, that classifier, what was exported)`.
    With `start` (the pretrained weights `encoder` was adapted from), every mode is also
    fine-tuned from it, and its classifier is a candidate for export.

    With `unlabeled` (the pool of training images, labels unused), each budget also
    reports label propagation from its draws' labels over the pool on the pretrained
    encoder's frozen features (the cheap semi-supervised baseline), and with
    `config.semi_supervised` every mode is also fine-tuned with the pool."""

    test_batches = labeled_batches(test, 256)
    finetuner = _Finetuner(folder, config, strategy, encoder, verbose, unlabeled, start)
    if unlabeled is not None:
        unlabeled_features, _ = readable_features(encoder, unlabeled)
        test_features, test_labels = readable_labeled(encoder, test)
    rows, curves, candidates = [], {}, {}
    for draws in budgets:
        size = len(draws[0])
        row = {"labeled_images": size, "per_class": draws[0].class_counts(), "draws": len(draws), "modes": {}}
        if unlabeled is not None:
            propagated, heads = _label_propagation(encoder, draws, unlabeled_features, test_features, test_labels,
                                                   config)  # fmt: skip
            row["label_propagation"] = {**propagated, "unlabeled_images": len(unlabeled), "k": 20}
            head = propagated["classifier"]
            print(f"  {size} labels, label propagation over {len(unlabeled)} unlabeled images' frozen features: "
                  f"{with_interval(propagated['accuracy'], propagated['interval'])}; a linear head on the propagated "
                  f"labels {with_interval(head['accuracy'], head['interval'])} (validation "
                  f"{with_interval(head['validation_accuracy'], None)})", flush=True)  # fmt: skip
            if draws is budgets[-1]:
                result = {"seed": draw_seed(config.seed, 0), "accuracy": head["draws"][0],
                          "validation_accuracy": head["validation_accuracy"]}  # fmt: skip
                candidates[(PROPAGATION, PROPAGATION)] = (heads[0], result)
        for mode in config.modes:
            per_draw = []
            for index, labeled in enumerate(draws):
                if len(draws) > 1:
                    seed = draw_seed(config.seed, index)
                    print(f"  {size} labels, {mode}: draw {index + 1} of {len(draws)} (seed {seed})", flush=True)
                result, models, counts, folds = _one_draw(finetuner, mode, labeled, index, test, test_batches, curves)
                per_draw.append(result)
                if index == 0 and draws is budgets[-1]:
                    candidates.update({(mode, how): (model, result) for how, model in models.items()})
            row["modes"][mode] = _mode_entry(config, per_draw, counts, folds, finetuner.starts)
            epsilon = config.epsilon if config.adversarial != "none" else None
            print(budget_line(size, mode, row["modes"][mode], epsilon), flush=True)
        best, how, reason = chosen_classifier(row["modes"], row.get("label_propagation", {}).get("classifier"))
        entry = chosen_entry(row, best)
        row.update(best_mode=best, best_training=how, chosen_by=reason,
                   validation_accuracy=chosen_accuracy(entry, how, "validation_accuracy"),
                   pretrained_accuracy=entry.get("pretrained_accuracy", entry.get("accuracy")),
                   scratch_accuracy=entry.get("scratch_accuracy"))  # fmt: skip
        over_scratch = gain_over_scratch(row)
        if over_scratch:
            row["over_scratch"] = over_scratch
        rows.append(row)
    mode, how = rows[-1]["best_mode"], rows[-1]["best_training"]
    kept, result = candidates[(mode, how)]
    if how == PROPAGATION:  # built now from the first draw's head: a linear classifier on a copy of the encoder
        from kssl.semi_supervised.propagation import propagation_classifier

        with strategy.scope():
            kept = propagation_classifier(finetuner.start("pretrained"), kept, test.num_classes, test.class_names)
    prefix = {"supervised": "", FROM_START: "start_", PROPAGATION: ""}.get(how, "semi_supervised_")
    accuracy_key = {"supervised": "pretrained_accuracy", PROPAGATION: "accuracy"}.get(how, f"{prefix}accuracy")
    exported = {
        "mode": mode,
        "training": how,
        "labeled_images": rows[-1]["labeled_images"],
        "draw_seed": result["seed"],
        "chosen_by": rows[-1]["chosen_by"],
        "validation_accuracy": result[f"{prefix}validation_accuracy"],
        "accuracy": result[accuracy_key],
    }
    kept.save(folder / "classifier.keras")
    plot_training_curves(curves, folder / "finetuning.png", "Fine-tuning")
    if len(rows) > 1 or len(config.modes) > 1 or rows[-1]["draws"] > 1:
        lines = {
            mode: tuple(
                [(r["modes"][mode][f"{name}_accuracy"], r["modes"][mode][f"{name}_interval"]) for r in rows]
                for name in STARTS
            )
            + ((f"{mode}, adapted",) if start is not None else ())
            for mode in config.modes
        }
        if start is not None:  # the unadapted start: a line of its own per mode
            for mode in config.modes:
                start_line = [(r["modes"][mode]["start_accuracy"], r["modes"][mode]["start_interval"]) for r in rows]
                lines[f"{mode}/start"] = (start_line, None, f"{mode}, the unadapted start")
        if config.semi_supervised:  # a line of its own per mode, without a from-scratch twin
            for mode in config.modes:
                semi_line = [(r["modes"][mode]["semi_supervised"]["accuracy"],
                              r["modes"][mode]["semi_supervised"]["interval"]) for r in rows]  # fmt: skip
                lines[f"{mode} + {config.semi_supervised}"] = (semi_line, None)
        plot_label_efficiency([r["labeled_images"] for r in rows], lines, folder / "label_efficiency.png")
    return rows, kept, exported

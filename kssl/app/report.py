"""What the jobs print: the results table and one line per fine-tuned mode."""

from __future__ import annotations


def results_table(metrics: dict, out=None) -> str:
    """The table `kssl run` and `kssl finetune` print at the end: accuracy per label
    budget and fine-tuning mode, pretrained vs. from scratch, and what each mode trains."""
    lines = [
        f"\nTest accuracy on {metrics['test_images']} images of {metrics['data']} (validation: on held-out "
        "labeled images, what the choices are made on):"
    ]
    if "knn_accuracy" in metrics:
        knn = f"kNN (k={metrics.get('knn_k', 200)})"  # k is at most the training images
        lines += [
            f"  frozen features of the {metrics['method']} encoder, all {metrics['train_images']} train labels:",
            f"    {knn:<30}{metrics['knn_accuracy']:6.1%}",
            f"    linear probe                  {metrics['linear_probe_accuracy']:6.1%}",
        ]
        start = metrics.get("start")
        if start:
            lines += [
                f"  frozen features of the start as it came ({start['encoder']}), unadapted:",
                f"    {knn:<30}{start['knn_accuracy']:6.1%}",
                f"    linear probe                  {start['linear_probe_accuracy']:6.1%}",
            ]
    adversarial = metrics.get("adversarial", "none") != "none"
    selection = metrics.get("label_selection", "stratified random draw")
    if selection != "stratified random draw":
        lines.append(f"  labeled images picked by {selection} on the pretrained encoder's features (--select)")
    with_start = any("start_accuracy" in entry for row in metrics["label_budgets"] for entry in row["modes"].values())
    header = "  labels  mode       validation  fine-tuned       from scratch       gain   trains"
    if with_start:
        header += "          unadapted start (validation)"
    if adversarial:
        header += "    PGD-10 (pretrained / scratch)"
    lines.append(header)
    notes = []
    for row in metrics["label_budgets"]:
        for mode, entry in row["modes"].items():
            gain = entry["pretrained_accuracy"] - entry["scratch_accuracy"]
            line = (
                f"  {row['labeled_images']:>6}  {mode:<9}  {_percent(entry.get('validation_accuracy')):>10}  "
                f"{_with_interval(entry, 'pretrained'):<15}  {_with_interval(entry, 'scratch'):<15}  {gain:>+6.1%}  "
                f"{entry['trainable_share']:>6.1%} ({entry['trainable_parameters']:,})"
            )
            if with_start:
                start_validation = _percent(entry.get("start_validation_accuracy"))
                line = f"{line:<100}{_with_interval(entry, 'start'):<15} ({start_validation})"
            if adversarial:
                line += f"  {entry['pretrained_robust_accuracy']:.1%} / {entry['scratch_robust_accuracy']:.1%}"
            lines.append(line)
            semi = entry.get("semi_supervised")
            if semi:  # the same mode and labels, with the unlabeled images too
                name = f"+{semi['method']}"
                lines.append(
                    f"  {'':>6}  {name:<9}  {_percent(semi['validation_accuracy']):>10}  "
                    f"{with_interval(semi['accuracy'], semi['interval']):<15}  {'':<15}  "
                    f"{semi['accuracy'] - entry['pretrained_accuracy']:>+6.1%}  (over plain {mode} fine-tuning)"
                )
            note = _draws_note(row, entry)
            if note not in notes:
                notes.append(note)
    lines += [f"  {note}" for note in notes]
    for row in metrics["label_budgets"]:
        over = row.get("over_scratch")
        if over and len(row["modes"]) > 1:  # with `full` alone, its own row says it
            trained = "" if over["training"] in ("supervised", "propagation") else f"+{over['training']} "
            lines.append(
                f"  {row['labeled_images']} labels, pretraining's gain: the chosen {over['mode']} {trained}classifier "
                f"{over['accuracy']:.1%} against the whole network trained from scratch ({over['scratch_mode']}) "
                f"{over['scratch_accuracy']:.1%}: {over['gain']:+.1%}"
            )
    for row in metrics["label_budgets"]:
        propagated = row.get("label_propagation")
        if propagated:
            head = propagated.get("classifier")
            as_classifier = (
                f"; as a classifier (a linear head on the labeled and propagated images) "
                f"{with_interval(head['accuracy'], head['interval'])}, "
                f"validation {_percent(head['validation_accuracy'])}"
                if head
                else ""
            )
            lines.append(
                f"  {row['labeled_images']} labels, label propagation on frozen features (a {propagated['k']}-NN graph "
                f"over {propagated['unlabeled_images']} unlabeled images, no training): "
                f"{with_interval(propagated['accuracy'], propagated['interval'])}{as_classifier}"
            )
    exported = metrics.get("exported")
    if exported:
        if "chosen_by" in exported:
            how = exported.get("training", "supervised")
            trained = "" if how in ("supervised", "start", "propagation") else f"+{how} "
            source = {
                "start": " (fine-tuned from the unadapted start)",
                "propagation": " (a linear head on the frozen encoder, fitted to the labels spread over the unlabeled "
                "images)",
            }.get(how, "")
            lines.append(
                f"  saved: the {exported['mode']} {trained}classifier{source} at {exported['labeled_images']} labels "
                f"({exported['chosen_by']}; nothing is chosen on the test split), trained on all the labels of the "
                f"draw seeded {exported['draw_seed']}: {exported['accuracy']:.1%} on the test split"
            )
        else:  # a metrics.json of kssl before draws and validation
            lines.append(f"  saved: the {exported['mode']} classifier at {exported['labeled_images']} labels")
    if metrics.get("adaptation"):
        lines.append(f"  {metrics['adaptation']['line']}")
    if out is not None:
        seconds = f" ({metrics['seconds']:.0f}s)" if "seconds" in metrics else ""
        lines.append(f"Artifacts in {out}/{seconds}")
    return "\n".join(lines)


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def with_interval(accuracy, interval) -> str:
    """`92.2% +-2.1%`: a mean accuracy and the half-width of its 95% interval (none: one draw).

    Examples:
        >>> with_interval(0.922, [0.901, 0.943]), with_interval(0.5, None)
        ('92.2% +-2.1%', '50.0%')
    """
    text = _percent(accuracy)
    return text if interval is None else f"{text} +-{(interval[1] - interval[0]) / 2:.1%}"


def _with_interval(entry: dict, name: str) -> str:
    return with_interval(entry[f"{name}_accuracy"], entry.get(f"{name}_interval"))


def _draws_note(row: dict, entry: dict) -> str:
    draws = row.get("draws", 1)
    seeds = [draw["seed"] for draw in entry.get("draws", [])]
    counted = (
        f"means over {draws} draws of the labeled images (seeds {seeds[0]}-{seeds[-1]}), +- the half-width of "
        "their 95% interval"
        if draws > 1 and seeds
        else "one draw of the labeled images (--draws for more)"
    )
    return f"{row['labeled_images']} labels: {counted}; validation: {entry.get('validation', 'none')}"


def _pseudo_labels(semi: dict) -> str:
    """`, pseudo-labels kept 31% (balance 0.95)`: how the pseudo-labels stood at the end, if logged."""
    if "final_mask_rate" not in semi:
        return ""
    balance = f" (balance {semi['final_pseudo_label_balance']:.2f})" if "final_pseudo_label_balance" in semi else ""
    return f", pseudo-labels kept {semi['final_mask_rate']:.0%}{balance}"


def budget_line(labeled_images: int, mode: str, entry: dict, epsilon: float | None = None) -> str:
    """The line printed when a mode is fine-tuned at a label budget (PGD-10 accuracy with `epsilon`)."""
    robust = (
        f" (PGD-10 at epsilon {epsilon:.4f}: {entry['pretrained_robust_accuracy']:.1%} / "
        f"{entry['scratch_robust_accuracy']:.1%})"
        if epsilon is not None
        else ""
    )
    draws = len(entry.get("draws", [])) or 1
    counted = f" (means of {draws} draws, +- 95% interval)" if draws > 1 else ""
    semi = entry.get("semi_supervised")
    semi = (
        f"; +{semi['method']} {with_interval(semi['accuracy'], semi['interval'])} "
        f"(validation {_percent(semi['validation_accuracy'])}{_pseudo_labels(semi)})"
        if semi
        else ""
    )
    return (
        f"  {labeled_images} labels, {mode}: fine-tuned {_with_interval(entry, 'pretrained')}, "
        f"from scratch {_with_interval(entry, 'scratch')}, validation {_percent(entry.get('validation_accuracy'))}"
        f"{semi}{counted}{robust}"
    )

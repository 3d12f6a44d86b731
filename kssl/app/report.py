"""What the jobs print: the results table and one line per fine-tuned mode."""

from __future__ import annotations


def results_table(metrics: dict, out=None) -> str:
    """The table `kssl run` and `kssl finetune` print at the end: accuracy per label
    budget and fine-tuning mode, pretrained vs. from scratch, and what each mode trains."""
    lines = [f"\nTest accuracy on {metrics['test_images']} images of {metrics['data']}:"]
    if "knn_accuracy" in metrics:
        knn = f"kNN (k={metrics.get('knn_k', 200)})"  # k is at most the training images
        lines += [
            f"  frozen features of the {metrics['method']} encoder, all {metrics['train_images']} train labels:",
            f"    {knn:<30}{metrics['knn_accuracy']:6.1%}",
            f"    linear probe                  {metrics['linear_probe_accuracy']:6.1%}",
        ]
    adversarial = metrics.get("adversarial", "none") != "none"
    selection = metrics.get("label_selection", "stratified random draw")
    if selection != "stratified random draw":
        lines.append(f"  labeled images picked by {selection} on the pretrained encoder's features (--select)")
    header = "  labels  mode      fine-tuned  from scratch    gain   trains"
    if adversarial:
        header += "    PGD-10 (pretrained / scratch)"
    lines.append(header)
    for row in metrics["label_budgets"]:
        for mode, entry in row["modes"].items():
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


def budget_line(labeled_images: int, mode: str, entry: dict, epsilon: float | None = None) -> str:
    """The line printed when a mode is fine-tuned at a label budget (PGD-10 accuracy with `epsilon`)."""
    robust = (
        f" (PGD-10 at epsilon {epsilon:.4f}: {entry['pretrained_robust_accuracy']:.1%} / "
        f"{entry['scratch_robust_accuracy']:.1%})"
        if epsilon is not None
        else ""
    )
    return (
        f"  {labeled_images} labels, {mode}: fine-tuned {entry['pretrained_accuracy']:.1%}, "
        f"from scratch {entry['scratch_accuracy']:.1%}{robust}"
    )

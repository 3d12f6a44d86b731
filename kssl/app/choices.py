"""What a fine-tuning run chooses and reports from its draws: the classifier to export
(the one-standard-error rule on held-out labels, `chosen_classifier`), the pretrained
encoder's gain over scratch, and whether adapting a pretrained start paid."""

from __future__ import annotations

from kssl.evaluation.statistics import accuracy_standard_error

STARTS = ("pretrained", "scratch")


# `how` a candidate classifier was trained: plain fine-tuning of the pretrained (adapted)
# encoder is "supervised", with the unlabeled pool the semi-supervised method's name, and
# plain fine-tuning of the unadapted start this.
FROM_START = "start"


# The label-propagation classifier (`kssl.semi_supervised.propagation`), a candidate of its own:
# its "mode" and its "how".
PROPAGATION = "propagation"


def chosen_classifier(modes: dict, propagation: dict | None = None) -> tuple[str, str, str]:
    """`(mode, how, why)`: the classifier kept at a budget, by Breiman's one-standard-error
    rule on the held-out labels. The default is the first of `--modes`, semi-supervised when
    a method was asked for; another candidate (every mode, plain `how="supervised"`,
    semi-supervised `how` the method, from the unadapted start `how="start"`) replaces it
    only when its mean validation accuracy is higher by more than the validation's standard
    error (`kssl.evaluation.statistics.accuracy_standard_error` of the best, on the entry's
    `validation_images` held-out predictions): on a few held-out photos a few points are
    noise. `propagation` (label propagation's `classifier` record) is one more candidate,
    `("propagation", "propagation")`. With nothing validated, the default. The test accuracy
    plays no part.

    Examples:
        >>> chosen_classifier({"linear": {"validation_accuracy": 0.5, "validation_images": 100},
        ...                    "full": {"validation_accuracy": 0.7, "validation_images": 100}})[:2]
        ('full', 'supervised')
        >>> chosen_classifier({"full": {"validation_accuracy": 0.7, "validation_images": 10,
        ...                             "semi_supervised": {"method": "fixmatch", "validation_accuracy": 0.6}}})
        ('full', 'fixmatch', 'the default (full +fixmatch): full validated +10.0 points, within the standard error of 14.9 points (10 held-out images)')
        >>> chosen_classifier({"linear": {"validation_accuracy": None}, "full": {"validation_accuracy": None}})
        ('linear', 'supervised', 'the first of --modes: nothing could be validated')
        >>> chosen_classifier({"full": {"validation_accuracy": 0.6, "start_validation_accuracy": 0.9,
        ...                             "validation_images": 50}})[2]
        'the best validation accuracy: +30.0 points over the default (full), more than the standard error of 4.5 points (50 held-out images)'
    """  # noqa: E501
    candidates, images = {}, {}
    for mode, entry in modes.items():
        semi = entry.get("semi_supervised")
        if semi:  # listed first: what was asked for is the default
            candidates[(mode, semi["method"])] = semi["validation_accuracy"]
        candidates[(mode, "supervised")] = entry.get("validation_accuracy")
        if "start_validation_accuracy" in entry:
            candidates[(mode, FROM_START)] = entry["start_validation_accuracy"]
        images.update({key: entry.get("validation_images") or 0 for key in candidates if key[0] == mode})
    if propagation is not None:
        candidates[(PROPAGATION, PROPAGATION)] = propagation["validation_accuracy"]
        images[(PROPAGATION, PROPAGATION)] = propagation.get("validation_images") or 0
    default = next(iter(candidates))
    if len(candidates) == 1:
        return (*default, "the only mode of --modes")
    validated = {key: value for key, value in candidates.items() if value is not None}
    if not validated:
        return (*default, "the first of --modes: nothing could be validated")
    best = max(validated, key=validated.get)
    name = lambda key: key[0] if key[1] in ("supervised", PROPAGATION) else f"{key[0]} +{key[1]}"  # noqa: E731
    if default not in validated:  # cannot happen with folds shared by every candidate; kept for old metrics
        return (*best, "the best validation accuracy")
    margin = validated[best] - validated[default]
    if best == default or margin <= 0:
        return (*default, "the default and the best validation accuracy")
    held_out = images[best]
    error = accuracy_standard_error(validated[best], held_out) if held_out else 0.0
    error_text = f"the standard error of {error * 100:.1f} points" + (
        f" ({held_out} held-out images)" if held_out else ""
    )
    if margin > error:
        return (*best, f"the best validation accuracy: {margin * 100:+.1f} points over the default ({name(default)}), "
                       f"more than {error_text}")  # fmt: skip
    return (*default, f"the default ({name(default)}): {name(best)} validated {margin * 100:+.1f} points, within "
                      f"{error_text}")  # fmt: skip


def gain_over_scratch(row: dict) -> dict | None:
    """What pretraining buys at a budget: the chosen classifier's mean test accuracy against
    the whole network fine-tuned from scratch on the same draws (`full`, the baseline a user
    has without kssl), or None when `full` was not among the modes. The table's own `gain`
    column compares each mode with itself from scratch, so a linear probe on a random encoder
    is its baseline there; this one is comparable across modes.

    Examples:
        >>> row = {"best_mode": "linear", "best_training": "supervised", "modes": {
        ...     "linear": {"pretrained_accuracy": 0.64, "scratch_accuracy": 0.35},
        ...     "full": {"pretrained_accuracy": 0.62, "scratch_accuracy": 0.475}}}
        >>> result = gain_over_scratch(row)
        >>> result["mode"], result["scratch_mode"], round(result["gain"], 3)
        ('linear', 'full', 0.165)
    """
    if "full" not in row["modes"]:
        return None
    entry, training = chosen_entry(row, row["best_mode"]), row.get("best_training", "supervised")
    accuracy = chosen_accuracy(entry, training)
    scratch = row["modes"]["full"]["scratch_accuracy"]
    return {
        "mode": row["best_mode"],
        "training": training,
        "accuracy": accuracy,
        "scratch_mode": "full",
        "scratch_accuracy": scratch,
        "gain": accuracy - scratch,
    }


def chosen_entry(row: dict, mode: str) -> dict:
    """The results of `mode` at a budget's `row`: its mode entry, or label propagation's classifier."""
    return row["label_propagation"]["classifier"] if mode == PROPAGATION else row["modes"][mode]


def chosen_accuracy(entry: dict, how: str, key: str = "accuracy"):
    """A mode entry's mean test (or, with `key="validation_accuracy"`, validation) accuracy of
    the classifier trained `how` ("supervised", "start", "propagation" or a semi-supervised
    method)."""
    if how == PROPAGATION:
        return entry[key]
    if how == "supervised":
        return entry["validation_accuracy" if key == "validation_accuracy" else "pretrained_accuracy"]
    if how == FROM_START:
        return entry[f"start_{key}"]
    return entry["semi_supervised"][key]


def adaptation_paid(frozen: dict, start: dict, rows: list) -> dict:
    """What adapting the pretrained start to the data gave: the frozen features' kNN and
    linear-probe gains, and at the largest budget the chosen mode fine-tuned from the
    adapted encoder against the same mode from the start (test means over the same draws),
    with one line for the report. It paid when the fine-tuned gain is positive and larger
    than the larger half-width of the two intervals; within that spread it "made no clear
    difference"; otherwise it did not pay.

    Examples:
        >>> rows = [{"labeled_images": 50, "best_mode": "full", "modes": {"full": {
        ...     "pretrained_accuracy": 0.80, "pretrained_interval": [0.78, 0.82],
        ...     "start_accuracy": 0.75, "start_interval": [0.74, 0.76]}}}]
        >>> result = adaptation_paid({"knn_accuracy": 0.7, "linear_probe_accuracy": 0.8},
        ...                          {"knn_accuracy": 0.72, "linear_probe_accuracy": 0.79}, rows)
        >>> result["paid"], round(result["finetuned_gain"], 3)
        (True, 0.05)
        >>> result["line"].split("; ")  # doctest: +NORMALIZE_WHITESPACE
        ['adaptation paid on this data: fine-tuned (full, 50 labels) +5.0 points over the unadapted start',
         'frozen kNN -2.0, linear probe +1.0']
        >>> rows[0]["modes"]["full"]["start_accuracy"] = 0.79  # 1 point: within the draws' +-2
        >>> adaptation_paid({"knn_accuracy": 0.7, "linear_probe_accuracy": 0.8},
        ...                 {"knn_accuracy": 0.72, "linear_probe_accuracy": 0.79}, rows)["line"].split(":")[0]
        'adaptation made no clear difference on this data'
    """
    row = rows[-1]
    mode = row["best_mode"] if row["best_mode"] in row["modes"] else next(iter(row["modes"]))
    entry = row["modes"][mode]
    gain = entry["pretrained_accuracy"] - entry["start_accuracy"]
    half = lambda interval: 0.0 if interval is None else (interval[1] - interval[0]) / 2  # noqa: E731
    noise = max(half(entry.get("pretrained_interval")), half(entry.get("start_interval")))
    knn = frozen["knn_accuracy"] - start["knn_accuracy"]
    linear = frozen["linear_probe_accuracy"] - start["linear_probe_accuracy"]
    within = abs(gain) < noise
    paid = gain > 0 and not within
    verdict = "made no clear difference" if within else "paid" if paid else "did not pay"
    spread = " (within the draws' spread)" if within else ""
    line = (f"adaptation {verdict} on this data: fine-tuned ({mode}, {row['labeled_images']} labels) "
            f"{gain * 100:+.1f} points over the unadapted start{spread}; frozen kNN {knn * 100:+.1f}, "
            f"linear probe {linear * 100:+.1f}")  # fmt: skip
    return {"paid": paid, "mode": mode, "labeled_images": row["labeled_images"], "finetuned_gain": gain,
            "within_spread": within, "knn_gain": knn, "linear_probe_gain": linear, "line": line}  # fmt: skip

"""The results table: what `kssl run` and `kssl finetune` print at the end."""

from kssl.app.choices import gain_over_scratch
from kssl.app.report import results_table


def budget_row(best_mode):
    row = {
        "labeled_images": 50,
        "per_class": [10] * 5,
        "draws": 5,
        "best_mode": best_mode,
        "best_training": "supervised",
        "modes": {
            mode: {
                "pretrained_accuracy": pretrained,
                "scratch_accuracy": scratch,
                "validation_accuracy": 0.5,
                "trainable_share": 0.1,
                "trainable_parameters": 100,
                "pretrained_interval": None,
                "scratch_interval": None,
                "draws": [],
            }  # fmt: skip
            for mode, pretrained, scratch in (("linear", 0.642, 0.346), ("full", 0.624, 0.475))
        },
    }
    row["over_scratch"] = gain_over_scratch(row)
    return row


def test_pretrainings_gain_is_against_the_whole_network_from_scratch_whatever_mode_is_chosen():
    metrics = {"test_images": 736, "data": "flowers", "label_budgets": [budget_row("linear")]}
    table = results_table(metrics)
    # The linear row's own column compares with a linear probe on a random encoder (+29.6);
    # the gain a user would get over training without kssl is against `full` from scratch.
    assert "+29.6%" in table
    assert "50 labels, pretraining's gain: the chosen linear classifier 64.2% against the whole network " in table
    assert "trained from scratch (full) 47.5%: +16.7%" in table


def test_without_full_among_the_modes_no_gain_over_scratch_is_claimed():
    row = budget_row("linear")
    del row["modes"]["full"]
    assert gain_over_scratch(row) is None
    row.pop("over_scratch")
    table = results_table({"test_images": 736, "data": "flowers", "label_budgets": [row]})
    assert "pretraining's gain" not in table


def test_the_results_table_names_the_k_that_knn_used():
    from kssl.app.report import results_table

    metrics = {"test_images": 10, "data": "photos", "method": "SimCLR", "train_images": 28, "knn_accuracy": 0.5,
               "knn_k": 28, "linear_probe_accuracy": 0.6, "label_budgets": []}  # fmt: skip
    table = results_table(metrics)
    assert "kNN (k=28)" in table and "k=200" not in table
    knn, probe = [line for line in table.splitlines() if "kNN" in line or "linear probe" in line]
    assert knn.index("50.0%") == probe.index("60.0%")  # the columns still line up

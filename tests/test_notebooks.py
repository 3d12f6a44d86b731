"""The notebooks run top to bottom, at tiny scale, in a fresh kernel."""

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TINY = {
    "image_size": 8,
    "width": 0.125,
    "encoder_name": "conv4",
    "adapted_modes": {"lora": {"rank": 2}},
    "batch_size": 64,
    "steps": 3,
    "epochs": 1,
    "pretrain_epochs": 1,
    "labels": 3,
}


def test_notebooks_exist_and_are_committed_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01_pretraining.ipynb", "02_finetuning.ipynb", "03_export_and_serving.ipynb"]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in cells if c["cell_type"] == "code")


def test_the_notebooks_run_top_to_bottom_in_order_in_one_kernel(tmp_path, monkeypatch):
    # As a user works through them: 01 saves the encoder that 02 fine-tunes and 03 serves
    # a classifier. One kernel (one TensorFlow start-up) and one path through each loop
    # (conv4, one adapted mode) keep it within the suite's budget.
    import nbformat
    from nbclient import NotebookClient

    overrides = {**TINY, "out_dir": str(tmp_path), "encoder_path": str(tmp_path / "encoder.keras")}
    overrides["export_dir"] = str(tmp_path / "serving" / "kssl" / "1")
    combined = nbformat.v4.new_notebook()
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
        names = [line.split(" = ")[0] for line in notebook.cells[index].source.splitlines() if " = " in line]
        assert "encoder_name" in names, path.name  # every notebook names its encoder in its parameters
        source = "\n".join(f"{name} = {value!r}" for name, value in overrides.items() if name in names)
        notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
        combined.cells.extend(c for c in notebook.cells if c.cell_type == "code")
    for number, cell in enumerate(combined.cells):
        cell["id"] = f"cell-{number}"  # nbformat 4.5 wants ids; the notebooks are 4.4
    combined.cells.append(nbformat.v4.new_code_cell(
        "import json, numpy as np\n"
        "recount = {k: float(np.mean(np.argmax(c.predict(test_batches, verbose=0), -1) == test.labels)) "
        "for k, c in classifiers.items()}\n"
        "print(json.dumps({'results': {k: float(v) for k, v in results.items()}, 'recount': recount, "
        "'tested': len(test), 'rows': [(m, float(a), float(s)) for m, a, s in rows], "
        "'signatures': sorted(served.signatures)}))"
    ))  # fmt: skip
    # The kernel logs as a user's does: without the suite's quieter level, and forwarding what
    # reaches its file descriptors to the notebook (ipykernel does not under pytest).
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    NotebookClient(
        combined, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = json.loads(combined.cells[-1].outputs[0]["text"])
    assert set(printed["results"]) == {"linear probe", "fine-tuned", "from scratch"}
    # The notebook's accuracies are its classifiers' right answers on the whole test split.
    for name, accuracy in printed["results"].items():
        assert accuracy == pytest.approx(printed["recount"][name], abs=1e-6), name
        assert round(accuracy * printed["tested"], 3).is_integer()
    assert [m for m, _, _ in printed["rows"]] == ["lora"] and 0 < printed["rows"][0][2] < 0.5  # LoRA trains a part
    assert {"serving_default", "predict_bytes", "embed"} <= set(printed["signatures"])
    assert (tmp_path / "encoder.keras").is_file() and (tmp_path / "augmentations.png").is_file()
    # What a reader sees (and the docs site shows): no TensorFlow C++ log line in any output.
    from kssl.runtime.quiet import is_native_log_line

    shown = [line for cell in combined.cells for output in cell.get("outputs", [])
             for line in str(output.get("text", "")).splitlines()]  # fmt: skip
    assert shown and not [line for line in shown if is_native_log_line(line)], shown[:5]

"""The notebooks run top to bottom, at tiny scale, in a fresh kernel."""

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TINY = {
    "image_size": 8,
    "width": 0.125,
    "batch_size": 64,
    "steps": 3,
    "epochs": 2,
    "pretrain_epochs": 1,
    "labels": 3,
}


def test_notebooks_exist_and_are_committed_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01_pretraining.ipynb", "02_finetuning.ipynb", "03_export_and_serving.ipynb"]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in cells if c["cell_type"] == "code")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    overrides = {**TINY, "out_dir": str(tmp_path), "encoder_path": str(tmp_path / "encoder.keras")}
    overrides["export_dir"] = str(tmp_path / "serving" / "kssl" / "1")
    source = "\n".join(f"{name} = {value!r}" for name, value in overrides.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

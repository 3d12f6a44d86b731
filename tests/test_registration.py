"""`import kssl` imports no TensorFlow, yet kssl's .keras files load after it."""

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "tensorflow_datasets", "keras_cv", "tensorboard", "pyarrow", "tf2onnx", "onnxruntime")


def modules_after(code):
    probe = f"import sys\n{code}\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_import_kssl_imports_no_tensorflow():
    assert modules_after("import kssl") == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["pretrain", "--help"],
        ["export", "--help"],
        ["embed", "--help"],
        ["similar", "--help"],
        ["data-service", "dispatcher", "--help"],
    ],
)
def test_the_command_line_parser_imports_no_tensorflow(argv):
    parse = f"build_parser().parse_args({argv!r})"
    code = f"from kssl.app.cli import build_parser\ntry:\n    {parse}\nexcept SystemExit:\n    pass"
    assert modules_after(code) == "[]"


# That Keras knows kssl's classes whichever of the two is imported first is checked in
# the fresh processes of tests/runtime/test_cpu.py (one per import order).


def test_keras_first_imported_halfway_through_a_kssl_import_still_registers_kssls_classes():
    # `import kssl.app.doctor` first brings Keras in from inside `kssl.data.augment`:
    # registering right then would be a circular import (it was, with a warning and no
    # classes); it happens at the next import instead.
    code = (
        "import warnings\nwarnings.simplefilter('error')\nimport kssl.app.doctor\nimport tabnanny\n"
        "import keras\nassert keras.saving.get_registered_object('kssl>SimCLR').__name__ == 'SimCLR'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]

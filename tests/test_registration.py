"""`import kssl` imports no TensorFlow, yet kssl's .keras files load after it."""

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "tensorflow_datasets", "keras_cv")


def modules_after(code):
    probe = f"import sys\n{code}\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_import_kssl_imports_no_tensorflow():
    assert modules_after("import kssl") == "[]"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["pretrain", "--help"], ["export", "--help"]])
def test_the_command_line_parser_imports_no_tensorflow(argv):
    parse = f"build_parser().parse_args({argv!r})"
    code = f"from kssl.cli import build_parser\ntry:\n    {parse}\nexcept SystemExit:\n    pass"
    assert modules_after(code) == "[]"


def test_keras_imported_after_kssl_knows_kssl_classes():
    code = "import kssl, keras\nprint(keras.saving.get_registered_object('kssl>FusedBatchNormalization').__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split()[-1] == "FusedBatchNormalization", result.stderr[-2000:]


def test_keras_imported_before_kssl_knows_kssl_classes_too():
    code = "import keras, kssl\nprint(keras.saving.get_registered_object('kssl>SimCLR').__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split()[-1] == "SimCLR", result.stderr[-2000:]


def test_a_look_up_of_keras_before_its_import_does_not_lose_the_registration():
    # TensorFlow calls importlib.util.find_spec("keras") when it is imported, without importing Keras.
    code = (
        "import importlib.util, kssl\nimportlib.util.find_spec('keras')\nimport tensorflow, keras\n"
        "print(keras.saving.get_registered_object('kssl>ProjectionHead').__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split()[-1] == "ProjectionHead", result.stderr[-2000:]

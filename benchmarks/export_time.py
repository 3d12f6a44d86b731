"""Seconds to export a tiny classifier as a SavedModel, in a fresh process (the first
export of a process, as `kssl run` and `kssl export` do it).

    python benchmarks/export_time.py            # prints one line: seconds
"""

import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

import kssl  # noqa: E402,F401,I001  (oneDNN first, as users import it)
import keras  # noqa: E402
from helpers import tiny_encoder  # noqa: E402

from kssl.outputs.export import export_saved_model  # noqa: E402
from kssl.models import Classifier  # noqa: E402

classifier = Classifier(tiny_encoder(16), num_classes=10, mode="full")
classifier(keras.ops.zeros((1, 16, 16, 3)))
started = time.perf_counter()
export_saved_model(classifier, pathlib.Path(tempfile.mkdtemp()) / "kssl" / "1")
print(f"{time.perf_counter() - started:.2f}")

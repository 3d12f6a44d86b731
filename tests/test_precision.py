import keras
import numpy as np
import pytest
from helpers import digits, tiny_encoder

from kssl.data.pipeline import view_pairs
from kssl.losses import nt_xent
from kssl.models import SimCLR
from kssl.precision import set_precision


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_without_nan_and_keeps_the_loss_float32(restore_policy, precision):
    set_precision(precision)
    model = SimCLR(tiny_encoder(), temperature=0.2, probe_classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    if precision == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    pairs = view_pairs(digits(), batch_size=32, with_labels=True)
    history = model.fit(pairs, epochs=1, steps_per_epoch=4, verbose=0)
    assert all(np.isfinite(history.history["loss"])) and all(np.isfinite(history.history["probe_loss"]))
    (v1, v2), _ = next(iter(pairs))
    z = model.project(v1)
    assert str(z.dtype) != "float32"  # the model computes in half precision...
    assert nt_xent(z, model.project(v2)).dtype.name == "float32"  # ...and the loss in float32
    assert all(w.dtype == "float32" for w in model.trainable_weights)


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match="precision"):
        set_precision("float8")

import platform

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import digits, tiny_encoder

from kssl.data.pipeline import view_pairs
from kssl.losses import nt_xent
from kssl.models import SimCLR
from kssl.runtime.precision import set_precision


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


@pytest.mark.parametrize(
    "gpu, flags, expected",
    [
        (False, {"avx2", "avx512f", "avx512_bf16"}, "mixed_bfloat16"),  # Zen 4, Sapphire Rapids
        (False, {"avx2", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),
        (False, {"avx2", "fma"}, "float32"),  # Zen 3 and older: bfloat16 would be emulated
        (False, set(), "float32"),  # flags unknown (not Linux)
        (True, {"avx2"}, "mixed_float16"),
    ],
)
def test_default_precision_follows_the_device_and_the_cpu_flags(gpu, flags, expected):
    from kssl.runtime.precision import precision_choice

    precision, reason = precision_choice(gpu=gpu, cpu_flags=flags)
    assert precision == expected and reason


def test_the_cpu_flags_of_this_machine_are_read():
    from kssl.runtime.cpu import cpu_flags

    flags = cpu_flags()
    assert isinstance(flags, frozenset)
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        assert "sse2" in flags  # every x86-64 CPU has it


def test_xla_is_on_by_default_only_on_one_gpu_replica(monkeypatch):
    from helpers import two_replicas

    import kssl.runtime.precision as precision

    monkeypatch.setattr(precision, "has_gpu", lambda: True)
    assert precision.resolve_jit_compile(None, tf.distribute.get_strategy()) is True
    assert precision.resolve_jit_compile(None, two_replicas()) is False
    with pytest.warns(UserWarning, match="#19005"):
        assert precision.resolve_jit_compile(True, two_replicas()) is True
    monkeypatch.setattr(precision, "has_gpu", lambda: False)
    assert precision.resolve_jit_compile(None, tf.distribute.get_strategy()) is False


def test_pretrain_on_two_replicas_with_a_gpu_compiles_without_xla(monkeypatch):
    from helpers import two_replicas

    import kssl.runtime.precision as precision
    from kssl.training import pretrain

    monkeypatch.setattr(precision, "has_gpu", lambda: True)
    with two_replicas().scope():
        encoder = tiny_encoder()
    model, _ = pretrain(digits().subset(range(64)), encoder, epochs=0.5, batch_size=32, strategy=two_replicas(),
                        verbose=0)  # fmt: skip
    assert model.jit_compile is False

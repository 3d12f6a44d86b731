"""Precision and compilation defaults, chosen per machine from measurements.

Precision (BENCHMARKS.md, "Precision per CPU"):

- GPUs: `mixed_float16`, the usual fastest setting on tensor-core GPUs (not measured
  here: no GPU was available).
- CPUs with native bfloat16 arithmetic (the `avx512_bf16` or `amx_bf16` flags: Intel
  Sapphire Rapids and later, AMD Zen 4 and later): `mixed_bfloat16`. On an AMD Zen 4
  CPU a CIFAR-10 SimCLR run did 1.35x the steps of float32 in the same 5 minutes and
  reached kNN 55.3% / linear 58.3% against 52.9% / 56.5%.
- Other CPUs: `float32`. Without those instructions bfloat16 is emulated: on an AVX2-only
  AMD EPYC a training step in `mixed_bfloat16` was many times slower than in float32.

XLA: on with a GPU and a single replica only. On CPUs it made training steps about 2x
slower here; with several replicas Keras itself refuses automatic XLA under
`tf.distribute` after reported failures (keras-team/keras#19005, #20763, #21366).
"""

from __future__ import annotations

import warnings

from kssl.runtime.devices import gpu_devices, has_accelerator, has_gpu  # noqa: F401  (also asked for here)

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def precision_choice(gpu: bool | None = None, cpu_flags=None) -> tuple[str, str]:
    """The default precision for this machine, and why, in words a user can act on.

    Args:
        gpu: whether a GPU is present (default: ask TensorFlow).
        cpu_flags: the CPU's feature flags (default: read from `/proc/cpuinfo`).

    Examples:
        >>> precision_choice(gpu=False, cpu_flags={"avx2", "avx512_bf16"})[0]
        'mixed_bfloat16'
        >>> precision_choice(gpu=False, cpu_flags={"avx2"})
        ('float32', 'this CPU has no native bfloat16 (AVX512-BF16/AMX), where mixed_bfloat16 is emulated and slower')
    """
    if gpu is None:
        gpu = has_gpu()
    if gpu:
        return "mixed_float16", "a GPU is present"
    if cpu_flags is None:
        from kssl.runtime.cpu import cpu_flags as read_flags

        cpu_flags = read_flags()
    native = [flag for flag in BF16_CPU_FLAGS if flag in set(cpu_flags)]
    if native:
        return "mixed_bfloat16", f"this CPU computes bfloat16 natively ({native[0]}): 1.35x faster steps, measured"
    return "float32", "this CPU has no native bfloat16 (AVX512-BF16/AMX), where mixed_bfloat16 is emulated and slower"


def default_precision() -> str:
    return precision_choice()[0]


def default_jit_compile(num_replicas: int = 1, gpu: bool | None = None) -> bool:
    """XLA by default only on a GPU with one replica (see the module docstring).

    Examples:
        >>> default_jit_compile(num_replicas=1, gpu=True), default_jit_compile(num_replicas=2, gpu=True)
        (True, False)
    """
    if gpu is None:
        gpu = has_gpu()
    return bool(gpu) and num_replicas == 1


def resolve_jit_compile(jit_compile: bool | None, strategy) -> bool:
    """`jit_compile` as given, or the default for `strategy`'s replicas when None.

    An explicit `True` with several replicas is honoured, with a warning saying why
    Keras and kssl avoid it.
    """
    replicas = strategy.num_replicas_in_sync
    if jit_compile is None:
        return default_jit_compile(replicas)
    if jit_compile and replicas > 1:
        warnings.warn(
            f"jit_compile=True with {replicas} replicas: Keras turns XLA off under tf.distribute by default "
            "after reported failures (a variable read across devices, keras-team/keras#19005; a hang with two "
            "GPUs, XLA and mixed precision, #20763; a LossScaleOptimizer crash, #21366). kssl keeps it on as "
            "asked; drop --jit-compile if training hangs or fails.",
            stacklevel=2,
        )
    return bool(jit_compile)


def set_precision(precision: str | None = None) -> str:
    """Sets Keras' global dtype policy; call before building models. Returns the policy set.

    `None` chooses this machine's default (`precision_choice`). `mixed_float16` models
    get loss scaling automatically at `compile` (Keras wraps the optimizer in a
    `LossScaleOptimizer`); kssl computes losses and softmaxes in float32 under every policy.

    Examples:
        >>> set_precision("float32")
        'float32'
    """
    import keras

    precision = precision or default_precision()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}. Received: precision={precision!r}")
    keras.mixed_precision.set_global_policy(precision)
    return precision

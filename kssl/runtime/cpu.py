"""TensorFlow's oneDNN CPU kernels, which kssl turns on where TensorFlow leaves them off.

TensorFlow enables its oneDNN kernels by default only on x86 CPUs with AVX512-VNNI,
AVX512-BF16 or AMX. Elsewhere (an AVX2-only AMD EPYC, for one) it falls back to slower
Eigen kernels: on such a 2-core machine a quarter-width ResNet-18 SimCLR training step
ran 2.0-2.6x faster with `TF_ENABLE_ONEDNN_OPTS=1` (BENCHMARKS.md, `benchmarks/throughput.py`).
TensorFlow reads the variable once, when it is first imported, so:

- `import kssl` before `import tensorflow` (or `keras`) sets `TF_ENABLE_ONEDNN_OPTS=1`
  unless you have set it yourself; the `kssl` command and kssl's benchmarks do this;
- `kssl.pretrain` and `kssl.finetune` warn once when they find the kernels off on a
  machine without a GPU, and say how to turn them on.

oneDNN changes the order of floating-point operations, so results differ from Eigen's in
the last bits. Set `TF_ENABLE_ONEDNN_OPTS=0` to keep TensorFlow's own default.

It also reads the CPU's model and feature flags once (`cpu_model`, `cpu_flags`), for
kssl's per-CPU precision default (`kssl.runtime.precision`) and for benchmark records.

Examples:
    >>> sorted(parse_cpu_flags("processor : 0\\nflags : fpu avx2 avx512_bf16\\n"))
    ['avx2', 'avx512_bf16', 'fpu']
"""

from __future__ import annotations

import functools
import os
import pathlib
import platform
import sys
import warnings

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"

_warned = False


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor in `/proc/cpuinfo`'s text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags (empty where `/proc/cpuinfo` cannot be read)."""
    try:
        return parse_cpu_flags(pathlib.Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name, for benchmark records (speeds differ several-fold between CPUs)."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def prefer_onednn() -> None:
    """Sets `TF_ENABLE_ONEDNN_OPTS=1` if TensorFlow is not imported yet and the user has not chosen."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(ONEDNN_VARIABLE, "1")


def onednn_enabled() -> bool | None:
    """Whether this TensorFlow process runs oneDNN kernels (None if TensorFlow cannot tell)."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own check
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def warn_if_onednn_off() -> bool:
    """Warns once if a CPU-only process runs without oneDNN that the user did not turn off.

    Returns whether it warned.
    """
    global _warned
    if _warned or os.environ.get(ONEDNN_VARIABLE) == "0" or onednn_enabled() is not False:
        return False
    from kssl.runtime.devices import has_gpu

    if has_gpu():
        return False
    _warned = True
    warnings.warn(
        "TensorFlow's oneDNN CPU kernels are off in this process (TensorFlow turns them on by "
        "default only on CPUs with AVX512-VNNI, AVX512-BF16 or AMX); training on this CPU may run "
        "about 2x slower. To turn them on, restart and `import kssl` before tensorflow/keras, or set "
        f"{ONEDNN_VARIABLE}=1 in the environment. Set it to 0 to silence this warning.",
        stacklevel=3,
    )
    return True

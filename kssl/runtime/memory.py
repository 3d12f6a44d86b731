"""Whether a training step fits in this machine's memory, asked before any work.

On a CPU a step that does not fit is not an error TensorFlow raises: the process is
killed by the kernel (or the machine swaps to a halt) after the data has loaded. So the
`kssl` command and `kssl.pretrain` first estimate the least memory a step needs, the
encoder's activations that the backward pass keeps, and refuse what cannot fit. On a GPU
TensorFlow reports a step that does not fit in its memory (`ResourceExhaustedError`),
and this check is skipped: host RAM does not bound it.
"""

from __future__ import annotations

from kssl.errors import InputError

# The estimate counts every layer output; the backward pass keeps most of them, not all
# (a residual sum feeding a ReLU is freed), while what else a step holds (weights,
# gradients, optimizer slots, the input pipeline) is left out. So a step estimated at up to
# twice the memory available may still fit: it is warned about, and only one estimated
# at more than that, which cannot fit, is refused.
REFUSED_ABOVE = 2.0


def activation_bytes(encoder) -> int:
    """Bytes of every layer output of `encoder` for one image at its input size, in each
    layer's compute dtype: what a training step keeps for the backward pass, at least.

    Examples:
        >>> from kssl.encoders import conv4
        >>> activation_bytes(conv4(width=0.125, image_size=16))  # the input, 4 blocks of 4 outputs, pooling
        38464
    """
    import numpy as np

    total = 0
    for layer in encoder.layers:
        if hasattr(layer, "layers") and layer.layers:  # a nested model: its own layers
            total += activation_bytes(layer)
            continue
        try:
            outputs = layer.output
        except (AttributeError, ValueError):  # a layer used several times, or not in a graph
            continue
        for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            elements = int(np.prod([d for d in output.shape[1:] if d is not None]))
            total += elements * np.dtype(output.dtype).itemsize
    return total


def available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def check_training_memory(encoder, batch_size: int, views) -> None:
    """Raises `InputError` if a training step of `batch_size` images, each seen as `views`
    (view augmentations, with `image_size`), cannot fit in the memory available, on a
    machine without a GPU; warns if it may not. Activations grow with a view's pixels, so
    a smaller view (multi-crop) counts at its share of the encoder's input size.

    Examples:
        >>> from kssl.data.augment import ViewAugmentation
        >>> from kssl.encoders import conv4
        >>> check_training_memory(conv4(image_size=32), 256, [ViewAugmentation(32)] * 2)  # about 80 MB: fits
    """
    import warnings

    from kssl.runtime.precision import has_gpu

    if has_gpu():
        return
    size = encoder.input_shape[1]
    per_image = activation_bytes(encoder)
    images = sum(batch_size * (view.image_size / size) ** 2 for view in views)
    needed, available = int(images * per_image), available_bytes()
    if needed <= available:
        return
    what = (
        f"Training at {size} px on batches of {batch_size} needs about {human_bytes(needed)} of memory for the "
        f"encoder's activations ({len(views)} views x {batch_size} images x {human_bytes(per_image)}), and this "
        f"machine has {human_bytes(available)} available."
    )
    advice = "Use a smaller --image-size or --batch-size (or a smaller encoder)."
    if needed > REFUSED_ABOVE * available:
        raise InputError(f"{what} {advice}")
    warnings.warn(f"{what} It may not fit: if the process is killed, {advice[0].lower()}{advice[1:]}", stacklevel=2)


def human_bytes(count: float) -> str:
    """`count` bytes in GB, MB or kB, for messages."""
    if count >= 1e8:
        return f"{count / 1e9:,.1f} GB"
    return f"{count / 1e6:,.1f} MB" if count >= 1e5 else f"{count / 1e3:,.1f} kB"

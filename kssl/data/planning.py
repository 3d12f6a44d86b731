"""Choices that depend on the data and the machine: training resolution, in memory or streaming.

Both are printed at the start of a run with the reason, and can be overridden
(`--image-size`, `--stream` / `--in-memory`).

Examples:
    >>> default_image_size([(32, 32)] * 5, accelerator=False)
    (32, 'the images are 32 px (median shorter side)')
    >>> default_image_size([(375, 500)] * 5, accelerator=False)[0]
    96
"""

from __future__ import annotations

import numpy as np

from kssl.runtime.memory import human_bytes

# Photos are trained at this side by default. kssl's ResNets take the ImageNet stem above
# 64 px, so at 96 px a ResNet-18/4 trained 4.6x faster than at 64 px (1,536 vs 335 views/s
# on 2 AMD EPYC cores, benchmarks/streaming.py): 96 px is the affordable CPU size. A GPU
# affords 160 px.
CPU_IMAGE_SIZE = 96
ACCELERATOR_IMAGE_SIZE = 160
# In memory while the decoded copies take at most this share of the machine's RAM.
MEMORY_SHARE = 0.25


def default_image_size(shapes, accelerator: bool) -> tuple[int, str]:
    """The training side for images of `shapes` (`(height, width)` rows), and why.

    Small images keep their own size (the median shorter side: 32 for CIFAR-10);
    larger ones get the side this device affords (`CPU_IMAGE_SIZE`, or
    `ACCELERATOR_IMAGE_SIZE` with a GPU or TPU).
    """
    own = int(np.median(np.min(np.asarray(shapes), axis=1)))
    cap = ACCELERATOR_IMAGE_SIZE if accelerator else CPU_IMAGE_SIZE
    if own <= cap:
        return max(own, 8), f"the images are {own} px (median shorter side)"
    device = "an accelerator" if accelerator else "a CPU"
    return cap, f"the images are {own} px (median shorter side); {cap} px is affordable on {device}"


def memory_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def decoded_bytes(count: int, shapes, image_size: int) -> int:
    """Estimated bytes of `count` images kept in memory for training at `image_size`.

    Each image is stored at `kssl.data.decoding.stored_shape` (its centred part of at most
    2:1, the shorter side at `stored_side(image_size)`, never enlarged) in one array padded
    to the largest stored height and width, as `kssl.data.decoding.decode_files` does, with
    the originals' evaluation views (`image_size` squares) beside when copies are not the
    originals; `shapes` is a sample of the images' shapes.

    Examples:
        >>> decoded_bytes(2000, [(24, 24)] * 199 + [(20, 6000)], 16)  # one banner: 40 px wide
        7296000
    """
    from kssl.data.decoding import stored_shape, stored_side

    side = stored_side(image_size)
    stored = np.asarray([stored_shape(int(h), int(w), side) for h, w in shapes], np.int64)
    copies = any(tuple(s) != (int(h), int(w)) for s, (h, w) in zip(stored, shapes))
    views = image_size * image_size * 3 if copies else 0
    return int(count * (stored[:, 0].max() * stored[:, 1].max() * 3 + views))


def choose_streaming(count: int, shapes, image_size: int, stream: bool | None = None) -> tuple[bool, str]:
    """Whether to stream from disk, and why: decoded size against `MEMORY_SHARE` of the RAM.

    `stream=True/False` forces the choice (the reason then says so).

    Examples:
        >>> choose_streaming(50_000, [(32, 32)], 32)[0]
        False
        >>> choose_streaming(50_000, [(32, 32)], 32, stream=True)
        (True, 'streaming from disk (--stream)')
    """
    needed = decoded_bytes(count, shapes, image_size)
    budget = MEMORY_SHARE * memory_bytes()
    size = f"decoded for {image_size} px the {count:,} images take about {human_bytes(needed)}"
    if stream is True:
        return True, "streaming from disk (--stream)"
    if stream is False:
        return False, f"in memory, as asked (--in-memory): {size}"
    share = f"{int(MEMORY_SHARE * 100)}% of this machine's {human_bytes(memory_bytes())} of RAM"
    if needed > budget:
        return True, f"streaming from disk: {size}, more than {share}; --in-memory overrides"
    return False, f"in memory: {size}, within {share}; --stream overrides"

"""Views finished on the accelerator: the host crops, the device does the rest.

On a GPU the host's CPU cores cannot augment as many views per second as the GPU
trains on (the colour jitter, grayscale and blur touch every pixel several times). So
the pipeline splits the augmentation where the source image stops being needed:

- on the host, inside `tf.data`: read, decode (only the region the views need, when
  streaming), crop and resize, round to uint8 (`kssl.data.augment.as_uint8`);
- on the device, inside the train step: flip, colour jitter, grayscale, blur and
  solarize (`kssl.data.augment.finish_views`), from parameters drawn on the host.

A batch crosses as *unfinished views*, `{"crops": (c_1, c_2), "parameters": (p_1,
p_2)}`: uint8 crops at the view size (a quarter of the float32 bytes) and a few floats
per image. The same seed gives the same views on both paths, since both finish the
same uint8 crops with the same parameters and ops. Under XLA the step finishes with
`compute_all_branches=True`: gathering the images that take a branch has a
data-dependent shape, which XLA cannot compile. Cropping stays on the host, which
holds the decoded image (and `crop_and_resize` has no XLA kernel).

The batches reach the device by the strategy's own prefetch: `MirroredStrategy`
copies each replica's rows to its device ahead of the step, and on one GPU without a
strategy `to_device` distributes the dataset with a `OneDeviceStrategy` for that.

Examples:
    >>> import numpy as np
    >>> from kssl.data.augment import ViewAugmentation
    >>> augment = ViewAugmentation(image_size=8)
    >>> drawn = augment.draw([0, 1], 4)
    >>> batch = unfinished_views([np.zeros((4, 8, 8, 3), "uint8")] * 2, [augment.finishing_parameters(drawn)] * 2)
    >>> [tuple(v.shape) for v in finish_unfinished(batch)]
    [(4, 8, 8, 3), (4, 8, 8, 3)]
"""

from __future__ import annotations

import tensorflow as tf

from kssl.data.augment import finish_views


def unfinished_views(crops, parameters) -> dict:
    """A batch of views to finish on the device: uint8 crops and their parameters, per view."""
    return {"crops": tuple(crops), "parameters": tuple(parameters)}


def is_unfinished(batch) -> bool:
    """Whether `batch` (the images part of a batch) is a batch of `unfinished_views`."""
    return isinstance(batch, dict) and set(batch) == {"crops", "parameters"}


def finish_unfinished(batch, compute_all_branches: bool = False) -> tuple:
    """The float32 views in [0, 1] of a batch of `unfinished_views`, computed where the call runs."""
    return tuple(
        finish_views(crops, parameters, compute_all_branches)
        for crops, parameters in zip(batch["crops"], batch["parameters"])
    )


def to_device(dataset, strategy, device: str | None = None):
    """`dataset` prefetched to `device` by a `OneDeviceStrategy`, when `strategy` has no devices of its own.

    Under a `MirroredStrategy` (or any strategy but the default one) Keras' `fit`
    distributes the dataset itself, prefetching each replica's share to its device;
    `dataset` is returned unchanged. Under the default strategy the batches would be
    copied at the step instead: with `device` (default: the first GPU, if any), the
    dataset is distributed to it ahead of time, as `fit` accepts.
    """
    default = not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy()
    if not default or isinstance(dataset, tf.distribute.DistributedDataset):
        return dataset
    if device is None:
        from kssl.runtime.precision import gpu_devices

        gpus = gpu_devices()
        if not gpus:
            return dataset
        device = gpus[0]
    return tf.distribute.OneDeviceStrategy(device).experimental_distribute_dataset(dataset)

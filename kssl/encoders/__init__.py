"""Image encoders: models mapping images to one feature vector each.

`build_encoder(name, ...)` builds one from its name, as the `kssl` command's `--encoder`
does: `conv4` (`kssl.encoders.conv4`, the few-shot literature's small backbone), `resnet10`,
`resnet18`, `resnet34`, `resnet50` (`kssl.encoders.resnet`), `vit<depth>`, e.g.
`vit6` or `vit12` (`kssl.encoders.vit`), or `keras:<Backbone>`, e.g. `keras:ResNet50V2`
or `keras:EfficientNetB0` (`kssl.encoders.applications`, optionally ImageNet weights).
"""

from __future__ import annotations

import re

from kssl.encoders.applications import from_keras_applications
from kssl.encoders.conv4 import conv4
from kssl.encoders.resnet import DEPTHS as RESNET_DEPTHS
from kssl.encoders.resnet import resnet
from kssl.encoders.vit import vit
from kssl.errors import InputError

ENCODER_NAMES = (
    "conv4",
    *(f"resnet{depth}" for depth in RESNET_DEPTHS),
    "vit<depth> (e.g. vit6)",
    "keras:<keras.applications backbone> (e.g. keras:ResNet50V2)",
    "PATH.keras (any Keras image model, with its weights)",
    "keras_hub:PRESET (a keras-hub backbone: a preset name or a local preset folder)",
)


def build_encoder(name: str, image_size: int = 32, width: float = 1.0, weights: str | None = None) -> keras.Model:  # noqa: F821
    """Builds an encoder from its name, at `image_size`, with a width multiplier.

    `width` scales Conv-4's 64 filters, a ResNet's stage widths (64-512) or a ViT's token width (ViT-Base's
    768: 0.25 is ViT-Tiny's 192); `keras:` backbones keep their own widths. `weights`
    ("imagenet" or a weights file) applies to `keras:` backbones only.

    Examples:
        >>> build_encoder("resnet18", image_size=16, width=0.125).name
        'resnet18_w0.125'
        >>> build_encoder("vit2", image_size=16, width=0.125).name
        'vit2_w0.125_p2'
        >>> build_encoder("conv4", image_size=16, width=0.125).name
        'conv4_w0.125'
    """
    if str(name).lower().startswith("keras:"):
        return from_keras_applications(str(name)[len("keras:") :], weights=weights, image_size=image_size)
    if str(name).lower().startswith("keras_hub:"):
        from kssl.encoders.from_model import from_keras_hub

        if weights is not None:
            raise InputError(f"--weights applies to keras: backbones; {name!r} brings its preset's weights.")
        return from_keras_hub(str(name)[len("keras_hub:") :], image_size)
    if str(name).lower().endswith(".keras"):  # any Keras image model, continued from its weights
        from kssl.encoders.loading import load_encoder

        if weights is not None:
            raise InputError(f"--weights applies to keras: backbones; {name!r} brings its own weights.")
        return load_encoder(name, image_size)
    if weights is not None:
        raise InputError(
            f"--weights applies to keras.applications backbones (--encoder keras:ResNet50V2 and the like); "
            f"{name!r} starts from random weights. Leave --weights out, or pretrain with kssl and fine-tune "
            "with --pretrained."
        )
    key = str(name).lower()
    resnet_match = re.fullmatch(r"resnet(\d+)", key)
    vit_match = re.fullmatch(r"vit(\d+)", key)
    try:
        if key == "conv4":
            return conv4(width=width, image_size=image_size)
        if resnet_match and int(resnet_match.group(1)) in RESNET_DEPTHS:
            return resnet(int(resnet_match.group(1)), width=width, image_size=image_size)
        if vit_match and int(vit_match.group(1)) >= 1:
            return vit(int(vit_match.group(1)), width=width, image_size=image_size)
    except InputError:
        raise
    except ValueError as error:  # a size or width the architecture cannot take
        raise InputError(f"Cannot build {name} at image size {image_size}, width {width}: {error}") from None
    raise InputError(f"Unknown encoder {name!r}. Available encoders: {', '.join(ENCODER_NAMES)}.")


__all__ = ["ENCODER_NAMES", "build_encoder", "conv4", "from_keras_applications", "resnet", "vit"]

"""Encoders from `keras.applications` backbones (ImageNet-pretrained or not).

The backbone's own input preprocessing is the encoder's first layer, so the encoder
takes kssl's images in [0, 1] like every other kssl encoder; global average pooling
gives one feature vector per image. Layer names stay those of `keras.applications`,
so `Classifier` modes that work by stage (`partial`, `gradual`, `adapter`) find the
stages (`kssl.finetuning.stages`).
"""

from __future__ import annotations

import pathlib
import re

import keras

from kssl.errors import InputError

# keras.applications modules, each with the preprocess_input its families use.
_MODULES = (
    "convnext",
    "densenet",
    "efficientnet",
    "efficientnet_v2",
    "inception_resnet_v2",
    "inception_v3",
    "mobilenet",
    "mobilenet_v2",
    "nasnet",
    "resnet",
    "resnet_v2",
    "vgg16",
    "vgg19",
    "xception",
)


def application_names() -> dict[str, str]:
    """Backbone name (e.g. "ResNet50V2") -> the `keras.applications` module of its preprocessing."""
    names = {}
    for module in _MODULES:
        for name in dir(getattr(keras.applications, module)):
            if name[0].isupper():
                names[name] = module
    names.update({"MobileNetV3Small": "mobilenet_v3", "MobileNetV3Large": "mobilenet_v3"})
    return names


@keras.saving.register_keras_serializable(package="kssl")
class ApplicationPreprocessing(keras.layers.Layer):
    """Maps kssl's [0, 1] images to what a `keras.applications` family expects:
    `keras.applications.<module>.preprocess_input(images * 255)` (caffe-style BGR mean
    subtraction for ResNet, [-1, 1] for ResNetV2 and MobileNetV2, 0-255 for the
    families that normalise inside the model: EfficientNet, ConvNeXt, MobileNetV3).

    Examples:
        >>> import numpy as np
        >>> layer = ApplicationPreprocessing("resnet_v2")
        >>> layer(np.array([[[[0.0, 0.5, 1.0]]]], "float32")).numpy().round(3).tolist()
        [[[[-1.0, 0.0, 1.0]]]]
    """

    def __init__(self, module: str, **kwargs):
        kwargs.setdefault("dtype", "float32")  # mean subtraction of 0-255 values in float32
        super().__init__(**kwargs)
        if module not in (*_MODULES, "mobilenet_v3"):
            raise ValueError(f"module must be a keras.applications module. Received: module={module!r}")
        self.module = module

    def call(self, images):
        return getattr(keras.applications, self.module).preprocess_input(images * 255.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "module": self.module}


def _download_failure(name, error) -> InputError:
    url = re.search(r"https?://\S+?(?=[\s:]|$)", str(error))
    where = f" ({url.group(0)})" if url else ""
    cache = pathlib.Path(keras.config.keras_home() if hasattr(keras.config, "keras_home") else "~/.keras") / "models"
    return InputError(
        f"Could not download the ImageNet weights of {name}{where}: {str(error).splitlines()[0]}. "
        f"Without a network, copy that file into {cache}/ (Keras looks there first), or pass "
        f"--weights PATH (weights=PATH) with a weights file saved from keras.applications.{name}(include_top=False)."
    )


def from_keras_applications(name: str, weights: str | None = None, image_size: int = 224) -> keras.Model:
    """A `keras.applications` backbone as a kssl encoder: [0, 1] images -> pooled features.

    Args:
        name: the backbone, e.g. "ResNet50V2", "EfficientNetB0", "EfficientNetV2S",
            "ConvNeXtTiny", "MobileNetV3Small" (`application_names()` lists them all).
        weights: "imagenet" (downloaded by Keras into `~/.keras/models/` once), a path
            to a weights file of the same backbone (`.weights.h5`, or Keras' own `.h5`
            downloads), or None for random initialisation.
        image_size: input side in pixels (the families need at least 32).

    Examples:
        >>> encoder = from_keras_applications("MobileNetV3Small", image_size=32)
        >>> encoder.output_shape, encoder.layers[1].name
        ((None, 576), 'preprocessing')
    """
    families = application_names()
    if name not in families:
        close = [known for known in families if known.lower() == str(name).lower()]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(
            f"Unknown keras.applications backbone {name!r}.{hint} Available: {', '.join(sorted(families))}."
        )
    path = None
    if weights not in (None, "imagenet"):
        path = pathlib.Path(weights).expanduser()
        if not path.is_file():
            raise InputError(
                f"No weights file at {str(path)!r}: pass --weights imagenet or the path of a weights file."
            )
    constructor = getattr(keras.applications, name)
    shape = (image_size, image_size, 3)
    try:
        # The backbone as keras.applications builds it, which is what weights files fit...
        source = constructor(
            include_top=False, weights="imagenet" if weights == "imagenet" else None, input_shape=shape, pooling="avg"
        )
    except ValueError as error:  # e.g. an input too small for the family
        raise InputError(f"keras.applications.{name} at image size {image_size}: {error}") from None
    except Exception as error:  # Keras raises a bare Exception when the download fails
        if weights == "imagenet" and ("fetch" in str(error).lower() or "url" in str(error).lower()):
            raise _download_failure(name, error) from None
        raise
    if path is not None:
        try:
            source.load_weights(path)
        except (ValueError, KeyError, OSError) as error:
            raise InputError(
                f"The weights in {str(path)!r} do not fit keras.applications.{name}(include_top=False) "
                f"({str(error).splitlines()[0]}). Pass the weights saved from that backbone, or --weights imagenet."
            ) from None
    # ...and the same backbone behind its preprocessing, flat (its layer names stay
    # visible to the stage-wise modes), given the source's weights layer by layer.
    inputs = keras.Input(shape, name="images")
    preprocessed = ApplicationPreprocessing(families[name], name="preprocessing")(inputs)
    model = constructor(include_top=False, weights=None, input_tensor=preprocessed, pooling="avg")
    if weights is not None:
        targets = [layer for layer in model.layers if layer.weights]
        for source_layer, target_layer in zip(
            [layer for layer in source.layers if layer.weights], targets, strict=True
        ):
            target_layer.set_weights(source_layer.get_weights())
    return keras.Model(inputs, model.output, name=f"{name.lower()}_{image_size}px")

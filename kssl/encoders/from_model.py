"""Any Keras image model as a kssl encoder: a `.keras` file, a kssl run, an ImageNet model.

Practitioners start from a model they have: an ImageNet or foundation model saved as a
`.keras` file, a classifier with its head, a backbone that ends in a feature map, a
fully convolutional model of any input size. `encoder_from_model` makes any of them an
encoder as kssl's own are (images `(S, S, 3)` in [0, 1] in, one feature vector out):

- a kssl pretraining model or `Classifier` gives its `encoder`;
- a model that ends in class probabilities (a softmax) has that head cut, down to the
  pooled features before it;
- a model that ends in a feature map `(H, W, C)` gets a global average pooling;
- a model of any input size (`None` x `None`) is built at `image_size`, flat (its layers
  keep their names, so the stage-wise fine-tuning modes find its stages), with its weights.

The model's own preprocessing stays inside it: kssl feeds every encoder images in [0, 1],
so a file saved for kssl (such as `../shared/data/pretrained/`) has its normalisation as
its first layers. Each change is said in `notes`, for the command's log.

Examples:
    >>> import keras
    >>> head = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3),
    ...                          keras.layers.GlobalAveragePooling2D(),
    ...                          keras.layers.Dense(10, activation="softmax", name="predictions")])
    >>> encoder, notes = encoder_from_model(head, image_size=16)
    >>> encoder.input_shape, encoder.output_shape
    ((None, 16, 16, 3), (None, 4))
    >>> notes
    ['cut its classification head (predictions: 10 classes, softmax)', 'built at 16 px (it takes images of any size)']
"""

from __future__ import annotations

import keras

from kssl.errors import InputError

_PROBABILITIES = ("softmax", "sigmoid")


def encoder_from_model(model, image_size: int | None = None, name: str = "the model") -> tuple[keras.Model, list]:
    """`(encoder, notes)`: `model` as a kssl encoder at `image_size` (see the module docstring).

    Args:
        model: a Keras model of images (`(H, W, 3)`, any `H` and `W`).
        image_size: the side the encoder takes; needed for a model of any input size, and
            checked against a model of one size.
        name: what the messages call the model (its file).

    Raises:
        InputError: the model does not take RGB images, ends in something that is neither
            features, a feature map nor class probabilities, or takes another size.
    """
    notes = []
    model = getattr(model, "encoder", model)  # a kssl pretraining model or Classifier
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        raise InputError(
            f"{name} takes inputs of shape {model.input_shape}, not RGB images (batch, height, width, 3): "
            "pass an image model."
        )
    model = _without_probability_head(model, name, notes)
    if len(model.output_shape) == 4:
        pooled = keras.layers.GlobalAveragePooling2D(name="kssl_pool")(model.outputs[0])
        notes.append(f"pooled its {'x'.join(str(d) for d in model.output_shape[1:])} feature map (global average)")
        model = keras.Model(model.inputs, pooled, name=model.name)
    elif len(model.output_shape) != 2:
        raise InputError(
            f"{name} gives outputs of shape {model.output_shape}: an encoder gives one feature vector per image "
            "(or a feature map kssl pools). Pass an image backbone or classifier."
        )
    size = shape[1]
    if shape[1] is None or shape[2] is None:
        if image_size is None:
            raise InputError(f"{name} takes images of any size: pass --image-size (Python: image_size=).")
        model = _built_at(model, int(image_size))
        notes.append(f"built at {int(image_size)} px (it takes images of any size)")
    elif shape[1] != shape[2]:
        raise InputError(f"{name} takes {shape[1]} x {shape[2]} images: kssl's views are squares.")
    elif image_size is not None and int(image_size) != size:
        raise InputError(
            f"--image-size {image_size}: {name} takes {size}-px images, the size it was built for. Leave "
            "--image-size out, or save it with an input of any size (None, None, 3)."
        )
    return model, notes


def _without_probability_head(model, name, notes):
    """`model` up to the features its last softmax (or sigmoid) layer reads, if it ends in one."""
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if activation not in _PROBABILITIES:
        return model
    classes = model.output_shape[-1]
    head = [last]
    features = last.input
    if isinstance(last, keras.layers.Activation) and len(model.layers) > 1:
        head.append(model.layers[-2])
        features = model.layers[-2].input
    while len(features.shape) == 2 and isinstance(features._keras_history.operation, keras.layers.Dropout):
        features = features._keras_history.operation.input  # the head's dropout goes with it
    if len(features.shape) not in (2, 4):
        raise InputError(
            f"{name} ends in class probabilities ({last.name}: {classes} classes) whose input is not a feature "
            "vector or map, so its head cannot be cut: save the model without its head (include_top=False)."
        )
    notes.append(f"cut its classification head ({head[-1].name}: {classes} classes, {activation})")
    return keras.Model(model.inputs, features, name=model.name)


def _built_at(model, image_size: int) -> keras.Model:
    """`model` (of any input size) as a flat model of `image_size`-px inputs with its weights."""
    inputs = keras.Input((image_size, image_size, 3), name=model.inputs[0].name or "images")
    try:
        built = keras.models.clone_model(model, input_tensors=[inputs] if isinstance(model.input, list) else inputs)
    except Exception as error:  # noqa: BLE001 - cloning fails in many ways for subclassed models
        raise InputError(f"Cannot build {model.name} at {image_size} px: {error}") from None
    built.set_weights(model.get_weights())
    return built


def from_keras_hub(preset: str, image_size: int) -> keras.Model:
    """A keras-hub backbone as a kssl encoder at `image_size`: `preset` is a preset name
    (downloaded by keras-hub where there is a network) or a local preset folder
    (`backbone.save_to_preset(folder)`). The preset's image converter (its scale and
    offset, from pixel values 0-255) goes inside, before the backbone; a feature map is
    average-pooled, a sequence of tokens averaged. keras-hub is an optional dependency
    (`pip install keras-hub`).

    Example (a local preset, offline)::

        encoder = from_keras_hub("/models/resnet_preset", image_size=96)
    """
    try:
        import keras_hub
    except ImportError:
        raise InputError(
            "keras_hub: encoders need keras-hub: pip install keras-hub (or pip install 'kssl[hub]')."
        ) from None
    try:
        backbone = keras_hub.models.Backbone.from_preset(preset)
    except Exception as error:  # noqa: BLE001 - keras-hub raises many types for a missing or unreachable preset
        raise InputError(
            f"keras-hub could not load the preset {preset!r} ({type(error).__name__}: {str(error).splitlines()[0]}). "
            "Without a network, pass a local preset folder (saved with backbone.save_to_preset(folder))."
        ) from None
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception:  # noqa: BLE001 - a preset without an image converter: the backbone takes 0-255 as it is
        converter = None
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = keras.layers.Rescaling(255.0, name="to_pixel_values")(inputs)  # kssl's [0, 1] to the converter's 0-255
    if converter is not None:
        x = converter(x)
    features = backbone(x)
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D(name="kssl_pool")(features)
    elif len(features.shape) == 3:
        features = keras.layers.GlobalAveragePooling1D(name="kssl_pool")(features)
    return keras.Model(inputs, features, name=f"keras_hub_{type(backbone).__name__.lower()}_{image_size}px")

"""A run's settings checked and completed: the method's and modes' options against their
specs, the pretraining length and recipe, and what `config.json` records.

`RunConfig`, the table of settings, is `kssl.app.settings`'s; `config.json` is it as
resolved for the run (every option's value, defaults included), so `RunConfig.from_json`
reproduces it. Imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import pathlib

from kssl import defaults
from kssl.app.settings import RECIPES, RunConfig


def with_pretraining_length(config, images: int):
    """`config` with its pretraining epochs, chosen from the number of images
    (`kssl.defaults.pretraining_epochs`) when neither `--epochs` nor `--budget` is given;
    the choice and its reason are printed."""
    if config.epochs is not None or config.budget is not None:
        return config
    batch_size = min(config.batch_size, images)
    adapting = pretraining_recipe(config)[0].frozen_batch_norm  # the recipe for a pretrained start
    epochs, reason = defaults.pretraining_epochs(images, batch_size, config.data, pretrained_start=adapting)
    print(f"pretraining length: {reason}; --epochs or --budget overrides", flush=True)
    return dataclasses.replace(config, epochs=epochs)


def pretrained_start(config) -> bool:
    """True when `config.encoder` brings trained weights: a `.keras` model, a keras-hub
    preset, or a `keras:` backbone with `--weights`."""
    encoder = str(config.encoder or "").lower()
    return (
        encoder.endswith(".keras")
        or encoder.startswith("keras_hub:")
        or (encoder.startswith("keras:") and config.weights is not None)
    )


def pretraining_recipe(config):
    """`(recipe, why)`: the method's recipe (`kssl.training.recipes`), made for a pretrained start
    (`kssl.training.recipes.for_pretrained_start`) when `--recipe` says so or, with `auto`, when
    the encoder brings weights.

    Examples:
        >>> recipe, why = pretraining_recipe(RunConfig(encoder="imagenet.keras"))
        >>> recipe.encoder_rate
        0.01
        >>> print(why)
        for a pretrained start: the encoder brings weights (--recipe from-scratch: the method's own)
        >>> pretraining_recipe(RunConfig(encoder="resnet18"))[1]
        "the method's own, for random weights"
    """
    from kssl.errors import InputError
    from kssl.methods import recipe_for
    from kssl.training.recipes import for_pretrained_start

    if config.recipe_kind not in RECIPES:
        raise InputError(f"--recipe {config.recipe_kind!r}: choose one of {', '.join(RECIPES)}.")
    recipe = recipe_for(config.method)
    if config.recipe_kind == "from-scratch":
        return recipe, "the method's own, for random weights (--recipe from-scratch)"
    if config.recipe_kind == "pretrained-start":
        return for_pretrained_start(recipe), "for a pretrained start (--recipe pretrained-start)"
    if pretrained_start(config):
        return for_pretrained_start(recipe), (
            "for a pretrained start: the encoder brings weights (--recipe from-scratch: the method's own)"
        )
    return recipe, "the method's own, for random weights"


def methods_with(option: str) -> list[str]:
    """The registered methods whose spec has `option` (e.g. "temperature")."""
    from kssl.methods import METHODS

    return [name for name, spec in METHODS.items() if option in spec.options]


def check_method_options(config):
    """`config` with `method_options` checked against the method's spec and resolved (every
    option's value, defaults included, as `config.json` records it), or an `InputError`."""
    from kssl.errors import InputError
    from kssl.methods import method_spec

    spec = method_spec(config.method)
    options = dict(config.method_options or {})
    if config.temperature is not None:
        if "temperature" not in spec.options:
            raise InputError(
                f"--temperature applies to contrastive methods ({', '.join(methods_with('temperature'))}); "
                f"{config.method} has none. Leave it out."
            )
        options["temperature"] = config.temperature
    options = spec.parse_options(options, "--method-option", config.method)
    recipe, _ = pretraining_recipe(config)
    if "local_crops" in spec.options and "local_crops" not in options and recipe.local_crops is not None:
        options["local_crops"] = recipe.local_crops  # the recipe's, unless asked for
    check_teacher(config, spec)
    return dataclasses.replace(config, method_options=spec.resolved_options(options), temperature=None)


def check_teacher(config, spec) -> None:
    """An `InputError` unless `--teacher` and a method that needs one go together, and the
    teacher is a `.keras` file (or a run folder) that exists, or `keras:NAME`."""

    from kssl.errors import InputError, MissingInputError

    if spec.needs_teacher and not config.teacher:
        raise InputError(f"--method {config.method} needs --teacher: a .keras image model (an ImageNet or foundation "
                         "model, or a kssl run) or keras:NAME with ImageNet weights.")  # fmt: skip
    if config.teacher and not spec.needs_teacher:
        raise InputError(f"--teacher goes with --method distillation; {config.method} takes none. Leave it out.")
    if config.teacher and not str(config.teacher).lower().startswith(("keras:", "keras_hub:")):
        if not pathlib.Path(config.teacher).expanduser().exists():
            raise MissingInputError(f"No teacher at {config.teacher!r}: pass a .keras file, a run folder or "
                                    "keras:NAME (--teacher).")  # fmt: skip


def check_mode_options(config, modes):
    """`config.mode_options` checked against the chosen modes' specs and resolved, or an `InputError`."""
    from kssl.errors import InputError
    from kssl.finetuning import MODES

    given = dict(config.mode_options or {})
    if config.lora_rank is not None:
        given.setdefault("rank", config.lora_rank)
    for key in given:
        if not any(key in MODES[mode].options for mode in modes):
            accepted = {mode: list(MODES[mode].options) for mode in modes}
            described = "; ".join(f"{mode}: {', '.join(keys) or 'none'}" for mode, keys in accepted.items())
            raise InputError(f"--mode-option {key}: no chosen mode has this option. Their options: {described}.")
    resolved = {}
    for mode in modes:
        spec = MODES[mode]
        mine = spec.parse_options({k: v for k, v in given.items() if k in spec.options}, "--mode-option", mode)
        resolved.update(spec.resolved_options(mine))
    return dataclasses.replace(config, mode_options=resolved, lora_rank=None)


def check_finetuning(config):
    """The fine-tuning options checked (modes in the registry's spelling), or an `InputError`."""
    from kssl.errors import InputError
    from kssl.finetuning import MODES, check_mode, mode_class
    from kssl.finetuning.adversarial import ATTACKS, check_epsilon

    modes = [check_mode(mode) for mode in (config.modes or [])]
    if not modes:
        raise InputError(f"--modes is empty: name one or more of {', '.join(MODES)}.")
    config = check_mode_options(config, modes)
    for mode in modes:
        try:
            mode_class(mode)(**mode_options_of(config, mode))
        except ValueError as error:
            raise InputError(f"--modes {mode}: {error}") from None
    if config.adversarial not in ("none", *ATTACKS):
        raise InputError(f"--adversarial must be none, fgsm or pgd. Received: {config.adversarial!r}")
    try:
        check_epsilon(config.epsilon)
    except ValueError as error:
        raise InputError(f"--epsilon: {error}") from None
    draws = config.draws
    if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int) or draws < 1):
        raise InputError(f"--draws must be a whole number >= 1 (or left out for the default). Received: {draws!r}")
    if config.validation not in ("auto", "none"):
        raise InputError(f"--validation must be auto or none. Received: {config.validation!r}")
    config = check_semi_supervised_options(config)
    if not 0 < config.stage_decay <= 1:
        raise InputError(f"--stage-decay must be in (0, 1] (1 turns it off). Received: {config.stage_decay!r}")
    return dataclasses.replace(config, modes=list(dict.fromkeys(modes)))


def check_semi_supervised_options(config):
    """`config` with `--semi-supervised` and its `--semi-option`s checked and resolved, or an `InputError`."""
    from kssl.errors import InputError
    from kssl.semi_supervised import SEMI_SUPERVISED, check_semi_supervised, semi_supervised_class

    if config.semi_supervised is None:
        if config.semi_options:
            raise InputError(f"--semi-option needs --semi-supervised {' or '.join(SEMI_SUPERVISED)}.")
        if config.semi_passes is not None:
            raise InputError(f"--semi-passes needs --semi-supervised {' or '.join(SEMI_SUPERVISED)}.")
        return config
    name = check_semi_supervised(config.semi_supervised)
    if config.adversarial != "none":
        raise InputError("--semi-supervised does not combine with --adversarial: choose one of them.")
    spec = SEMI_SUPERVISED[name]
    options = spec.resolved_options(spec.parse_options(dict(config.semi_options or {}), "--semi-option", name))
    try:
        semi_supervised_class(name)(**options)
    except ValueError as error:
        raise InputError(f"--semi-option of {name}: {error}") from None
    return dataclasses.replace(config, semi_supervised=name, semi_options=options)


def mode_options_of(config, mode) -> dict:
    """The options of `mode` among `config.mode_options` (each key goes to the modes that have it)."""
    from kssl.finetuning import MODES

    return {key: value for key, value in config.mode_options.items() if key in MODES[mode].options}


def recorded_config(config: RunConfig, pretraining: bool = True, **extra) -> dict:
    """What `config.json` holds: the resolved `RunConfig`, then a record of what it resolved
    to in this kssl version: the recipe, every view transform's parameters, the version."""
    import kssl
    from kssl.methods import method_class

    record = {**dataclasses.asdict(config), **extra, "kssl_version": kssl.__version__}
    if pretraining:
        views = method_class(config.method).view_augmentations(config.image_size, **config.method_options)
        record["recipe"] = dataclasses.asdict(pretraining_recipe(config)[0])
        record["view_augmentations"] = [view.get_config() for view in views]
    return record

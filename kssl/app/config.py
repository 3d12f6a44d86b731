"""What a run is: `RunConfig`, the one set of defaults of the command and the Python API,
and the checks of the method's and modes' options against their specs.

`config.json` is `RunConfig` as resolved for the run (every option's value, defaults
included), so `RunConfig.from_json` reproduces it. Imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

from kssl import defaults
from kssl.data.sources import parse_data_spec
from kssl.methods import method_spec

# RunConfig fields that do not change what a run computes: a resumed run may differ in them.
_NOT_RESULT_FIELDS = (
    "out",
    "overwrite",
    "checkpoint_every",
    "model_name",
    "version",
    "augment_on_device",
    "knn_monitor",
    "tensorboard",
    "export_formats",
    "data_service",
    "data_service_timeout",
)


@dataclasses.dataclass
class RunConfig:
    """Everything needed to reproduce a run (written to `config.json`)."""

    data: str = "digits"
    labels: list = dataclasses.field(default_factory=lambda: list(defaults.LABELS))
    select: str | None = None  # None: a stratified random draw; else a kssl.evaluation.label_selection method
    draws: int | None = None  # draws of each label budget; None: kssl.data.subsets.default_draws
    validation: str = "auto"  # "auto": choices on held-out labels (kssl.data.subsets.validation_folds); "none"
    semi_supervised: str | None = None  # a kssl.semi_supervised method, trained beside plain fine-tuning
    semi_options: dict = dataclasses.field(default_factory=dict)
    semi_passes: float | None = None  # passes over the unlabeled images; None: kssl.defaults.semi_supervised_steps
    unlabeled: str | None = None  # a folder of images without labels (default: the data folder's unlabeled/)
    image_size: int | None = None
    encoder: str | None = None
    width: float = defaults.ENCODER_WIDTH
    epochs: float | None = None
    budget: float | None = None
    batch_size: int = defaults.PRETRAIN_BATCH_SIZE
    method: str = defaults.METHOD
    method_options: dict = dataclasses.field(default_factory=dict)
    teacher: str | None = None  # the frozen teacher of --method distillation: a .keras file or keras:NAME
    recipe_kind: str = "auto"  # --recipe, one of RECIPES (config.json's "recipe" records the recipe used)
    temperature: float | None = None
    finetune_epochs: float = defaults.FINETUNE_EPOCHS
    seed: int = defaults.SEED
    out: str | None = None
    overwrite: bool = False
    model_name: str = "kssl"
    version: int = 1
    strategy: str = "default"
    precision: str | None = None
    jit_compile: bool | None = None
    checkpoint_every: int = defaults.CHECKPOINT_EVERY
    knn_monitor: bool | None = None  # None: on when the training images have classes
    skip_bad_images: bool = False
    weights: str | None = None
    modes: list = dataclasses.field(default_factory=lambda: list(defaults.MODES))
    mode_options: dict = dataclasses.field(default_factory=dict)
    lora_rank: int | None = None
    stage_decay: float = 1.0
    adversarial: str = "none"
    epsilon: float = defaults.ADVERSARIAL_EPSILON
    attack_steps: int = defaults.ATTACK_STEPS
    few_shot: list | None = None
    few_shot_episodes: int = defaults.FEW_SHOT_EPISODES
    stream: bool | None = None
    cache_size: int | None = None
    refresh_listing: bool = False
    augment_on_device: bool | None = None
    tensorboard: bool = True  # TensorBoard logs under <out>/logs (kssl.outputs.tensorboard_logs)
    export_formats: list = dataclasses.field(default_factory=list)  # besides the SavedModel: onnx, litert
    data_service: str | None = None  # a tf.data service dispatcher's HOST:PORT (kssl.data.service)
    data_service_timeout: float = (
        defaults.DATA_SERVICE_TIMEOUT
    )  # seconds to wait for a step from it before computing it here

    def resolved(self, default_encoder: bool = True) -> RunConfig:
        """Fills the defaults that need no data read (digits are 8x8, so 16 px loses
        nothing) and the output folder. Imports no TensorFlow: the defaults that depend
        on the machine or the images (precision, XLA, resolution, streaming) are filled
        once the strategy exists (`prepare`)."""
        config = dataclasses.replace(self)
        spec = parse_data_spec(config.data)
        if not isinstance(config.labels, (list, tuple)):
            config.labels = [config.labels]
        if config.image_size is None and spec.kind == "embedded":
            config.image_size = defaults.DIGITS_IMAGE_SIZE  # digits are 8x8: 16 px loses nothing
        if config.encoder is None and default_encoder:
            config.encoder = method_spec(config.method).encoder
        if config.out is None:
            name = f"{spec.short_name}-{config.method}-{config.encoder}-seed{config.seed}"
            config.out = str(pathlib.Path("saved_models") / name)
        return config

    @classmethod
    def from_json(cls, path) -> RunConfig:
        """The run recorded in a `config.json` (its `RunConfig` fields; the rest is a record).

        `kssl.app.jobs.run(RunConfig.from_json(path))` (or `kssl run --config PATH`) runs it
        again: the same data, options, recipe and seed give the same weights.
        """
        recorded = json.loads(pathlib.Path(path).read_text())
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in recorded.items() if key in names})

    def result_fields(self) -> dict:
        """The fields that determine what the run computes (what a resume must match)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_RESULT_FIELDS}


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


# --recipe: "auto" picks the recipe for a pretrained start when the encoder brings weights.
RECIPES = ("auto", "pretrained-start", "from-scratch")


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
    import pathlib

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

"""The table of a run's settings: `RunConfig`, one declared field per setting.

Each field is the setting's whole declaration: its default (a constant of `kssl.defaults`
where the Python API shares it), its command-line flag, help, type and choices, the group
of flags it belongs to, and whether it changes what a run computes. The command line
(`add_settings`), `config.json` (`RunConfig` itself), the resume check (`result_fields`)
and the docs' "Every flag" page (generated from the command line) all read it, so a new
setting is one field here. Imports no TensorFlow.

Examples:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    >>> add_settings(parser, "performance")
    >>> vars(parser.parse_args(["--strategy", "mirrored", "--no-jit-compile"]))
    {'strategy': 'mirrored', 'jit_compile': False}
    >>> RunConfig.__dataclass_fields__["epochs"].metadata["flags"]
    ('--epochs',)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

from kssl import defaults
from kssl.app.argument_types import (
    comma_separated,
    export_format_list,
    few_shot_spec,
    label_budget_list,
    positive,
    unit_fraction,
)
from kssl.data.sources import parse_data_spec
from kssl.evaluation.label_selection import METHODS as SELECTION_METHODS  # numpy only: --help stays instant
from kssl.finetuning import ATTACKS, MODES  # the registries import no TensorFlow
from kssl.methods import METHODS, method_spec
from kssl.runtime.precision import PRECISIONS  # imports no TensorFlow
from kssl.semi_supervised import SEMI_SUPERVISED
from kssl.training.recipes import PRETRAINED_START_ENCODER_RATE  # imports no TensorFlow

# --recipe: "auto" picks the recipe for a pretrained start when the encoder brings weights.
RECIPES = ("auto", "pretrained-start", "from-scratch")

# The groups of flags, in the order `--help` shows them, with their titles.
GROUPS = {
    "data": "data",
    "labels": "labels (which images are labeled, and how choices are made on them)",
    "model": "model",
    "pretraining": "pretraining",
    "finetuning": "fine-tuning",
    "evaluation": "evaluation",
    "performance": "performance",
    "output": "output",
}


def setting(default=None, *flags, group=None, help="", result=True, factory=None, yes_no=None, exclusive=None,
            python=(), **argparse_options):  # fmt: skip
    """A `RunConfig` field declared with its flag(s).

    Args:
        default: the value when the flag is not given (`factory` instead, for a list or dict).
        flags: the command-line flag(s); none for a setting the command does not take.
        group: its group of flags (`GROUPS`); `add_settings` adds a group's settings.
        help: the flag's one-line help.
        result: False for a setting that does not change what a run computes (the output
            folder, logs, checkpoint frequency): a resumed run may differ in it.
        yes_no: `(yes_help, no_help)` for a pair of exclusive flags setting True or False
            (unset: the default, None: automatic); `flags` is then `(yes_flag, no_flag)`.
        exclusive: a name shared by settings whose flags exclude each other.
        python: where the Python API takes the same setting, as `"function(keyword)"` of a
            public `kssl` function (`"pretrain(epochs)"`); the docs' flag tables show it, and
            a test checks the keyword exists and has the same default.
        argparse_options: `type`, `choices`, `action`, `metavar`, ... for `add_argument`.
    """
    metadata = dict(
        flags=flags,
        group=group,
        help=help,
        result=result,
        yes_no=yes_no,
        exclusive=exclusive,
        python=(python,) if isinstance(python, str) else tuple(python),
        argparse=argparse_options,
    )
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_WITH_TEMPERATURE = ", ".join(name for name, spec in METHODS.items() if "temperature" in spec.options)


@dataclasses.dataclass
class RunConfig:
    """Everything needed to reproduce a run (written to `config.json`): one field per setting."""

    data: str = setting("digits", "--data", group="data", python="load(spec)",
                        help="a folder root/<class>/<image>, tfds:NAME or tfds:NAME:SPLIT (e.g. "
                        "tfds:cifar10:train[:10%%]), or 'digits' (default)")  # fmt: skip
    labels: list = setting(
        None, "--labels", group="labels", factory=lambda: list(defaults.LABELS), type=label_budget_list,
        python="label_subset(labels)",
        help="labels for fine-tuning: a fraction (0.01) or a count per class (10); several, comma-separated, give a "
        f"plot of accuracy against the number of labels (default {','.join(map(str, defaults.LABELS))})",
    )  # fmt: skip
    select: str | None = setting(
        None, "--select", group="labels", python="select_for_labeling(method)", choices=list(SELECTION_METHODS),
        help="label the images this method picks on the pretrained encoder's features (typiclust, kcenter, random; "
        "as many as --labels would draw), instead of a stratified random draw: what `kssl select` would have you "
        "label, simulated on labeled data",
    )  # fmt: skip
    draws: int | None = setting(
        None, "--draws", group="labels", type=positive(int),
        help="independent draws of each label budget (seeds --seed, --seed+1, ...): the report and the plot give "
        "their mean and 95%% interval, metrics.json every draw (default: 3 for budgets of up to 10 labels per "
        "class, 1 above)",
    )  # fmt: skip
    validation: str = setting(
        "auto", "--validation", group="labels", choices=["auto", "none"],
        help="auto (default): choose the best mode and the exported classifier on labeled images held out of each "
        "draw (a fifth of each class; k-fold when a class has 2-4 labels; impossible with 1), never on the test "
        "split; none: skip it (faster; the first of --modes is exported)",
    )  # fmt: skip
    semi_supervised: str | None = setting(
        None, "--semi-supervised", group="finetuning", choices=list(SEMI_SUPERVISED),
        python="finetune(semi_supervised)",
        help="also fine-tune every mode with the unlabeled images (the train split without its labels, and any "
        "--unlabeled images): fixmatch (pseudo-labels), flexmatch or freematch (with adaptive thresholds), distill "
        "(a student of the fine-tuned classifier); reported beside plain fine-tuning, and exported if it validates "
        "better (listed below)",
    )  # fmt: skip
    semi_options: dict = setting(
        None, "--semi-option", group="finetuning", factory=dict, action="append", metavar="KEY=VALUE",
        python="finetune(semi_supervised_options)",
        help="an option of --semi-supervised (listed below, e.g. threshold=0.9 for fixmatch); repeatable",
    )  # fmt: skip
    semi_passes: float | None = setting(
        None, "--semi-passes", group="finetuning", python="finetune(unlabeled_passes)", type=positive(float),
        help=f"--semi-supervised length in passes over the unlabeled images (default "
        f"{defaults.SEMI_SUPERVISED_PASSES}, but at least the steps of --finetune-epochs)",
    )  # fmt: skip
    unlabeled: str | None = setting(
        None, "--unlabeled", group="finetuning", python="finetune(unlabeled_set)",
        help="a folder of images without labels (any layout) for pretraining and --semi-supervised (default: the "
        "data folder's unlabeled/ subfolder, beside its class folders, if it has one)",
    )  # fmt: skip
    image_size: int | None = setting(
        None, "--image-size", group="data", python="load(image_size)", type=positive(int),
        help="side of the training views (default: from the data: 16 for digits, small images keep their own size, "
        "photos 96 on a CPU and 160 on a GPU)",
    )  # fmt: skip
    encoder: str | None = setting(
        None, "--encoder", group="model", python="build_encoder(name)",
        help="conv4 (the smallest: the few-shot literature's Conv-4), resnet10, resnet18, resnet34, resnet50, "
        "vit<depth> such as vit6, or a keras.applications backbone such as keras:ResNet50V2 or keras:EfficientNetB0 "
        "(default: the method's, resnet18, or vit6 for mae)",
    )  # fmt: skip
    width: float = setting(
        defaults.ENCODER_WIDTH, "--width", group="model", python="build_encoder(width)", type=positive(float),
        help=f"encoder width multiplier of ResNet's 64-512 or ViT-Base's 768 channels (default "
        f"{defaults.ENCODER_WIDTH})",
    )  # fmt: skip
    epochs: float | None = setting(
        None, "--epochs", group="pretraining", python="pretrain(epochs)", exclusive="length", type=positive(float),
        help=f"pretraining epochs (default: {defaults.PRETRAIN_EPOCHS}, but at least {defaults.MIN_PRETRAIN_STEPS:,} "
        f"steps for a small data set; {defaults.DIGITS_PRETRAIN_EPOCHS} for digits; printed with its reason)",
    )  # fmt: skip
    budget: float | None = setting(None, "--budget", group="pretraining", exclusive="length", type=positive(float),
                                   python="pretrain(budget_minutes)",
                                   help="pretraining minutes, instead of --epochs")  # fmt: skip
    batch_size: int = setting(defaults.PRETRAIN_BATCH_SIZE, "--batch-size", group="model", type=positive(int),
                              python="pretrain(batch_size)",
                              help=f"pretraining batch (default {defaults.PRETRAIN_BATCH_SIZE})")  # fmt: skip
    method: str = setting(defaults.METHOD, "--method", group="pretraining", type=str.lower, choices=list(METHODS),
                          python="pretrain(method)",
                          help=f"the self-supervised method (default {defaults.METHOD}; listed below)")  # fmt: skip
    method_options: dict = setting(
        None, "--method-option", group="pretraining", factory=dict, action="append", metavar="KEY=VALUE",
        python="pretrain(method_options)",
        help="an option of the method (listed below, e.g. temperature=0.1 or queue_size=1024); repeatable",
    )  # fmt: skip
    teacher: str | None = setting(
        None, "--teacher", group="pretraining", python="pretrain(teacher)", metavar="MODEL",
        help="the frozen teacher of --method distillation: a .keras image model (any input size: used at the view "
        "size), a run folder, or keras:NAME with ImageNet weights",
    )  # fmt: skip
    recipe_kind: str = setting(  # config.json's "recipe" records the recipe used
        "auto", "--recipe", group="pretraining", python="pretrain(recipe)", choices=list(RECIPES),
        help="the pretraining recipe (default auto: pretrained-start when --encoder brings weights, a .keras model, "
        f"keras_hub:PRESET or --weights: the encoder at {PRETRAINED_START_ENCODER_RATE:g} of the heads' rate, its "
        "batch norm frozen, a 10%% warm-up, no local crops; else from-scratch, the method's own)",
    )  # fmt: skip
    temperature: float | None = setting(
        None, "--temperature", group="pretraining", python="pretrain(temperature)", type=positive(float),
        help=f"the same as --method-option temperature=T ({_WITH_TEMPERATURE})",
    )  # fmt: skip
    finetune_epochs: float = setting(
        defaults.FINETUNE_EPOCHS, "--finetune-epochs", group="finetuning", type=positive(float),
        python="finetune(epochs)",
        help=f"fine-tuning passes over the labeled images (default {defaults.FINETUNE_EPOCHS:g})",
    )  # fmt: skip
    seed: int = setting(defaults.SEED, "--seed", group="data", python=("pretrain(seed)", "finetune(seed)"), type=int,
                        help=f"seed of data order, views and weights (default {defaults.SEED})")  # fmt: skip
    out: str | None = setting(None, "--out", group="output", result=False,
                              help="output folder (default saved_models/<run-name>)")  # fmt: skip
    overwrite: bool = setting(False, "--overwrite", group="output", result=False, action="store_true",
                              help="replace an existing --out folder")  # fmt: skip
    # TF Serving's model name (`kssl export --model-name`)
    model_name: str = setting("kssl", result=False, python="export_saved_model(model_name)")
    version: int = setting(1, result=False)  # the served version (`kssl export --version`)
    strategy: str = setting(
        "default", "--strategy", group="performance", choices=list(defaults.STRATEGY_NAMES),
        python=("pretrain(strategy)", "finetune(strategy)"),
        help="tf.distribute strategy: mirrored = all local GPUs; multiworker reads TF_CONFIG (default: default)",
    )  # fmt: skip
    precision: str | None = setting(
        None, "--precision", group="performance", choices=list(PRECISIONS),
        help="dtype policy (default: mixed_float16 on GPU; mixed_bfloat16 on CPUs with native bfloat16, "
        "AVX512-BF16 or AMX; float32 on other CPUs)",
    )  # fmt: skip
    jit_compile: bool | None = setting(
        None, "--jit-compile", group="performance", action=argparse.BooleanOptionalAction,
        python=("pretrain(jit_compile)", "finetune(jit_compile)"),
        help="compile train steps with XLA (default: on with one GPU; off on CPUs and with several replicas)",
    )  # fmt: skip
    checkpoint_every: int = setting(
        defaults.CHECKPOINT_EVERY, "--checkpoint-every", group="output", result=False, type=positive(int),
        python=("pretrain(checkpoint_every)", "finetune(checkpoint_every)"),
        help="checkpoint training every this many steps; the same command resumes a killed run (default "
        f"{defaults.CHECKPOINT_EVERY})",
    )  # fmt: skip
    knn_monitor: bool | None = setting(  # None: on when the training images have classes
        None, "--knn-monitor", "--no-knn-monitor", group="pretraining", result=False,
        yes_no=("measure kNN accuracy of held-out training images while pretraining (default: on when the images "
                "have classes; labels are used by the monitor only)", "do not"),
    )  # fmt: skip
    skip_bad_images: bool = setting(False, "--skip-bad-images", group="data", action="store_true",
                                    python="from_folder(skip_bad_images)",
                                    help="skip image files that cannot be decoded (with a warning) instead of "
                                    "stopping")  # fmt: skip
    weights: str | None = setting(
        None, "--weights", group="model", python="build_encoder(weights)",
        help="start a keras: backbone from 'imagenet' or a weights file PATH, then pretrain on your images "
        "(default: random weights)",
    )  # fmt: skip
    modes: list = setting(
        None, "--modes", group="finetuning", factory=lambda: list(defaults.MODES), type=comma_separated,
        python="finetune(mode)",
        help=f"fine-tuning modes, one or several comma-separated: {','.join(MODES)} (default "
        f"{','.join(defaults.MODES)}; listed below); each is run pretrained and from scratch at every label budget",
    )  # fmt: skip
    mode_options: dict = setting(
        None, "--mode-option", group="finetuning", factory=dict, action="append", metavar="KEY=VALUE",
        python="finetune(mode_options)",
        help="an option of the chosen modes (listed below, e.g. rank=4 for lora); repeatable",
    )  # fmt: skip
    lora_rank: int | None = setting(None, "--lora-rank", group="finetuning", type=positive(int),
                                    help="the same as --mode-option rank=N")  # fmt: skip
    stage_decay: float = setting(
        defaults.STAGE_DECAY, "--stage-decay", group="finetuning", python="finetune(stage_decay)", type=positive(float),
        help="discriminative learning rates: each earlier stage trains at this factor of the next one's rate (e.g. "
        "0.5; default 1, off)",
    )  # fmt: skip
    adversarial: str = setting(
        "none", "--adversarial", group="finetuning", python="AdversarialTraining(attack)", choices=["none", *ATTACKS],
        help="adversarial fine-tuning on FGSM or PGD examples (default none); the report adds PGD-10 accuracy",
    )  # fmt: skip
    epsilon: float = setting(defaults.ADVERSARIAL_EPSILON, "--epsilon", group="finetuning", type=unit_fraction,
                             python="AdversarialTraining(epsilon)",
                             help="attack radius in pixels of [0, 1] (default 8/255)")  # fmt: skip
    attack_steps: int = setting(defaults.ATTACK_STEPS, "--attack-steps", group="finetuning", type=positive(int),
                                python="AdversarialTraining(steps)",
                                help=f"PGD steps in training (default {defaults.ATTACK_STEPS})")  # fmt: skip
    few_shot: list | None = setting(
        None, "--few-shot", group="evaluation", type=few_shot_spec,
        help="also N-way K-shot accuracy on the test split, e.g. 5x1,5x5 (nearest class mean and logistic "
        "regression, with 95%% intervals)",
    )  # fmt: skip
    few_shot_episodes: int = setting(
        defaults.FEW_SHOT_EPISODES, "--few-shot-episodes", group="evaluation", type=positive(int),
        python="few_shot_accuracy(episodes)",
        help=f"episodes of each --few-shot setting (default {defaults.FEW_SHOT_EPISODES}, the usual count; fewer "
        "widen the interval)",
    )  # fmt: skip
    stream: bool | None = setting(
        None, "--stream", "--in-memory", group="data",
        yes_no=("read and decode images from disk as training goes (default: only when the decoded images would "
                "take more than a quarter of the RAM)", "decode every image into memory first"),
    )  # fmt: skip
    cache_size: int | None = setting(
        None, "--cache-size", group="data", type=positive(int),
        help="first save downscaled JPEG copies of a folder's images with this shorter side (px) in ~/.cache/kssl, "
        "and train from them: for photos far larger than the training size",
    )  # fmt: skip
    refresh_listing: bool = setting(False, "--refresh-listing", group="data", action="store_true",
                                    help="list the folder again instead of reusing its saved listing")  # fmt: skip
    augment_on_device: bool | None = setting(
        None, "--augment-on-device", "--augment-on-host", group="data", result=False,
        python="pretrain(augment_on_device)",
        yes_no=("crop views on the host and finish them (flip, colour jitter, grayscale, blur) in the train step on "
                "the accelerator (default: when there is a GPU)", "compute the whole view augmentation in the host's "
                "tf.data pipeline (default without a GPU)"),
    )  # fmt: skip
    tensorboard: bool = setting(
        True, "--no-tensorboard", group="output", result=False, action="store_false",
        help="write no TensorBoard logs (default: scalars, the augmentation preview and the test embeddings under "
        "OUT/logs/)",
    )  # fmt: skip
    export_formats: list = setting(
        None, "--export-formats", group="output", factory=list, result=False, type=export_format_list,
        python="export_file(format)",
        help="also export the classifier as onnx and/or litert files beside the SavedModel, in OUT/serving/ "
        "(comma-separated; onnx needs tf2onnx)",
    )  # fmt: skip
    data_service: str | None = setting(
        None, "--data-service", group="pretraining", python="pretrain(data_service)", result=False, metavar="HOST:PORT",
        help="compute the pretraining batches on a tf.data service (`kssl data-service`): the same batches, on "
        "other CPU machines that can read the data folder at the same path",
    )  # fmt: skip
    data_service_timeout: float = setting(
        defaults.DATA_SERVICE_TIMEOUT, "--data-service-timeout", group="pretraining", result=False,
        python="pretrain(data_service_timeout)",
        type=positive(float), metavar="SECONDS",
        help=f"compute a step here when the service has not sent it within this time (default "
        f"{defaults.DATA_SERVICE_TIMEOUT:g}; the first batch may take at least 30 s: the workers build the pipeline "
        "first)",
    )  # fmt: skip

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
        not_results = not_result_fields()
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in not_results}


def add_settings(parser, *groups, leave_out=()):
    """Adds the flags of `RunConfig`'s settings in `groups` (`GROUPS`) to `parser`, one titled
    section per group, leaving out the settings named in `leave_out`."""
    by_group = {group: [] for group in groups}
    for field in dataclasses.fields(RunConfig):
        if field.metadata.get("group") in by_group and field.metadata["flags"] and field.name not in leave_out:
            by_group[field.metadata["group"]].append(field)
    for group, fields in by_group.items():
        section, exclusive = parser.add_argument_group(GROUPS[group]), {}
        for field in fields:
            meta = field.metadata
            if meta["exclusive"] and meta["exclusive"] not in exclusive:
                exclusive[meta["exclusive"]] = section.add_mutually_exclusive_group()
            target = exclusive.get(meta["exclusive"], section)
            if meta["yes_no"]:
                pair = section.add_mutually_exclusive_group()
                (yes, no), (yes_help, no_help) = meta["flags"], meta["yes_no"]
                pair.add_argument(yes, dest=field.name, action="store_const", const=True, default=argparse.SUPPRESS,
                                  help=yes_help)  # fmt: skip
                pair.add_argument(no, dest=field.name, action="store_const", const=False, help=no_help)
                continue
            target.add_argument(*meta["flags"], dest=field.name, help=meta["help"], **meta["argparse"])


def run_default(name: str):
    """`RunConfig`'s default of a setting (e.g. for another command's flag of the same meaning).

    Examples:
        >>> run_default("model_name"), run_default("modes")
        ('kssl', ['full'])
    """
    field = RunConfig.__dataclass_fields__[name]
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def not_result_fields() -> tuple:
    """The settings that do not change what a run computes: a resumed run may differ in them."""
    return tuple(field.name for field in dataclasses.fields(RunConfig) if not field.metadata.get("result", True))

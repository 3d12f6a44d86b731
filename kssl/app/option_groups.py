"""The command line's groups of flags, shared by the commands that take them (data, model,
pretraining, fine-tuning, performance, output), and the epilogs that list the registered
methods and modes. Importing it imports no TensorFlow."""

from __future__ import annotations

import argparse

from kssl.app.argument_types import (
    comma_separated,
    label_budget_list,
    positive,
    run_default,
    unit_fraction,
    yes_or_no,
)


def finetuning_options(parser):
    from kssl.finetuning import ATTACKS, MODES  # the registry imports no TensorFlow

    parser.add_argument(
        "--finetune-epochs",
        type=positive(float),
        help=f"fine-tuning passes over the labeled images (default {run_default('finetune_epochs'):g})",
    )
    parser.add_argument(
        "--modes",
        type=comma_separated,
        help=f"fine-tuning modes, one or several comma-separated: {','.join(MODES)} (default "
        f"{','.join(run_default('modes'))}; listed below); each is run pretrained and from scratch at every "
        "label budget",
    )
    parser.add_argument(
        "--mode-option",
        dest="mode_options",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the chosen modes (listed below, e.g. rank=4 for lora); repeatable",
    )
    parser.add_argument("--lora-rank", type=positive(int), help="the same as --mode-option rank=N")
    parser.add_argument(
        "--stage-decay",
        type=positive(float),
        help="discriminative learning rates: each earlier stage trains at this factor of the next one's rate "
        "(e.g. 0.5; default 1, off)",
    )
    parser.add_argument(
        "--adversarial",
        choices=["none", *ATTACKS],
        help="adversarial fine-tuning on FGSM or PGD examples (default none); the report adds PGD-10 accuracy",
    )
    parser.add_argument("--epsilon", type=unit_fraction, help="attack radius in pixels of [0, 1] (default 8/255)")
    parser.add_argument(
        "--attack-steps", type=positive(int), help=f"PGD steps in training (default {run_default('attack_steps')})"
    )
    from kssl.semi_supervised import SEMI_SUPERVISED  # the registry imports no TensorFlow

    parser.add_argument(
        "--semi-supervised",
        choices=list(SEMI_SUPERVISED),
        help="also fine-tune every mode with the unlabeled images (the train split without its labels, and any "
        "--unlabeled images): fixmatch (pseudo-labels), flexmatch or freematch (with adaptive thresholds), distill "
        "(a student "
        "of the fine-tuned classifier); "
        "reported beside plain fine-tuning, and exported if it validates better (listed below)",
    )
    parser.add_argument(
        "--semi-option",
        dest="semi_options",
        action="append",
        metavar="KEY=VALUE",
        help="an option of --semi-supervised (listed below, e.g. threshold=0.9 for fixmatch); repeatable",
    )
    from kssl.defaults import SEMI_SUPERVISED_PASSES

    parser.add_argument(
        "--semi-passes",
        type=positive(float),
        help=f"--semi-supervised length in passes over the unlabeled images (default {SEMI_SUPERVISED_PASSES}, but "
        "at least the steps of --finetune-epochs)",
    )
    parser.add_argument(
        "--unlabeled",
        help="a folder of images without labels (any layout) for pretraining and --semi-supervised (default: the "
        "data folder's unlabeled/ subfolder, beside its class folders, if it has one)",
    )


def options_lines(spec) -> list:
    return [f"      {key}={option.default}  {option.help}" for key, option in spec.options.items()]


def modes_epilog() -> str:
    from kssl.finetuning import MODES  # the registry imports no TensorFlow

    width = max(len(name) for name in MODES)
    lines = [
        line for name, spec in MODES.items() for line in [f"  {name:<{width}}  {spec.summary}", *options_lines(spec)]
    ]
    from kssl.semi_supervised import SEMI_SUPERVISED

    semi = [line for name, spec in SEMI_SUPERVISED.items()
            for line in [f"  {name:<{width}}  {spec.summary}", *options_lines(spec)]]  # fmt: skip
    return (
        "fine-tuning modes (--modes) and their options (--mode-option KEY=VALUE):\n"
        + "\n".join(lines)
        + "\n\nsemi-supervised fine-tuning (--semi-supervised) and its options (--semi-option KEY=VALUE):\n"
        + "\n".join(semi)
    )


def common_options(parser):
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own C++ log lines too (hidden by default)"
    )


def data_options(parser, labels=True):
    from kssl.evaluation.label_selection import METHODS as SELECTION_METHODS  # numpy only: --help stays instant

    parser.add_argument(
        "--data",
        help="a folder root/<class>/<image>, tfds:NAME or tfds:NAME:SPLIT (e.g. tfds:cifar10:train[:10%%]), "
        "or 'digits' (default)",
    )
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip image files that cannot be decoded (with a warning) instead of stopping",
    )
    if labels:
        parser.add_argument(
            "--labels",
            type=label_budget_list,
            help="labels for fine-tuning: a fraction (0.01) or a count per class (10); several, comma-separated, "
            "give a plot of accuracy against the number of labels "
            f"(default {','.join(map(str, run_default('labels')))})",
        )
        parser.add_argument(
            "--select",
            choices=list(SELECTION_METHODS),
            help="label the images this method picks on the pretrained encoder's features (typiclust, kcenter, random; "
            "as many as --labels would draw), instead of a stratified random draw: what `kssl select` would have "
            "you label, simulated on labeled data",
        )
        parser.add_argument(
            "--draws",
            type=positive(int),
            help="independent draws of each label budget (seeds --seed, --seed+1, ...): the report and the plot give "
            "their mean and 95%% interval, metrics.json every draw (default: 3 for budgets of up to 10 labels per "
            "class, 1 above)",
        )
        parser.add_argument(
            "--validation",
            choices=["auto", "none"],
            help="auto (default): choose the best mode and the exported classifier on labeled images held out of "
            "each draw (a fifth of each class; k-fold when a class has 2-4 labels; impossible with 1), never on the "
            "test split; none: skip it (faster; the first of --modes is exported)",
        )
    parser.add_argument(
        "--image-size",
        type=positive(int),
        help="side of the training views (default: from the data: 16 for digits, small images keep their own size, "
        "photos 96 on a CPU and 160 on a GPU)",
    )
    yes_or_no(
        parser,
        "stream",
        ("--stream", "read and decode images from disk as training goes (default: only when the decoded images "
         "would take more than a quarter of the RAM)"),
        ("--in-memory", "decode every image into memory first"),
    )  # fmt: skip
    yes_or_no(
        parser,
        "augment_on_device",
        ("--augment-on-device", "crop views on the host and finish them (flip, colour jitter, grayscale, blur) in "
         "the train step on the accelerator (default: when there is a GPU)"),
        ("--augment-on-host", "compute the whole view augmentation in the host's tf.data pipeline (default "
         "without a GPU)"),
    )  # fmt: skip
    parser.add_argument(
        "--cache-size",
        type=positive(int),
        help="first save downscaled JPEG copies of a folder's images with this shorter side (px) in ~/.cache/kssl, "
        "and train from them: for photos far larger than the training size",
    )
    parser.add_argument(
        "--refresh-listing", action="store_true", help="list the folder again instead of reusing its saved listing"
    )
    parser.add_argument(
        "--seed", type=int, help=f"seed of data order, views and weights (default {run_default('seed')})"
    )


def model_options(parser):
    parser.add_argument(
        "--encoder",
        help="conv4 (the smallest: the few-shot literature's Conv-4), resnet10, resnet18, resnet34, resnet50, "
        "vit<depth> such as vit6, or a keras.applications "
        "backbone such as keras:ResNet50V2 or keras:EfficientNetB0 (default: the method's, resnet18, or vit6 for mae)",
    )
    parser.add_argument(
        "--weights",
        help="start a keras: backbone from 'imagenet' or a weights file PATH, then pretrain on your images "
        "(default: random weights)",
    )
    parser.add_argument(
        "--width",
        type=positive(float),
        help=f"encoder width multiplier of ResNet's 64-512 or ViT-Base's 768 channels (default {run_default('width')})",
    )
    parser.add_argument(
        "--batch-size", type=positive(int), help=f"pretraining batch (default {run_default('batch_size')})"
    )


def pretrain_options(parser):
    from kssl import defaults
    from kssl.app.config import RECIPES  # imports no TensorFlow
    from kssl.methods import METHODS  # the registry imports no TensorFlow
    from kssl.training.recipes import PRETRAINED_START_ENCODER_RATE  # imports no TensorFlow

    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs",
        type=positive(float),
        help=f"pretraining epochs (default: {defaults.PRETRAIN_EPOCHS}, but at least {defaults.MIN_PRETRAIN_STEPS:,} "
        f"steps for a small data set; {defaults.DIGITS_PRETRAIN_EPOCHS} for digits; printed with its reason)",
    )
    length.add_argument("--budget", type=positive(float), help="pretraining minutes, instead of --epochs")
    yes_or_no(
        parser,
        "knn_monitor",
        ("--knn-monitor", "measure kNN accuracy of held-out training images while pretraining (default: on when "
                          "the images have classes; labels are used by the monitor only)"),
        ("--no-knn-monitor", "do not"),
    )  # fmt: skip
    parser.add_argument(
        "--method",
        type=str.lower,
        choices=list(METHODS),
        help=f"the self-supervised method (default {run_default('method')}; listed below)",
    )
    parser.add_argument(
        "--method-option",
        dest="method_options",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the method (listed below, e.g. temperature=0.1 or queue_size=1024); repeatable",
    )
    parser.add_argument(
        "--teacher",
        metavar="MODEL",
        help="the frozen teacher of --method distillation: a .keras image model (any input size: used at the "
        "view size), a run folder, or keras:NAME with ImageNet weights",
    )
    parser.add_argument(
        "--recipe",
        dest="recipe_kind",
        choices=list(RECIPES),
        help="the pretraining recipe (default auto: pretrained-start when --encoder brings weights, a .keras "
        f"model, keras_hub:PRESET or --weights: the encoder at {PRETRAINED_START_ENCODER_RATE:g} of the heads' rate, "
        "its batch norm frozen, a 10%% warm-up, no local crops; else from-scratch, the method's own)",
    )
    with_temperature = [name for name, spec in METHODS.items() if "temperature" in spec.options]
    parser.add_argument(
        "--temperature",
        type=positive(float),
        help=f"the same as --method-option temperature=T ({', '.join(with_temperature)})",
    )
    parser.add_argument(
        "--config",
        help="run again what a run's config.json records (options given here replace its values)",
    )
    parser.add_argument(
        "--data-service",
        metavar="HOST:PORT",
        help="compute the pretraining batches on a tf.data service (`kssl data-service`): the same batches, "
        "on other CPU machines that can read the data folder at the same path",
    )
    parser.add_argument(
        "--data-service-timeout",
        type=positive(float),
        metavar="SECONDS",
        help="compute a step here when the service has not sent it within this time (default 60; the first "
        "batch may take at least 30 s: the workers build the pipeline first)",
    )


def performance_options(parser):
    from kssl.defaults import STRATEGY_NAMES
    from kssl.runtime.precision import PRECISIONS  # imports no TensorFlow

    parser.add_argument(
        "--strategy",
        choices=list(STRATEGY_NAMES),
        help="tf.distribute strategy: mirrored = all local GPUs; multiworker reads TF_CONFIG (default: default)",
    )
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help="dtype policy (default: mixed_float16 on GPU; mixed_bfloat16 on CPUs with native bfloat16, "
        "AVX512-BF16 or AMX; float32 on other CPUs)",
    )
    parser.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        help="compile train steps with XLA (default: on with one GPU; off on CPUs and with several replicas)",
    )


def output_options(parser, default="saved_models/<run-name>"):
    parser.add_argument("--out", help=f"output folder (default {default})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument(
        "--checkpoint-every",
        type=positive(int),
        help="checkpoint training every this many steps; the same command resumes a killed run "
        f"(default {run_default('checkpoint_every')})",
    )
    parser.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="write no TensorBoard logs (default: scalars, the augmentation preview and the test embeddings "
        "under OUT/logs/)",
    )


def methods_epilog() -> str:
    from kssl.methods import METHODS  # the registry imports no TensorFlow

    width = max(len(name) for name in METHODS)
    lines = [
        line for name, spec in METHODS.items() for line in [f"  {name:<{width}}  {spec.summary}", *options_lines(spec)]
    ]
    return "pretraining methods (--method) and their options (--method-option KEY=VALUE):\n" + "\n".join(lines)

"""The `kssl` command: thin over `kssl.app.jobs`.

Parsing the command line imports no TensorFlow, so `kssl --help` answers at once;
`kssl.app.jobs` (data, training, plots, and TensorFlow with them) is imported only when a
command runs. TensorFlow's C++ logs are filtered out of the output unless `--verbose`
(see `kssl.quiet`). Input kssl cannot use (`kssl.errors.InputError`) ends in a one-line
message and exit code 2; any other error is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback


def _default(name: str):
    """`RunConfig`'s default of a field: the one set of defaults (`kssl.defaults`)."""
    import dataclasses

    from kssl.app.config import RunConfig  # imports no TensorFlow

    field = RunConfig.__dataclass_fields__[name]
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def _labels(text: str) -> list:
    return [_label_budget(part) for part in text.split(",")]


def _label_budget(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction like 0.01 or a count per class like 10, got {text!r}"
        ) from None
    if value.is_integer() and value >= 1:
        return int(value)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction of labels must be in (0, 1], got {text}")
    return value


def _yes_or_no(parser, dest, yes, no):
    """Two exclusive flags, `yes = (flag, help)` and `no`, setting `dest` to True or False. Unset, `dest` is
    absent (`RunConfig`'s default, None: automatic; under `--config`, the recorded value)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(yes[0], dest=dest, action="store_const", const=True, default=argparse.SUPPRESS, help=yes[1])
    group.add_argument(no[0], dest=dest, action="store_const", const=False, help=no[1])


_ANY_SIZE_HELP = (
    "the view size, for a model that takes images of any size (such as an ImageNet model saved with a "
    "None x None input); a model of one size takes its own"
)

# Counts (steps, images, epochs) fit TensorFlow's int32 shapes and counters with room to spare.
_LARGEST = 2**31 - 1


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        if not math.isfinite(value) or value > _LARGEST:  # inf passed and overflowed later
            raise argparse.ArgumentTypeError(f"must be a finite number up to {_LARGEST:,}, got {text}")
        return value

    return parse


def _names(text: str) -> list:
    return [part.strip().lower() for part in text.split(",") if part.strip()]


def _in_range(kind, low, high, expected: str, outside: str):
    """An argparse type: `kind(text)` in [low, high] (NaN is not), else a message saying what was expected."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{outside}, got {text}")
        return value

    return parse


_port = _in_range(int, 0, 65535, "a port number", "a port is 0 to 65535 (0: any free one)")
_fraction = _in_range(float, 0, 1, "a number in [0, 1]", "must be in [0, 1] (pixels are in [0, 1]; 8/255 = 0.031)")
_cosine = _in_range(
    float, -1, 1, "a cosine similarity in [-1, 1]", "a cosine similarity is in [-1, 1] (near-duplicates: 0.95)"
)


def _export_formats(text):
    from kssl.defaults import EXPORT_FORMATS  # imports no TensorFlow

    names = _names(text)
    unknown = [name for name in names if name not in EXPORT_FORMATS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(EXPORT_FORMATS)}, got {text!r}")
    return names


def _few_shot(text):
    from kssl.few_shot import parse_few_shot  # imports no TensorFlow

    try:
        return parse_few_shot(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _finetuning_options(parser):
    from kssl.finetuning import ATTACKS, MODES  # the registry imports no TensorFlow

    parser.add_argument(
        "--finetune-epochs",
        type=_positive(float),
        help=f"fine-tuning passes over the labeled images (default {_default('finetune_epochs'):g})",
    )
    parser.add_argument(
        "--modes",
        type=_names,
        help=f"fine-tuning modes, one or several comma-separated: {','.join(MODES)} (default "
        f"{','.join(_default('modes'))}; listed below); each is run pretrained and from scratch at every label budget",
    )
    parser.add_argument(
        "--mode-option",
        dest="mode_options",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the chosen modes (listed below, e.g. rank=4 for lora); repeatable",
    )
    parser.add_argument("--lora-rank", type=_positive(int), help="the same as --mode-option rank=N")
    parser.add_argument(
        "--stage-decay",
        type=_positive(float),
        help="discriminative learning rates: each earlier stage trains at this factor of the next one's rate "
        "(e.g. 0.5; default 1, off)",
    )
    parser.add_argument(
        "--adversarial",
        choices=["none", *ATTACKS],
        help="adversarial fine-tuning on FGSM or PGD examples (default none); the report adds PGD-10 accuracy",
    )
    parser.add_argument("--epsilon", type=_fraction, help="attack radius in pixels of [0, 1] (default 8/255)")
    parser.add_argument(
        "--attack-steps", type=_positive(int), help=f"PGD steps in training (default {_default('attack_steps')})"
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
        type=_positive(float),
        help=f"--semi-supervised length in passes over the unlabeled images (default {SEMI_SUPERVISED_PASSES}, but "
        "at least the steps of --finetune-epochs)",
    )
    parser.add_argument(
        "--unlabeled",
        help="a folder of images without labels (any layout) for pretraining and --semi-supervised (default: the "
        "data folder's unlabeled/ subfolder, beside its class folders, if it has one)",
    )


def _options_lines(spec) -> list:
    return [f"      {key}={option.default}  {option.help}" for key, option in spec.options.items()]


def _modes_epilog() -> str:
    from kssl.finetuning import MODES  # the registry imports no TensorFlow

    width = max(len(name) for name in MODES)
    lines = [
        line for name, spec in MODES.items() for line in [f"  {name:<{width}}  {spec.summary}", *_options_lines(spec)]
    ]
    from kssl.semi_supervised import SEMI_SUPERVISED

    semi = [line for name, spec in SEMI_SUPERVISED.items()
            for line in [f"  {name:<{width}}  {spec.summary}", *_options_lines(spec)]]  # fmt: skip
    return (
        "fine-tuning modes (--modes) and their options (--mode-option KEY=VALUE):\n"
        + "\n".join(lines)
        + "\n\nsemi-supervised fine-tuning (--semi-supervised) and its options (--semi-option KEY=VALUE):\n"
        + "\n".join(semi)
    )


def _common_options(parser):
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own C++ log lines too (hidden by default)"
    )


def _data_options(parser, labels=True):
    from kssl.selection import METHODS as SELECTION_METHODS  # numpy only: --help stays instant

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
            type=_labels,
            help="labels for fine-tuning: a fraction (0.01) or a count per class (10); several, comma-separated, "
            f"give a plot of accuracy against the number of labels (default {','.join(map(str, _default('labels')))})",
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
            type=_positive(int),
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
        type=_positive(int),
        help="side of the training views (default: from the data: 16 for digits, small images keep their own size, "
        "photos 96 on a CPU and 160 on a GPU)",
    )
    _yes_or_no(
        parser,
        "stream",
        ("--stream", "read and decode images from disk as training goes (default: only when the decoded images "
         "would take more than a quarter of the RAM)"),
        ("--in-memory", "decode every image into memory first"),
    )  # fmt: skip
    _yes_or_no(
        parser,
        "augment_on_device",
        ("--augment-on-device", "crop views on the host and finish them (flip, colour jitter, grayscale, blur) in "
         "the train step on the accelerator (default: when there is a GPU)"),
        ("--augment-on-host", "compute the whole view augmentation in the host's tf.data pipeline (default "
         "without a GPU)"),
    )  # fmt: skip
    parser.add_argument(
        "--cache-size",
        type=_positive(int),
        help="first save downscaled JPEG copies of a folder's images with this shorter side (px) in ~/.cache/kssl, "
        "and train from them: for photos far larger than the training size",
    )
    parser.add_argument(
        "--refresh-listing", action="store_true", help="list the folder again instead of reusing its saved listing"
    )
    parser.add_argument("--seed", type=int, help=f"seed of data order, views and weights (default {_default('seed')})")


def _model_options(parser):
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
        type=_positive(float),
        help=f"encoder width multiplier of ResNet's 64-512 or ViT-Base's 768 channels (default {_default('width')})",
    )
    parser.add_argument(
        "--batch-size", type=_positive(int), help=f"pretraining batch (default {_default('batch_size')})"
    )


def _pretrain_options(parser):
    from kssl import defaults
    from kssl.app.config import RECIPES  # imports no TensorFlow
    from kssl.methods import METHODS  # the registry imports no TensorFlow
    from kssl.recipes import PRETRAINED_START_ENCODER_RATE  # imports no TensorFlow

    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs",
        type=_positive(float),
        help=f"pretraining epochs (default: {defaults.PRETRAIN_EPOCHS}, but at least {defaults.MIN_PRETRAIN_STEPS:,} "
        f"steps for a small data set; {defaults.DIGITS_PRETRAIN_EPOCHS} for digits; printed with its reason)",
    )
    length.add_argument("--budget", type=_positive(float), help="pretraining minutes, instead of --epochs")
    _yes_or_no(
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
        help=f"the self-supervised method (default {_default('method')}; listed below)",
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
        type=_positive(float),
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
        type=_positive(float),
        metavar="SECONDS",
        help="compute a step here when the service has not sent it within this time (default 60; the first "
        "batch may take at least 30 s: the workers build the pipeline first)",
    )


def _performance_options(parser):
    from kssl.defaults import STRATEGY_NAMES
    from kssl.precision import PRECISIONS  # imports no TensorFlow

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


def _output_options(parser, default="saved_models/<run-name>"):
    parser.add_argument("--out", help=f"output folder (default {default})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument(
        "--checkpoint-every",
        type=_positive(int),
        help="checkpoint training every this many steps; the same command resumes a killed run "
        f"(default {_default('checkpoint_every')})",
    )
    parser.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="write no TensorBoard logs (default: scalars, the augmentation preview and the test embeddings "
        "under OUT/logs/)",
    )


def _methods_epilog() -> str:
    from kssl.methods import METHODS  # the registry imports no TensorFlow

    width = max(len(name) for name in METHODS)
    lines = [
        line for name, spec in METHODS.items() for line in [f"  {name:<{width}}  {spec.summary}", *_options_lines(spec)]
    ]
    return "pretraining methods (--method) and their options (--method-option KEY=VALUE):\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kssl",
        description="Self-supervised pretraining of image encoders, and transfer to a few labels.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from kssl.selection import METHODS as SELECTION_METHODS

    run = commands.add_parser(
        "run",
        argument_default=argparse.SUPPRESS,  # unset options take RunConfig's defaults
        help="all of the below in sequence (default data: the embedded digits)",
        epilog=_methods_epilog() + "\n\n" + _modes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _data_options(run)
    _model_options(run)
    _pretrain_options(run)
    _finetuning_options(run)
    _performance_options(run)
    _output_options(run)
    run.add_argument(
        "--export-formats",
        type=_export_formats,
        help="also export the classifier as onnx and/or litert files beside the SavedModel, in OUT/serving/ "
        "(comma-separated; onnx needs tf2onnx)",
    )

    pretrain = commands.add_parser(
        "pretrain",
        argument_default=argparse.SUPPRESS,  # unset options take RunConfig's defaults
        help="pretrain an encoder on unlabeled images (see --method)",
        epilog=_methods_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _data_options(pretrain, labels=False)
    _model_options(pretrain)
    _pretrain_options(pretrain)
    _performance_options(pretrain)
    _output_options(pretrain)

    finetune = commands.add_parser(
        "finetune",
        argument_default=argparse.SUPPRESS,  # unset options take RunConfig's defaults
        help="fine-tune a pretrained encoder on a few labels, vs. from scratch",
        epilog=_modes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    finetune.add_argument("--pretrained", required=True, help="a `kssl pretrain` folder or an encoder .keras file")
    _data_options(finetune)
    _finetuning_options(finetune)
    finetune.add_argument(
        "--encoder",
        help="architecture of the from-scratch baseline (default: the pretrained encoder's, with fresh weights)",
    )
    finetune.add_argument("--width", type=_positive(float), help="width of the from-scratch baseline")
    _performance_options(finetune)
    _output_options(finetune)

    evaluate = commands.add_parser(
        "evaluate",
        argument_default=argparse.SUPPRESS,
        help="kNN and linear-probe accuracy of frozen features (and a run's classifier)",
    )
    evaluate.add_argument("--pretrained", required=True, help="a run folder or an encoder .keras file")
    _data_options(evaluate, labels=False)
    evaluate.add_argument(
        "--few-shot",
        type=_few_shot,
        default=None,
        help="also N-way K-shot accuracy on the test split, e.g. 5x1,5x5 (nearest class mean and logistic "
        "regression, with 95%% intervals)",
    )
    evaluate.add_argument(
        "--few-shot-episodes",
        type=_positive(int),
        help=f"episodes of each --few-shot setting (default {_default('few_shot_episodes')}, the usual count; "
        "fewer widen the interval)",
    )

    export = commands.add_parser("export", help="export a classifier as a SavedModel for TF Serving")
    export.add_argument(
        "--model", required=True, help="a run folder (its classifier.keras) or a classifier .keras file"
    )
    export.add_argument("--model-name", default="kssl", help="TF Serving model name (default kssl)")
    export.add_argument("--version", type=_positive(int), default=1, help="model version (default 1)")
    export.add_argument("--out", required=True, help="serving root: the model goes to OUT/<model-name>/<version>/")
    export.add_argument(
        "--format",
        dest="formats",
        type=_export_formats,
        default=["saved_model"],
        help="saved_model (TF Serving: OUT/<model-name>/<version>/), onnx (OUT/<model-name>-v<version>.onnx, "
        "needs tf2onnx) or litert (OUT/<model-name>-v<version>.tflite); several comma-separated "
        "(default saved_model)",
    )
    export.add_argument("--overwrite", action="store_true", help="replace what exists")
    embed = commands.add_parser(
        "embed",
        help="write every image's embedding (path, label, L2-normalised features) to a .parquet or .npz file",
        description="One row per image of --data: its path, its class name when the folder has class folders "
        "(root/<class>/<image>), and the L2-normalised features of the evaluation view, the vectors of the "
        "SavedModel's embed signature. Parquet needs pyarrow (pip install pyarrow).",
    )
    embed.add_argument(
        "--pretrained",
        required=True,
        help="a run folder (its classifier.keras, the served model, else its encoder.keras) or a .keras file",
    )
    embed.add_argument("--data", required=True, help="a folder of images (any layout), tfds:NAME[:SPLIT] or digits")
    embed.add_argument("--out", required=True, help="the file to write: .parquet or .npz (chosen by the suffix)")
    embed.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    embed.add_argument("--image-size", type=_positive(int), help=_ANY_SIZE_HELP)
    similar = commands.add_parser(
        "similar",
        help="a query image's nearest images, or the near-duplicate pairs, in an embedding file",
        description="Exact cosine search over `kssl embed`'s file, chunked so memory stays flat. With --query: "
        "its --top nearest images, printed and drawn in a contact sheet PNG (--out, default "
        "similar-<query>.png). With --duplicates: every pair at cosine similarity >= --threshold, most similar "
        "first, written as a CSV (--out, default duplicates.csv) with a contact sheet of the first pairs beside it.",
    )
    similar.add_argument("--embeddings", required=True, help="the .parquet or .npz file of `kssl embed`")
    target = similar.add_mutually_exclusive_group(required=True)
    target.add_argument("--query", help="an image file: in the embedding file or not (then embedded by its model)")
    target.add_argument("--duplicates", action="store_true", help="find the near-duplicate pairs instead")
    similar.add_argument("--top", type=_positive(int), default=10, help="neighbours of --query (default 10)")
    similar.add_argument(
        "--threshold", type=_cosine, default=0.95, help="cosine similarity of --duplicates (default 0.95)"
    )
    similar.add_argument("--out", help="the contact sheet (.png) of --query, or the pairs' CSV of --duplicates")
    similar.add_argument(
        "--pretrained", help="the model that embeds a --query not in the file (default: the one that wrote the file)"
    )
    similar.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    service = commands.add_parser(
        "data-service",
        help="run a tf.data service dispatcher or worker, to prepare pretraining batches on CPU machines",
        description="The tf.data service computes `kssl pretrain|run --data-service HOST:PORT`'s batches (the same "
        "ones, in step order) on CPU machines. Start one dispatcher, then workers on machines that see the data "
        "folder at the same path. Ctrl-C stops either.",
    )
    roles = service.add_subparsers(dest="role", required=True, metavar="ROLE")
    dispatcher = roles.add_parser("dispatcher", help="the coordinator (one per cluster)")
    dispatcher.add_argument("--port", type=_port, required=True, help="the port to listen on (0: any free one)")
    dispatcher.add_argument(
        "--work-dir", required=True, help="its journal: a restarted dispatcher resumes its jobs from it"
    )
    worker = roles.add_parser("worker", help="computes batches (as many as the trainer needs)")
    worker.add_argument("--dispatcher", required=True, metavar="HOST:PORT", help="the dispatcher's address")
    worker.add_argument("--port", type=_port, default=0, help="the port to listen on (default: any free one)")
    select = commands.add_parser(
        "select",
        help="which images of a folder to label first, chosen on a pretrained encoder's features",
        description="Writes a CSV of the images a person should label first (rank,path) and a contact sheet PNG "
        "beside it, chosen on the encoder's features: typiclust (Hacohen et al. 2022: the most typical image of "
        "each of BUDGET k-means clusters; the best at a few labels per class), kcenter (k-center greedy: the "
        "image farthest from those picked) or random. The folder needs no labels: any layout of image files.",
    )
    select.add_argument("--pretrained", required=True, help="a run folder or an encoder .keras file")
    select.add_argument("--data", required=True, help="the folder of images to choose from (any layout)")
    select.add_argument("--budget", required=True, type=_positive(int), help="how many images to pick")
    select.add_argument("--out", required=True, help="the CSV to write (the contact sheet goes beside it, as .png)")
    select.add_argument(
        "--method", choices=list(SELECTION_METHODS), default="typiclust", help="how to pick (default typiclust)"
    )
    select.add_argument("--labeled", help="the CSV of an earlier selection: extend it (those images are not picked)")
    select.add_argument("--seed", type=int, default=0, help="seed of k-means, k-center's first pick and random")
    select.add_argument("--overwrite", action="store_true", help="replace an existing --out and its contact sheet")
    select.add_argument("--image-size", type=_positive(int), help=_ANY_SIZE_HELP)
    doctor = commands.add_parser(
        "doctor",
        help="check that training on all of this machine's devices computes what one device does (run it first "
        "on a new GPU machine)",
        description="One SimCLR and one fine-tuning check on 1 device and on all devices (GPUs, else the CPU as two "
        "logical devices), in float32 and the device's mixed precision, with XLA on one GPU: steps/s and the "
        "largest weight difference. Exits with code 1 if a difference exceeds float rounding.",
    )
    doctor.add_argument("--steps", type=_positive(int), default=5, help="training steps per check (default 5)")
    doctor.add_argument("--image-size", type=_positive(int), default=32, help="image side (default 32)")
    doctor.add_argument("--batch-size", type=_positive(int), default=64, help="global batch (default 64)")
    doctor.add_argument(
        "--precision",
        choices=["float32", "mixed_bfloat16", "mixed_float16"],
        default=None,
        help="check this precision only (default: float32 and the device's mixed precision)",
    )
    for command in (run, pretrain, finetune, evaluate, export, embed, similar, service, select, doctor):
        _common_options(command)
    return parser


def _run_config(args: dict):
    """The `RunConfig` of the command line: `--config`'s file (if given) under the options given."""
    from kssl.app.config import RunConfig
    from kssl.registry import split_options

    for name in ("method_options", "mode_options", "semi_options"):
        if name in args:
            args[name] = split_options(args[name], "--" + name.replace("_options", "-option"))
    recorded = args.pop("config", None)
    if recorded is None:
        return RunConfig(**args)
    import dataclasses
    import pathlib

    from kssl.errors import MissingInputError

    if not pathlib.Path(recorded).is_file():
        raise MissingInputError(f"No config file at {recorded!r}: pass a run's config.json.")
    base = RunConfig.from_json(recorded)
    merged = {**base.method_options, **args.pop("method_options", {})}
    return dataclasses.replace(base, **args, method_options=merged)


def main(argv=None) -> int:
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    if not args.pop("verbose", False):
        from kssl.quiet import filter_native_logs

        filter_native_logs()
    from kssl.errors import InputError

    try:
        if command == "data-service":  # TensorFlow alone: a worker starts in seconds
            from kssl.data.service import run_dispatcher, run_worker

            if args["role"] == "dispatcher":
                run_dispatcher(args["port"], args["work_dir"])
            else:
                run_worker(args["dispatcher"], args["port"])
            return 0
        from kssl.app import jobs

        if command == "doctor":
            from kssl.doctor import run_doctor

            precisions = [args["precision"]] if args["precision"] else None
            rows = run_doctor(args["steps"], args["image_size"], args["batch_size"], precisions)
            return 0 if all(row["ok"] for row in rows) else 1
        if command == "select":
            from kssl.app.selection import select_job

            select_job(args["pretrained"], args["data"], args["budget"], args["out"], args["method"],
                       args["labeled"], args["seed"], args["overwrite"], image_size=args["image_size"])  # fmt: skip
            return 0
        if command == "embed":
            from kssl.app.embedding import embed_job

            embed_job(args["pretrained"], args["data"], args["out"], args["overwrite"], image_size=args["image_size"])
            return 0
        if command == "similar":
            from kssl.app.embedding import similar_job

            similar_job(args["embeddings"], args["query"], args["top"], args["duplicates"], args["threshold"],
                        args["out"], args["pretrained"], args["overwrite"])  # fmt: skip
            return 0
        if command == "export":
            jobs.export_job(args["model"], args["out"], args["model_name"], args["version"], args["overwrite"],
                            args["formats"])  # fmt: skip
            return 0
        pretrained = args.pop("pretrained", None)
        config = _run_config(args)
        if command == "run":
            jobs.run(config)
        elif command == "pretrain":
            jobs.pretrain_job(config)
        elif command == "finetune":
            jobs.finetune_job(config, pretrained)
        elif command == "evaluate":
            jobs.evaluate_job(config, pretrained)
    except InputError as error:
        print(f"kssl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kssl: interrupted; nothing was written to --out", file=sys.stderr)
        return 130
    except Exception as error:
        from kssl.errors import refused_write_message

        refused = refused_write_message(error)
        if refused is not None:
            print(f"kssl: error: {refused}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(
            "kssl: internal error: this is a bug in kssl or a library it uses, not a problem with your input. "
            "Please report it to the kssl developers with the traceback above and the command you ran.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

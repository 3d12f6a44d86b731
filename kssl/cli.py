"""The `kssl` command: thin over `kssl.runs`.

Parsing the command line imports no TensorFlow, so `kssl --help` answers at once;
`kssl.runs` (data, training, plots, and TensorFlow with them) is imported only when a
command runs. TensorFlow's C++ logs are filtered out of the output unless `--verbose`
(see `kssl.quiet`). Input kssl cannot use (`kssl.errors.InputError`) ends in a one-line
message and exit code 2; any other error is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback


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
    """Two exclusive flags, `yes = (flag, help)` and `no`, setting `dest` to True or False (default None: automatic)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(yes[0], dest=dest, action="store_const", const=True, default=None, help=yes[1])
    group.add_argument(no[0], dest=dest, action="store_const", const=False, help=no[1])


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _names(text: str) -> list:
    return [part.strip().lower() for part in text.split(",") if part.strip()]


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (pixels are in [0, 1]; 8/255 = 0.031), got {text}")
    return value


def _few_shot(text):
    from kssl.few_shot import parse_few_shot  # imports no TensorFlow

    try:
        return parse_few_shot(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _finetuning_options(parser):
    from kssl.finetuning import STRATEGIES  # the registry imports no TensorFlow

    parser.add_argument("--finetune-epochs", type=_positive(float), default=100)
    parser.add_argument(
        "--modes",
        type=_names,
        default=["full"],
        help=f"fine-tuning modes, one or several comma-separated: {','.join(STRATEGIES)} (default full; "
        "listed below); each is run pretrained and from scratch at every label budget",
    )
    parser.add_argument(
        "--lora-rank", type=_positive(int), default=8, help="rank of the lora mode's updates (default 8)"
    )
    parser.add_argument(
        "--stage-decay",
        type=_positive(float),
        default=1.0,
        help="discriminative learning rates: each earlier stage trains at this factor of the next one's rate "
        "(e.g. 0.5; default 1, off)",
    )
    parser.add_argument(
        "--adversarial",
        choices=["none", "fgsm", "pgd"],
        default="none",
        help="adversarial fine-tuning on FGSM or PGD examples (default none); the report adds PGD-10 accuracy",
    )
    parser.add_argument(
        "--epsilon", type=_fraction, default=8 / 255, help="attack radius in pixels of [0, 1] (default 8/255)"
    )
    parser.add_argument("--attack-steps", type=_positive(int), default=7, help="PGD steps in training (default 7)")


def _modes_epilog() -> str:
    from kssl.finetuning import STRATEGIES  # the registry imports no TensorFlow

    width = max(len(name) for name in STRATEGIES)
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in STRATEGIES.items()]
    return "fine-tuning modes (--modes):\n" + "\n".join(lines)


def _common_options(parser):
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own C++ log lines too (hidden by default)"
    )


def _data_options(parser, labels=True):
    parser.add_argument(
        "--data",
        default="digits",
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
            default=[10],
            help="labels for fine-tuning: a fraction (0.01) or a count per class (10); several, comma-separated, "
            "give a plot of accuracy against the number of labels (default 10)",
        )
    parser.add_argument(
        "--image-size",
        type=_positive(int),
        default=None,
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
        default=None,
        help="first save downscaled JPEG copies of a folder's images with this shorter side (px) in ~/.cache/kssl, "
        "and train from them: for photos far larger than the training size",
    )
    parser.add_argument(
        "--refresh-listing", action="store_true", help="list the folder again instead of reusing its saved listing"
    )
    parser.add_argument("--seed", type=int, default=0)


def _model_options(parser):
    parser.add_argument(
        "--encoder",
        default=None,
        help="resnet18, resnet34, resnet50, vit<depth> such as vit6, or a keras.applications backbone such as "
        "keras:ResNet50V2 or keras:EfficientNetB0 (default: the method's, resnet18, or vit6 for mae)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="start a keras: backbone from 'imagenet' or a weights file PATH, then pretrain on your images "
        "(default: random weights)",
    )
    parser.add_argument(
        "--width",
        type=_positive(float),
        default=0.25,
        help="encoder width multiplier of ResNet's 64-512 or ViT-Base's 768 channels (default 0.25)",
    )
    parser.add_argument("--batch-size", type=_positive(int), default=256)


def _pretrain_options(parser):
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs", type=_positive(float), default=None, help="pretraining epochs (default 60 for digits, else 20)"
    )
    length.add_argument(
        "--budget", type=_positive(float), default=None, help="pretraining minutes, instead of --epochs"
    )
    from kssl.methods import METHODS  # the registry imports no TensorFlow

    parser.add_argument(
        "--method",
        type=str.lower,
        choices=list(METHODS),
        default="simclr",
        help="the self-supervised method (default simclr; listed below)",
    )
    parser.add_argument(
        "--temperature",
        type=_positive(float),
        default=None,
        help="softmax temperature of the contrastive methods, simclr and moco (default 0.2)",
    )


def _performance_options(parser):
    parser.add_argument(
        "--strategy",
        choices=["default", "mirrored", "multiworker", "tpu"],
        default="default",
        help="tf.distribute strategy: mirrored = all local GPUs; multiworker reads TF_CONFIG (default: default)",
    )
    parser.add_argument(
        "--precision",
        choices=["float32", "mixed_bfloat16", "mixed_float16"],
        default=None,
        help="dtype policy (default: mixed_float16 on GPU; mixed_bfloat16 on CPUs with native bfloat16, "
        "AVX512-BF16 or AMX; float32 on other CPUs)",
    )
    parser.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile train steps with XLA (default: on with one GPU; off on CPUs and with several replicas)",
    )


def _output_options(parser, default="saved_models/<run-name>"):
    parser.add_argument("--out", default=None, help=f"output folder (default {default})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument(
        "--checkpoint-every",
        type=_positive(int),
        default=100,
        help="checkpoint training every this many steps; the same command resumes a killed run (default 100)",
    )


def _methods_epilog() -> str:
    from kssl.methods import METHODS  # the registry imports no TensorFlow

    width = max(len(name) for name in METHODS)
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in METHODS.items()]
    return "pretraining methods (--method):\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kssl",
        description="Self-supervised pretraining of image encoders, and transfer to a few labels.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
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

    pretrain = commands.add_parser(
        "pretrain",
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
        help="fine-tune a pretrained encoder on a few labels, vs. from scratch",
        epilog=_modes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    finetune.add_argument("--pretrained", required=True, help="a `kssl pretrain` folder or an encoder .keras file")
    _data_options(finetune)
    _finetuning_options(finetune)
    finetune.add_argument(
        "--encoder",
        default=None,
        help="architecture of the from-scratch baseline (default: the pretrained encoder's, with fresh weights)",
    )
    finetune.add_argument("--width", type=_positive(float), default=0.25, help="width of the from-scratch baseline")
    _performance_options(finetune)
    _output_options(finetune)

    evaluate = commands.add_parser(
        "evaluate", help="kNN and linear-probe accuracy of frozen features (and a run's classifier)"
    )
    evaluate.add_argument("--pretrained", required=True, help="a run folder or an encoder .keras file")
    _data_options(evaluate, labels=False)
    evaluate.add_argument(
        "--few-shot",
        type=_few_shot,
        default=None,
        help="also N-way K-shot accuracy on the test split, e.g. 5x1,5x5 (600 episodes each, nearest class mean "
        "and logistic regression, with 95%% intervals)",
    )

    export = commands.add_parser("export", help="export a classifier as a SavedModel for TF Serving")
    export.add_argument(
        "--model", required=True, help="a run folder (its classifier.keras) or a classifier .keras file"
    )
    export.add_argument("--model-name", default="kssl", help="TF Serving model name (default kssl)")
    export.add_argument("--version", type=_positive(int), default=1, help="model version (default 1)")
    export.add_argument("--out", required=True, help="serving root: the model goes to OUT/<model-name>/<version>/")
    export.add_argument("--overwrite", action="store_true")
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
    for command in (run, pretrain, finetune, evaluate, export, doctor):
        _common_options(command)
    return parser


def main(argv=None) -> int:
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    if not args.pop("verbose"):
        from kssl.quiet import filter_native_logs

        filter_native_logs()
    from kssl.errors import InputError

    try:
        from kssl import runs

        if command == "doctor":
            from kssl.doctor import run_doctor

            precisions = [args["precision"]] if args["precision"] else None
            rows = run_doctor(args["steps"], args["image_size"], args["batch_size"], precisions)
            return 0 if all(row["ok"] for row in rows) else 1
        if command == "export":
            runs.export_job(args["model"], args["out"], args["model_name"], args["version"], args["overwrite"])
            return 0
        pretrained = args.pop("pretrained", None)
        config = runs.RunConfig(**args)
        if command == "run":
            runs.run(config)
        elif command == "pretrain":
            runs.pretrain_job(config)
        elif command == "finetune":
            runs.finetune_job(config, pretrained)
        elif command == "evaluate":
            runs.evaluate_job(config, pretrained)
    except InputError as error:
        print(f"kssl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kssl: interrupted; nothing was written to --out", file=sys.stderr)
        return 130
    except Exception:
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

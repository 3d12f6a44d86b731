"""The `kssl` command. Thin over the library; TensorFlow is imported only when work starts,
so `kssl --help` answers at once."""

from __future__ import annotations

import argparse
import sys


def _labels(text: str) -> float | int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kssl",
        description="Self-supervised pretraining (SimCLR) of image encoders and transfer to few labels.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="pretrain, evaluate, fine-tune vs. from scratch, and export (default: the embedded digits set)",
        description="Pretrain with SimCLR, evaluate frozen features (kNN, linear probe), fine-tune on a "
        "labeled subset and compare with training from scratch, then export a SavedModel.",
    )
    run.add_argument("--data", default="digits", help="a folder root/<class>/<image>, tfds:NAME, or 'digits' (default)")
    run.add_argument(
        "--labels", type=_labels, default=10, help="labels for fine-tuning: fraction (0.01) or per class (10)"
    )
    run.add_argument("--image-size", type=int, default=None, help="square image side (default: 16 for digits, else 32)")
    run.add_argument("--encoder", default="resnet18", help="resnet18, resnet34 or resnet50 (default resnet18)")
    run.add_argument("--width", type=float, default=0.25, help="encoder width multiplier (default 0.25)")
    length = run.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs", type=float, default=None, help="pretraining epochs (default: 60 for digits, else 20)"
    )
    length.add_argument("--budget", type=float, default=None, help="pretraining minutes, instead of --epochs")
    run.add_argument("--batch-size", type=int, default=256)
    run.add_argument("--finetune-epochs", type=float, default=100)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", default=None, help="output folder (default saved_models/<run-name>)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from kssl.runs import RunConfig, run

    config = RunConfig(**{k: v for k, v in vars(args).items() if k != "command"})
    try:
        run(config)
    except (ValueError, FileExistsError, PermissionError, FileNotFoundError) as error:
        print(f"kssl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

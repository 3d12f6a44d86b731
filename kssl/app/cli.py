"""The `kssl` command: thin over `kssl.app.jobs`.

Parsing the command line imports no TensorFlow, so `kssl --help` answers at once;
`kssl.app.jobs` (data, training, plots, and TensorFlow with them) is imported only when a
command runs. TensorFlow's C++ logs are filtered out of the output unless `--verbose`
(see `kssl.runtime.quiet`). Input kssl cannot use (`kssl.errors.InputError`) ends in a one-line
message and exit code 2; any other error is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from kssl import defaults
from kssl.app.argument_types import (
    ANY_SIZE_HELP,
    cosine_similarity,
    export_format_list,
    port_number,
    positive,
)
from kssl.app.option_groups import common_options, config_option, methods_epilog, modes_epilog
from kssl.app.settings import add_settings, run_default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kssl",
        description="Self-supervised pretraining of image encoders, and transfer to a few labels.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from kssl.evaluation.label_selection import METHODS as SELECTION_METHODS

    run = commands.add_parser(
        "run",
        argument_default=argparse.SUPPRESS,  # unset options take RunConfig's defaults
        help="all of the below in sequence (default data: the embedded digits)",
        epilog=methods_epilog() + "\n\n" + modes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings(run, "data", "labels", "model", "pretraining", "finetuning", "performance", "output")
    config_option(run)

    pretrain = commands.add_parser(
        "pretrain",
        argument_default=argparse.SUPPRESS,  # unset options take RunConfig's defaults
        help="pretrain an encoder on unlabeled images (see --method)",
        epilog=methods_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings(pretrain, "data", "model", "pretraining", "performance", "output", leave_out=["export_formats"])
    config_option(pretrain)

    finetune = commands.add_parser(
        "finetune",
        argument_default=argparse.SUPPRESS,  # unset options take RunConfig's defaults
        help="fine-tune a pretrained encoder on a few labels, vs. from scratch",
        epilog=modes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    finetune.add_argument("--pretrained", required=True, help="a `kssl pretrain` folder or an encoder .keras file")
    add_settings(finetune, "data", "labels", "finetuning", "performance", "output", leave_out=["export_formats"])
    # --encoder and --width name the from-scratch baseline here (the settings' own help is the pretrained one's).
    finetune.add_argument(
        "--encoder",
        help="architecture of the from-scratch baseline (default: the pretrained encoder's, with fresh weights)",
    )
    finetune.add_argument("--width", type=positive(float), help="width of the from-scratch baseline")

    evaluate = commands.add_parser(
        "evaluate",
        argument_default=argparse.SUPPRESS,
        help="kNN and linear-probe accuracy of frozen features (and a run's classifier)",
    )
    evaluate.add_argument("--pretrained", required=True, help="a run folder or an encoder .keras file")
    add_settings(evaluate, "data", "evaluation")

    export = commands.add_parser("export", help="export a classifier as a SavedModel for TF Serving")
    export.add_argument(
        "--model", required=True, help="a run folder (its classifier.keras) or a classifier .keras file"
    )
    export.add_argument("--model-name", default=run_default("model_name"),
                        help=f"TF Serving model name (default {run_default('model_name')})")  # fmt: skip
    export.add_argument("--version", type=positive(int), default=run_default("version"),
                        help=f"model version (default {run_default('version')})")  # fmt: skip
    export.add_argument("--out", required=True, help="serving root: the model goes to OUT/<model-name>/<version>/")
    export.add_argument(
        "--format",
        dest="formats",
        type=export_format_list,
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
    embed.add_argument("--image-size", type=positive(int), help=ANY_SIZE_HELP)
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
    similar.add_argument("--top", type=positive(int), default=defaults.SIMILAR_TOP,
                         help=f"neighbours of --query (default {defaults.SIMILAR_TOP})")  # fmt: skip
    similar.add_argument(
        "--threshold",
        type=cosine_similarity,
        default=defaults.DUPLICATE_THRESHOLD,
        help=f"cosine similarity of --duplicates (default {defaults.DUPLICATE_THRESHOLD})",
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
    dispatcher.add_argument("--port", type=port_number, required=True, help="the port to listen on (0: any free one)")
    dispatcher.add_argument(
        "--work-dir", required=True, help="its journal: a restarted dispatcher resumes its jobs from it"
    )
    worker = roles.add_parser("worker", help="computes batches (as many as the trainer needs)")
    worker.add_argument("--dispatcher", required=True, metavar="HOST:PORT", help="the dispatcher's address")
    worker.add_argument("--port", type=port_number, default=0, help="the port to listen on (default: any free one)")
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
    select.add_argument("--budget", required=True, type=positive(int), help="how many images to pick")
    select.add_argument("--out", required=True, help="the CSV to write (the contact sheet goes beside it, as .png)")
    select.add_argument(
        "--method",
        choices=list(SELECTION_METHODS),
        default=defaults.SELECTION_METHOD,
        help=f"how to pick (default {defaults.SELECTION_METHOD})",
    )
    select.add_argument("--labeled", help="the CSV of an earlier selection: extend it (those images are not picked)")
    select.add_argument(
        "--seed", type=int, default=defaults.SEED, help="seed of k-means, k-center's first pick and random"
    )
    select.add_argument("--overwrite", action="store_true", help="replace an existing --out and its contact sheet")
    select.add_argument("--image-size", type=positive(int), help=ANY_SIZE_HELP)
    doctor = commands.add_parser(
        "doctor",
        help="check that training on all of this machine's devices computes what one device does (run it first "
        "on a new GPU machine)",
        description="One SimCLR and one fine-tuning check on 1 device and on all devices (GPUs, else the CPU as two "
        "logical devices), in float32 and the device's mixed precision, with XLA on one GPU: steps/s and the "
        "largest weight difference. Exits with code 1 if a difference exceeds float rounding.",
    )
    doctor.add_argument("--steps", type=positive(int), default=defaults.DOCTOR_STEPS,
                        help=f"training steps per check (default {defaults.DOCTOR_STEPS})")  # fmt: skip
    doctor.add_argument("--image-size", type=positive(int), default=defaults.DOCTOR_IMAGE_SIZE,
                        help=f"image side (default {defaults.DOCTOR_IMAGE_SIZE})")  # fmt: skip
    doctor.add_argument("--batch-size", type=positive(int), default=defaults.DOCTOR_BATCH_SIZE,
                        help=f"global batch (default {defaults.DOCTOR_BATCH_SIZE})")  # fmt: skip
    doctor.add_argument(
        "--precision",
        choices=["float32", "mixed_bfloat16", "mixed_float16"],
        default=None,
        help="check this precision only (default: float32 and the device's mixed precision)",
    )
    for command in (run, pretrain, finetune, evaluate, export, embed, similar, service, select, doctor):
        common_options(command)
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
        from kssl.runtime.quiet import filter_native_logs

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
            from kssl.app.doctor import run_doctor

            precisions = [args["precision"]] if args["precision"] else None
            rows = run_doctor(args["steps"], args["image_size"], args["batch_size"], precisions)
            return 0 if all(row["ok"] for row in rows) else 1
        if command == "select":
            from kssl.app.select_job import select_job

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

"""Streaming from a large real-JPEG folder: time to the first step, peak RSS, views/s.

Builds a folder from `../shared/data/cifar10/train` (every image upscaled to 256 px with
a random crop and re-encoded at quality 90: real JPEG decoding work), then measures, each
in a fresh process:

1. time from the start of `kssl pretrain --stream` (imports included) to the end of its
   first training step, and the command's peak RSS, for `--files` and 4x as many files
   (the extra files are hard links under new names: as many files to list, shuffle and
   open, without 4x the disk), with a new and with a saved listing;
2. pretraining views/s at 64 and 96 px streaming from disk (also with tf.data's threads
   in a private pool of 1 or 2, `tf.data.Options().threading.private_threadpool_size`), and
   in memory (a subset of `--memory-images` decoded first), against the encoder's own forward+backward speed on
   a constant batch, measured interleaved in one process (pipeline ratio = views/s
   streaming / views/s of the encoder alone);
3. the same folder read by `keras.utils.image_dataset_from_directory` and kssl's batched
   augmentation (squashed to the training size first, as that reader does), and, with
   `--torch-python`, kssl's streaming host path alone against torchvision's `ImageFolder`
   with a 2-worker `DataLoader` and lightly's `SimCLRTransform` (the path lightly's users
   take), each in a fresh process, alternating over 3 rounds (medians, views/s).

The folder is deleted afterwards unless `--keep`.

    python benchmarks/streaming.py --files 50000 --out /tmp/kssl-stream
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time

CIFAR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "train"


def build_folder(out: pathlib.Path, count: int, side: int = 256) -> pathlib.Path:
    """`count` JPEGs of `side` px from CIFAR-10 train, with random crops, in class folders."""
    import concurrent.futures

    import numpy as np
    from PIL import Image

    sources = sorted(CIFAR.glob("*/*.jpg"))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(sources))  # every class, whatever the count (torchvision refuses empty ones)
    jobs = [(sources[order[i % len(sources)]], i, rng.integers(0, 6, 2)) for i in range(count)]

    def write(job):
        path, index, (dy, dx) = job
        target = out / path.parent.name / f"{index:07d}.jpg"
        if target.exists():
            return
        with Image.open(path) as image:
            crop = image.convert("RGB").crop((dx, dy, dx + 26, dy + 26)).resize((side, side), Image.BICUBIC)
            crop.save(target, quality=90)

    for name in {p.parent.name for p in sources}:
        (out / name).mkdir(parents=True, exist_ok=True)
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, jobs, chunksize=256))
    print(f"built {count} JPEGs of {side} px in {time.time() - start:.0f} s", flush=True)
    return out


def link_copies(folder: pathlib.Path, out: pathlib.Path, copies: int) -> pathlib.Path:
    """`copies` hard links of every file of `folder` under new names in `out`."""
    for path in folder.glob("*/*.jpg"):
        (out / path.parent.name).mkdir(parents=True, exist_ok=True)
        for copy in range(copies):
            target = out / path.parent.name / f"{path.stem}-{copy}.jpg"
            if not target.exists():
                os.link(path, target)
    return out


FIRST_STEP = textwrap.dedent(
    """
    import time
    start = time.time()
    import json, resource, sys, tempfile
    import keras
    import kssl.training.pretraining as pretraining
    from kssl.app.cli import main

    class FirstStep(keras.callbacks.Callback):
        seconds = None

        def on_train_batch_end(self, batch, logs=None):
            if FirstStep.seconds is None:
                FirstStep.seconds = time.time() - start
            self.model.stop_training = True

    fit = pretraining.fit_steps

    def with_first_step(model, data, total, directory, every, callbacks, *args, **kwargs):
        return fit(model, data, total, directory, every, [*callbacks, FirstStep()], *args, **kwargs)

    pretraining.fit_steps = with_first_step  # the command runs as users run it, and stops after one step
    folder, size, storage = sys.argv[1], sys.argv[2], sys.argv[3]
    out = tempfile.mkdtemp() + "/run"
    code = main(["pretrain", "--data", folder, storage, "--image-size", size, "--epochs", "1",
                 "--batch-size", "256", "--out", out])
    assert code == 0
    print(json.dumps({"first_step_s": FirstStep.seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def first_step(folder, size, fresh_listing: bool, storage="--stream"):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if fresh_listing:
        shutil.rmtree(pathlib.Path(env.get("KSSL_CACHE_DIR", "~/.cache/kssl")).expanduser() / "listings", True)
    command = [sys.executable, "-c", FIRST_STEP, str(folder), str(size), storage]
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


THROUGHPUT = textwrap.dedent(
    """
    import gc, json, sys, time
    import numpy as np, tensorflow as tf, keras, kssl
    from kssl.data.files import list_folder
    from kssl.data.pipeline import view_pairs
    from kssl.runtime.precision import precision_choice, set_precision

    folder, size, memory_images, rounds, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 3, 6
    set_precision(precision_choice()[0])
    batch = 128
    files = list_folder(folder, progress=False)
    memory = files.subset(np.random.default_rng(0).permutation(len(files))[:memory_images]).load(size, progress=False)
    model = kssl.SimCLR(kssl.resnet(18, width=0.25, image_size=size), local_crops=0)  # two views: pairs
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    constant = next(iter(view_pairs(memory.at_size(size), batch)))
    augment = kssl.ViewAugmentation(size)
    keras_reader = keras.utils.image_dataset_from_directory(
        folder, labels=None, image_size=(size, size), batch_size=batch, shuffle=True, seed=0)

    def two_views(i, x):
        return augment(x / 255.0, tf.stack([0, i])), augment(x / 255.0, tf.stack([1, i]))

    keras_pairs = keras_reader.enumerate().map(two_views, num_parallel_calls=tf.data.AUTOTUNE)
    def capped(threads):  # tf.data's own pool of `threads` threads: less contention with the step's
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        return lambda: view_pairs(files.at_size(size), batch).with_options(options)

    makers = {
        "streaming": lambda: view_pairs(files.at_size(size), batch),
        "streaming, tf.data's own pool of 1 thread": capped(1),
        "streaming, tf.data's own pool of 2 threads": capped(2),
        "in memory": lambda: view_pairs(memory.at_size(size), batch),
        "constant batch (encoder alone)": None,
        "keras image_dataset_from_directory + kssl augmentation": lambda: keras_pairs.repeat().prefetch(
            tf.data.AUTOTUNE),
    }
    step = tf.function(model.train_step)
    step(constant)
    times = {name: [] for name in makers}
    # One live pipeline at a time (a pipeline left open keeps prefetching on the same two
    # cores), in alternating order over the rounds.
    for round_ in range(rounds):
        for name in (list(makers) if round_ % 2 == 0 else list(reversed(makers))):
            data = iter(makers[name]()) if makers[name] else None
            for _ in range(2):
                step(next(data) if data is not None else constant)["loss"].numpy()
            start = time.time()
            for _ in range(steps):
                step(next(data) if data is not None else constant)["loss"].numpy()
            times[name].append(time.time() - start)
            del data
            gc.collect()
    views = {name: 2 * batch * steps / float(np.median(t)) for name, t in times.items()}
    pipeline_only = {}  # fresh iterators, past their prefetch buffers
    crop_only = kssl.ViewAugmentation(size, flip=False, jitter_strength=0.0, grayscale_probability=0.0,
                                      blur_probability=0.0)
    makers["streaming, crops only (read, decode, crop)"] = lambda: view_pairs(files.at_size(size), batch, crop_only)
    makers["in memory, crops only"] = lambda: view_pairs(memory.at_size(size), batch, crop_only)
    # The host's share on a GPU machine: uint8 crops, the rest finished in the train step.
    makers["streaming, GPU path (uint8 crops, finished on the device)"] = lambda: view_pairs(
        files.at_size(size), batch, on_device=True)
    for name, make in makers.items():
        if make is None:
            continue
        data = iter(make())
        for _ in range(3):
            next(data)
        start = time.time()
        for _ in range(20):
            next(data)
        pipeline_only[name] = 2 * batch * 20 / (time.time() - start)
        del data
        gc.collect()
    print(json.dumps({"views_per_s": views, "pipeline_only_views_per_s": pipeline_only}))
    """
)


def throughput(folder, size, memory_images):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(
        [sys.executable, "-c", THROUGHPUT, str(folder), str(size), str(memory_images)],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


TORCH_READER = textwrap.dedent(
    """
    import json, sys, time
    import torch, torchvision
    from lightly.transforms import SimCLRTransform

    folder, size, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    transform = SimCLRTransform(input_size=size, cj_strength=0.5, gaussian_blur=0.5 if size >= 64 else 0.0)
    dataset = torchvision.datasets.ImageFolder(folder, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=128, shuffle=True, num_workers=2, drop_last=True)
    iterator = iter(loader)
    next(iterator)  # workers started
    start = time.time()
    for _ in range(batches):
        (first, second), _ = next(iterator)
    print(json.dumps({"images_per_s": 128 * batches / (time.time() - start)}))
    """
)


HOST_PIPELINE = textwrap.dedent(
    """
    import json, sys, time
    import kssl
    from kssl.data.files import list_folder
    from kssl.data.pipeline import view_pairs

    folder, size, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = iter(view_pairs(list_folder(folder, progress=False).at_size(size), 128))
    for _ in range(3):
        next(data)  # past the start and the first prefetch
    start = time.time()
    for _ in range(batches):
        next(data)
    print(json.dumps({"images_per_s": 128 * batches / (time.time() - start)}))
    """
)


def host_path(folder, size, batches=30):
    """Images/s of kssl's streaming host path alone: read, decode, crop and the full SimCLR augmentation."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", HOST_PIPELINE, str(folder), str(size), str(batches)],
                         capture_output=True, text=True, env=env)  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def host_against_lightly(python, folder, size, rounds=3):
    """kssl's host path and lightly's reader, each in a fresh process, alternating over `rounds`: views/s."""
    runs = {"kssl": [], "lightly": []}
    for round_ in range(rounds):
        order = ("kssl", "lightly") if round_ % 2 == 0 else ("lightly", "kssl")
        for name in order:
            result = host_path(folder, size) if name == "kssl" else torch_reader(python, folder, size)
            runs[name].append(2 * result["images_per_s"])
    medians = {name: float(sorted(values)[len(values) // 2]) for name, values in runs.items()}
    ratio = medians["kssl"] / medians["lightly"]
    return {"views_per_s_by_round": runs, "median_views_per_s": medians, "kssl_over_lightly": ratio}


def torch_reader(python, folder, size, batches=30):
    """Images/s of torchvision's ImageFolder, a 2-worker DataLoader and lightly's SimCLRTransform."""
    out = subprocess.run(
        [python, "-c", TORCH_READER, str(folder), str(size), str(batches)], capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--memory-images", type=int, default=5_000)
    parser.add_argument("--sizes", default="64,96")
    parser.add_argument("--out", default="/tmp/kssl-streaming-benchmark")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: first-step, throughput")
    parser.add_argument(
        "--torch-python", default=None, help="a Python with torch, torchvision and lightly, to time their reader"
    )
    args = parser.parse_args(argv)
    if not CIFAR.is_dir():
        sys.exit(f"needs {CIFAR}")
    out = pathlib.Path(args.out)
    results = {"cpu": _cpu_model(), "date": time.strftime("%Y-%m-%d"), "files": args.files}
    try:
        small = build_folder(out / "small", args.files)
        if "first-step" not in args.skip:
            large = link_copies(small, out / "large", 4)
            for folder in (small, large):
                count = sum(1 for _ in folder.glob("*/*.jpg"))
                for fresh in (True, False):
                    result = first_step(folder, 96, fresh)
                    key = f"{count} files, {'new' if fresh else 'saved'} listing"
                    results[key] = result
                    print(key, result, flush=True)
        if "throughput" not in args.skip:
            for size in map(int, args.sizes.split(",")):
                result = throughput(small, size, args.memory_images)
                if args.torch_python:
                    result["host path against lightly (views/s, alternating, fresh processes)"] = host_against_lightly(
                        args.torch_python, small, size
                    )
                results[f"{size} px"] = result
                print(size, json.dumps(result, indent=1), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(results, indent=1))


def _cpu_model() -> str:
    from kssl.runtime.cpu import cpu_model

    return cpu_model()


if __name__ == "__main__":
    main()

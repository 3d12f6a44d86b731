"""The tf.data service's overhead on loopback: views/s through it against the local pipeline.

On this machine the service's workers share the trainer's cores, so the service cannot
be faster here; what this measures is what it costs: the same pretraining batches (a
streamed folder, SimCLR's two views, the host path's whole augmentation) read locally
and through a dispatcher and `--workers` workers on 127.0.0.1 (in this process: their
servers are threads), alternating for `--rounds` rounds (medians).

    python benchmarks/data_service.py --data ../shared/data/flowers --image-size 96
    python benchmarks/data_service.py --data ../shared/data/cifar10 --image-size 32
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time

import tensorflow as tf

from kssl.data.files import list_folder
from kssl.data.pipeline import view_pairs
from kssl.data.service import served_batches

service = tf.data.experimental.service


def views_per_second(batches, steps: int, batch_size: int, views: int = 2) -> float:
    iterator = iter(batches)
    next(iterator)  # the first batch pays for start-up: not counted
    started = time.perf_counter()
    for _ in itertools.islice(iterator, steps):
        pass
    return steps * batch_size * views / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder root/<class>/<image> or root/train/<class>/<image>")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    files = list_folder(args.data, progress=False).at_size(args.image_size)
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=0, work_dir=tempfile.mkdtemp(),
                                                                 fault_tolerant_mode=True))  # fmt: skip
    address = dispatcher.target.split("://")[1]
    workers = [service.WorkerServer(service.WorkerConfig(dispatcher_address=address)) for _ in range(args.workers)]

    def local(start):
        return view_pairs(files, args.batch_size, seed=0, start_step=start)

    def served(start):
        def steps(a, b):
            return view_pairs(files, args.batch_size, seed=0, start_step=a, stop_step=b, tag_steps=True)

        return served_batches(steps, start, start + args.steps + 1, dispatcher.target, f"bench-{start}", 600)

    results = {"local": [], "service": []}
    for round_ in range(args.rounds):
        start = round_ * (args.steps + 1)
        for name, make in (("local", local), ("service", served)):
            results[name].append(views_per_second(make(start), args.steps, args.batch_size))
            print(f"round {round_ + 1}: {name} {results[name][-1]:,.0f} views/s", flush=True)
    local_speed, served_speed = statistics.median(results["local"]), statistics.median(results["service"])
    print(f"{len(files):,} files at {args.image_size} px, batch {args.batch_size}, {args.workers} worker(s): "
          f"local {local_speed:,.0f} views/s, through the service {served_speed:,.0f} views/s "
          f"(ratio {served_speed / local_speed:.2f}; medians of {args.rounds})")  # fmt: skip
    for server in [*workers, dispatcher]:
        server._stop()


if __name__ == "__main__":
    main()

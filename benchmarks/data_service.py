"""The tf.data service on loopback: its overhead, what adding workers does, and how much
one trainer can take in.

On this machine the service's workers share the trainer's cores, so the service cannot
be faster here; what this measures is what it costs: the same pretraining batches (a
streamed folder, SimCLR's two views, the host path's whole augmentation) read locally
and through a dispatcher and 1, 2, ... workers on 127.0.0.1 (`--workers 1,2,3`; in this
process: their servers are threads), alternating for `--rounds` rounds (medians).

`--intake` measures instead the most one trainer can take in, whatever the workers: one
real batch served again and again (the workers only send it), as float32 views (the CPU
path) and as uint8 crops (what a GPU host receives with the views finished on its GPU),
with and without the service's compression.

    python benchmarks/data_service.py --data ../shared/data/flowers --image-size 96 --workers 1,2,3
    python benchmarks/data_service.py --data ../shared/data/cifar10 --image-size 32
    python benchmarks/data_service.py --data ../shared/data/flowers --image-size 224 --batch-size 64 --intake
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


WARM_UP = 8  # batches read before the clock starts: past start-up and what the buffers hold


def views_per_second(batches, steps: int, batch_size: int, views: int = 2) -> float:
    iterator = iter(batches)
    # Not counted: start-up, and what was computed meanwhile. The service's workers go on
    # while the trainer checks its first step, so without this they looked twice as fast.
    for _ in itertools.islice(iterator, WARM_UP):
        pass
    started = time.perf_counter()
    for _ in itertools.islice(iterator, steps):
        pass
    return steps * batch_size * views / (time.perf_counter() - started)


def intake(files, args, dispatcher):
    """Views/s one trainer takes in when the workers only send one fixed real batch."""
    batch = next(iter(view_pairs(files, args.batch_size, seed=0)))
    kinds = {"float32 views": batch, "uint8 crops": tuple(tf.cast(tf.round(v * 255), tf.uint8) for v in batch)}
    results = {}
    for round_ in range(args.rounds):
        for kind, tensors in kinds.items():
            for compression in ("AUTO", None):
                served = tf.data.Dataset.range(args.steps + WARM_UP).map(lambda step, t=tensors: (step, t))
                served = served.apply(service.distribute(
                    processing_mode=service.ShardingPolicy.DYNAMIC, service=dispatcher.target,
                    job_name=f"intake-{round_}-{kind}-{compression}", compression=compression,
                    max_outstanding_requests=2))  # fmt: skip
                key = (kind, compression)
                results.setdefault(key, []).append(views_per_second(served, args.steps, args.batch_size))

            # What kssl reads: uncompressed, then put in step order by `served_batches`.
            def fixed(a, b, t=tensors):
                return tf.data.Dataset.range(a, b).map(lambda step: (step, t))

            ordered = served_batches(fixed, 0, args.steps + WARM_UP, dispatcher.target, f"intake-{round_}-{kind}", 600)
            results.setdefault((kind, "None, in step order (kssl)"), []).append(
                views_per_second(ordered, args.steps, args.batch_size)
            )
    for (kind, compression), speeds in results.items():
        megabytes = sum(t.numpy().nbytes for t in kinds[kind]) / 1e6
        print(f"{args.image_size} px, batch {args.batch_size}, {kind} ({megabytes:.1f} MB a batch), compression "
              f"{compression}: {statistics.median(speeds):,.0f} views/s (median of {args.rounds})")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder root/<class>/<image> or root/train/<class>/<image>")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workers", default="1", help="worker counts to compare, e.g. 1,2,3")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--intake", action="store_true", help="the most one trainer takes in (see above)")
    args = parser.parse_args()

    files = list_folder(args.data, progress=False).at_size(args.image_size)
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=0, work_dir=tempfile.mkdtemp(),
                                                                 fault_tolerant_mode=True))  # fmt: skip
    address = dispatcher.target.split("://")[1]
    workers = []
    if args.intake:
        workers.append(service.WorkerServer(service.WorkerConfig(dispatcher_address=address)))
        intake(files, args, dispatcher)
        for server in [*workers, dispatcher]:
            server._stop()
        return

    def local(start):
        return view_pairs(files, args.batch_size, seed=0, start_step=start)

    def served(start):
        def steps(a, b):
            return view_pairs(files, args.batch_size, seed=0, start_step=a, stop_step=b, tag_steps=True)

        return served_batches(steps, start, start + args.steps + WARM_UP, dispatcher.target, f"bench-{start}", 600)

    start = 0
    for count in [int(c) for c in args.workers.split(",")]:
        while len(workers) < count:  # a worker added: it serves the jobs started from now on
            workers.append(service.WorkerServer(service.WorkerConfig(dispatcher_address=address)))
        results = {"local": [], "service": []}
        for round_ in range(args.rounds):
            for name, make in (("local", local), ("service", served)):
                results[name].append(views_per_second(make(start), args.steps, args.batch_size))
                start += args.steps + WARM_UP
                print(f"{count} worker(s), round {round_ + 1}: {name} {results[name][-1]:,.0f} views/s", flush=True)
        local_speed, served_speed = statistics.median(results["local"]), statistics.median(results["service"])
        print(f"{len(files):,} files at {args.image_size} px, batch {args.batch_size}, {count} worker(s): "
              f"local {local_speed:,.0f} views/s, through the service {served_speed:,.0f} views/s "
              f"(ratio {served_speed / local_speed:.2f}; medians of {args.rounds})", flush=True)  # fmt: skip
    for server in [*workers, dispatcher]:
        server._stop()


if __name__ == "__main__":
    main()

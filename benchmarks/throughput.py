"""Pretraining throughput (views/s) on this machine: float32 vs bfloat16, XLA on vs off,
1 vs 2 logical replicas, TensorFlow's oneDNN kernels on (kssl's default) vs off. Each
configuration runs in its own process (the dtype policy, logical devices and oneDNN are
process-wide); configurations alternate in rounds, so the machine's slow drift affects
them alike and the ratios are what to read.

    python benchmarks/throughput.py [--rounds 2] [--steps 15] [--batch-size 256] [--image-size 32]
    python benchmarks/throughput.py --only "float32" "float32, oneDNN off"   # a subset
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "float32": dict(precision="float32", jit=False, replicas=1),
    "mixed_bfloat16": dict(precision="mixed_bfloat16", jit=False, replicas=1),
    "float32 + XLA": dict(precision="float32", jit=True, replicas=1),
    "float32, 2 logical replicas": dict(precision="float32", jit=False, replicas=2),
    "float32, oneDNN off": dict(precision="float32", jit=False, replicas=1, onednn="0"),
}

WORKER = """
import json, sys, time, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf
config = json.loads(sys.argv[1])
if config["replicas"] > 1:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * config["replicas"])
import keras
from kssl.runtime.precision import set_precision
from kssl.encoders import resnet
from kssl.models import SimCLR
set_precision(config["precision"])
strategy = (tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(config["replicas"])])
            if config["replicas"] > 1 else tf.distribute.get_strategy())
size, batch = config["image_size"], config["batch_size"]
with strategy.scope():
    model = SimCLR(resnet(18, width=0.25, image_size=size), local_crops=0)  # two views at any size
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=config["jit"])
views = tf.random.uniform((batch, size, size, 3))
data = tf.data.Dataset.from_tensors((views, views)).repeat()
model.fit(data, epochs=1, steps_per_epoch=3, verbose=0)  # trace and warm up
start = time.perf_counter()
model.fit(data, epochs=1, steps_per_epoch=config["steps"], verbose=0)
print(json.dumps({"views_per_second": 2 * batch * config["steps"] / (time.perf_counter() - start)}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), help="configurations to run")
    args = parser.parse_args()
    if "float32" not in args.only:
        parser.error('--only must include "float32", the baseline of the ratios')
    results = {name: [] for name in args.only}
    for round_index in range(args.rounds):
        for name in args.only:
            config = dict(CONFIGS[name], steps=args.steps, batch_size=args.batch_size, image_size=args.image_size)
            env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=config.pop("onednn", "1"))
            output = subprocess.run(
                [sys.executable, "-c", WORKER, json.dumps(config)], capture_output=True, text=True, check=True, env=env
            ).stdout
            value = json.loads(output.strip().splitlines()[-1])["views_per_second"]
            results[name].append(value)
            print(f"round {round_index + 1} {name:30s} {value:8.0f} views/s", flush=True)
    base = statistics.median(results["float32"])
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, batch {args.batch_size}, {args.image_size} px, "
          "quarter-width ResNet-18 SimCLR step")  # fmt: skip
    print("| configuration | views/s (median) | ratio to float32 |\n| --- | --- | --- |")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()

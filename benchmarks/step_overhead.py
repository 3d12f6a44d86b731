"""Steps/s of `kssl.pretrain` with 1 and with several steps per execution, alternated.

The default small encoder (quarter-width ResNet-18) on the digits at 16 px, where the
per-step cost outside the compiled step (returning to Python, callbacks, the
checkpoint's bookkeeping) weighs most. Each contender trains `--steps` steps with a
`StepCheckpoint` every 100 steps, in alternating order over `--rounds` rounds; the time
per step after the first call of the train function (tracing) is timed, and the median
over rounds reported.

    python benchmarks/step_overhead.py --steps 60 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


class StepClock:
    """Seconds per step after the first call of the train function (which traces it)."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.marks = []

            def on_train_batch_end(self, batch, logs=None):
                self.marks.append((batch, time.perf_counter()))

            def seconds_per_step(self):
                (first_step, first_time), (last_step, last_time) = self.marks[0], self.marks[-1]
                return (last_time - first_time) / (last_step - first_step)

        return Clock()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--executions", default="1,4,16", help="steps_per_execution values to compare")
    args = parser.parse_args(argv)

    import kssl
    from kssl.runtime.cpu import cpu_model
    from kssl.runtime.precision import precision_choice, set_precision
    from kssl.training import pretrain

    set_precision(precision_choice()[0])
    images = kssl.load_digits(image_size=16)
    contenders = [int(v) for v in args.executions.split(",")]
    times = {k: [] for k in contenders}
    epochs = args.steps * args.batch_size / len(images)
    for round_ in range(args.rounds + 1):  # round 0 warms up (tracing) and is not counted
        for k in contenders if round_ % 2 else list(reversed(contenders)):
            encoder = kssl.resnet(18, width=0.25, image_size=16)
            clock = StepClock()
            pretrain(images, encoder, epochs=epochs, batch_size=args.batch_size, verbose=0, callbacks=[clock],
                     steps_per_execution=k, checkpoint_dir=tempfile.mkdtemp())  # fmt: skip
            if round_:
                times[k].append(clock.seconds_per_step())
    print(f"CPU: {cpu_model()}; {args.steps} steps of batch {args.batch_size} at 16 px, median of {args.rounds}")
    base = statistics.median(times[contenders[0]])
    for k in contenders:
        per_step = statistics.median(times[k])
        print(f"steps_per_execution={k:3d}: {1 / per_step:6.2f} steps/s  ({base / per_step:.2f}x)")


if __name__ == "__main__":
    main()

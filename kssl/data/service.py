"""View preparation on other machines through TensorFlow's tf.data service, step for step
the batches local training computes.

A dispatcher and workers run on CPU machines (`kssl data-service dispatcher|worker`);
the trainer sends them the graph of its view pipeline and reads the batches back. The
service delivers each element at most once, in any order (dynamic sharding), and loses
what a worker held when it dies. So the unit of work is a step: the served dataset is
`range(start_step, total_steps)`, each element a step's whole batch tagged with its
step, computed from the seed and the step alone (`kssl.data.shuffle`,
`kssl.data.pipeline.view_pairs(tag_steps=True)`). The trainer (`served_batches`) puts
the batches back in step order with a small reorder buffer, and computes a step itself
when it has not arrived within `timeout` seconds while later ones have (a worker that
died or hangs); a late copy of a step already used is dropped. Training then sees
exactly the batches of local training, whatever the workers do.

The workers read the files by their paths: they need the data folder at the same path
(a shared or copied file system). What the served graph holds is TensorFlow ops only
(no `py_function`, which the service cannot run), and the file paths as a constant.
"""

from __future__ import annotations

import queue
import socket
import sys
import threading
import time

import numpy as np
import tensorflow as tf

from kssl.errors import InputError

PROTOCOL = "grpc"
# What the later steps kept while the next one is awaited may hold (and at least 8 of
# them): with two or three workers, each reading some 5 steps ahead, steps came up to 10
# early (flowers, 64 px); fewer places made the trainer compute steps still on their way.
_WAITING_BYTES = 2 * 2**30


def service_address(address: str) -> tuple[str, int]:
    """`(host, port)` of `HOST:PORT` or `grpc://HOST:PORT`, or an `InputError`."""
    text = address.split("://", 1)[-1]
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InputError(f"{address!r}: write the dispatcher's address as HOST:PORT with a port of 1 to 65535, "
                         "e.g. gpu-box:5050.")  # fmt: skip
    return host, int(port)


def check_reachable(address: str, timeout: float = 10.0) -> str:
    """The service's `grpc://HOST:PORT`, once a TCP connection to it succeeds within
    `timeout` seconds; else an `InputError` (an unreachable dispatcher would make the
    trainer wait forever)."""
    host, port = service_address(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic())):
                return f"{PROTOCOL}://{host}:{port}"
        except OSError as error:
            if time.monotonic() >= deadline:
                raise InputError(
                    f"No tf.data service dispatcher answers at {host}:{port} ({error.strerror or error}). Start one "
                    "with `kssl data-service dispatcher --port PORT --work-dir DIR` and its workers with "
                    "`kssl data-service worker --dispatcher HOST:PORT`, or leave --data-service out."
                ) from None
            time.sleep(0.2)


def check_data_service(address: str, image_set, timeout: float = 10.0) -> str:
    """The service's `grpc://` address for pretraining on `image_set`, or an `InputError`:
    the dispatcher must answer, and the source's batches must be computable from their step
    alone (images in memory or files; a TFDS stream is read in order)."""
    from kssl.data.pipeline import reader_for

    if not reader_for(image_set).indexed:
        raise InputError(
            f"--data-service needs images in a folder (or in memory); {image_set.source!r} is a TFDS stream, whose "
            "batches need every record before them. Leave --data-service out, or export the split to a folder."
        )
    return check_reachable(address, timeout)


def job_name(strategy) -> str:
    """A job name of its own for this trainer and run: a dispatcher refuses a name reused
    with another graph, and each trainer of a multi-worker run reads its own rows."""
    import os
    import uuid

    task = getattr(getattr(strategy, "cluster_resolver", None), "task_id", 0) or 0
    return f"kssl-{os.getpid()}-task{task}-{uuid.uuid4().hex[:8]}"


def run_dispatcher(port: int, work_dir: str, stop: threading.Event | None = None):
    """Serves as the dispatcher on `port` (fault tolerant: its journal in `work_dir`, so a
    restarted dispatcher resumes its jobs) until Ctrl-C or `stop`."""
    config = tf.data.experimental.service.DispatcherConfig(
        port=port, protocol=PROTOCOL, work_dir=str(work_dir), fault_tolerant_mode=True
    )
    server = tf.data.experimental.service.DispatchServer(config)
    print(f"kssl data-service dispatcher: listening on {socket.gethostname()}:{server._address.split(':')[-1]} "
          f"(work dir {work_dir}); Ctrl-C stops it", flush=True)  # fmt: skip
    _serve(server, stop)


def run_worker(dispatcher: str, port: int = 0, stop: threading.Event | None = None):
    """Serves as a worker of the dispatcher at `dispatcher` (`HOST:PORT`) until Ctrl-C or `stop`."""
    host, dispatcher_port = service_address(dispatcher)
    check_reachable(dispatcher)
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=f"{host}:{dispatcher_port}", port=port, protocol=PROTOCOL
    )
    server = tf.data.experimental.service.WorkerServer(config)
    print(f"kssl data-service worker: listening on {socket.gethostname()}:{server._address.split(':')[-1]}, "
          f"serving the dispatcher at {host}:{dispatcher_port}; Ctrl-C stops it", flush=True)  # fmt: skip
    _serve(server, stop)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _serve(server, stop):
    """Serves until Ctrl-C, SIGTERM (what `docker stop` and systemd send) or `stop`; a
    process started in the background of a script, where SIGINT is ignored, stops on it too."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        while stop is None or not stop.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server._stop()
        print("kssl data-service: stopped", flush=True)


def served_batches(make_steps, start_step: int, stop_step: int, service: str, job_name: str, timeout: float = 60.0,
                   first_timeout: float | None = None):  # fmt: skip
    """A `tf.data.Dataset` of the batches of steps `start_step` to `stop_step - 1`, in step
    order, computed by the tf.data service's workers.

    `make_steps(start, stop)` is the tagged pipeline (`(step, batch)` elements, e.g.
    `view_pairs(..., start_step=start, stop_step=stop, tag_steps=True)`): the service runs
    it over all the steps, and a step that has not arrived `timeout` seconds after it
    became the next one, while later steps have, is computed here by the same function.
    `job_name` must be new for every run and trainer: iterators that share a job name share
    its elements (`job_name`).

    Before it returns, the first batch the service sends is compared bit for bit with the
    same step computed here (`make_steps(step, step + 1)`, the function that rebuilds lost
    steps): a service whose workers send nothing within `timeout`, fail, or compute other
    batches (other files at the same paths, another TensorFlow) is an `InputError` then,
    not a run trained on other data or one that waits forever. The first batch may take
    `first_timeout` seconds (default: `timeout`, at least 30 s): the workers build the
    pipeline before they compute it.
    """
    served = make_steps(start_step, stop_step).apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            service=service,
            job_name=job_name,
            max_outstanding_requests=2,  # each request a whole batch: bounded memory on the trainer
            # Uncompressed: snappy ("AUTO") cut what one trainer can take in by 1.1-1.6x on
            # loopback (benchmarks/data_service.py --intake, BENCHMARKS.md), and views,
            # pixels or floats, barely compress.
            compression=None,
        )
    )
    signature = served.element_spec[1]
    arrivals = _Arrivals(served)
    try:
        first = _first_arrival(arrivals, service, max(timeout, 30.0) if first_timeout is None else first_timeout)
        _check_same_batch(first, make_steps, service)
    except BaseException:
        arrivals.close()
        raise
    iterated = []

    def in_order():
        if iterated:
            raise RuntimeError("the batches of a tf.data service job are read once; call served_batches again")
        iterated.append(True)
        try:
            yield from _ordered(arrivals, first, make_steps, start_step, stop_step, timeout)
        finally:  # also when training stops early or fails: the reader lets go
            arrivals.close()

    return tf.data.Dataset.from_generator(in_order, output_signature=signature)


class _Arrivals:
    """What the service sends, `(step, batch)`, then `("end", None)` or `("error", error)`,
    read on a thread of its own (the service's iterator blocks; the trainer must be able to
    stop waiting) into a small queue."""

    def __init__(self, served):
        self.queue: queue.Queue = queue.Queue(maxsize=2)  # batches of up to hundreds of MB: few
        self.closed = threading.Event()
        threading.Thread(target=self._read, args=(served,), daemon=True).start()

    def _put(self, item) -> bool:
        while not self.closed.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, served):
        try:
            for step, batch in served:
                if not self._put((int(step), batch)):
                    return  # the iterator goes with the thread: the job's client ends
        except Exception as error:  # noqa: BLE001 - handed to the trainer
            self._put(("error", error))
        self._put(("end", None))

    def get(self, timeout: float):
        """The next arrival, or `None` after `timeout` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        self.closed.set()


def _first_arrival(arrivals, service, timeout):
    arrival = arrivals.get(timeout)
    if arrival is None:
        raise InputError(
            f"The tf.data service at {service} sent no batch within {timeout:g} s: its dispatcher answers, but no "
            "worker computed this run's first step. Start workers with `kssl data-service worker --dispatcher "
            "HOST:PORT` (and check their output), or raise --data-service-timeout if they are slow to start."
        )
    if arrival[0] in ("end", "error"):
        reason = _first_line(arrival[1]) if arrival[0] == "error" else "it ended without sending one"
        raise InputError(f"The tf.data service at {service} could not compute this run's batches: {reason}")
    return arrival


def _check_same_batch(first, make_steps, service):
    step, batch = first
    here = _computed_here(make_steps, step)
    served, local = tf.nest.flatten(batch), tf.nest.flatten(here)
    if len(served) != len(local) or any(
        a.shape != b.shape or not bool(tf.reduce_all(a == b)) for a, b in zip(served, local)
    ):
        raise InputError(
            f"Step {step}'s batch from the tf.data service at {service} differs from the same step computed here, so "
            "its workers would train another run: they read other files at the same paths, cannot read some "
            f"(they need this run's data folder at the same path), or run another TensorFlow than {tf.__version__}. "
            "Give the workers the same data and TensorFlow, or leave --data-service out."
        )


def _computed_here(make_steps, step):
    """Step `step`'s batch, computed by the trainer (a lost step, or the first-step check)."""
    return next(iter(make_steps(step, step + 1)))[1]


def _first_line(error) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _ordered(arrivals, first, make_steps, start_step, stop_step, timeout):
    """The batches of steps `start_step` to `stop_step - 1` in order: each from the service
    when it arrives, else computed here (see `served_batches`).

    A step is taken as lost, and computed here, when it has not come `timeout` seconds
    after it became the next one, or `timeout` seconds after a later step came (so the
    several steps a dead worker held cost one wait, not one each), or when the later steps
    waiting fill `_WAITING_BYTES` (the trainer's memory stays bounded).
    """
    step_bytes = sum(np.asarray(t).nbytes for t in tf.nest.flatten(first[1]))  # TensorFlow's tensors have no nbytes
    most_waiting = max(8, _WAITING_BYTES // max(step_bytes, 1))
    waiting = {first[0]: (first[1], time.monotonic())}  # step: (batch, when it came)
    ended = False
    for step in range(start_step, stop_step):
        became_next = time.monotonic()
        reason = None
        while step not in waiting and not ended:
            now = time.monotonic()
            first_later = min((came for s, (_, came) in waiting.items() if s > step), default=now)
            if now - became_next > timeout:
                reason = f"within {timeout:g} s"
            elif now - first_later > timeout:
                reason = f"within {timeout:g} s of a later one"
            elif len(waiting) >= most_waiting:
                reason = f"while {len(waiting)} later ones waited"
            if reason:
                break
            arrival = arrivals.get(0.2)
            if arrival is None:
                continue
            got, batch = arrival
            if got in ("end", "error"):
                ended = True
                why = _first_line(batch) if got == "error" else "its job ended early"
                print(f"kssl: the tf.data service stopped serving at step {step} ({why}); the remaining steps "
                      "are computed here", file=sys.stderr, flush=True)  # fmt: skip
            elif got >= step:  # a late copy of a step already rebuilt is dropped
                waiting[got] = (batch, time.monotonic())
        if step in waiting:
            yield waiting.pop(step)[0]
        elif ended:  # one local pipeline for the rest, not one per step
            for _, batch in make_steps(step, stop_step):
                yield batch
            return
        else:
            print(f"kssl: step {step} did not come from the tf.data service {reason}; computed here",
                  file=sys.stderr, flush=True)  # fmt: skip
            yield _computed_here(make_steps, step)

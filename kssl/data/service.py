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

import tensorflow as tf

from kssl.errors import InputError

PROTOCOL = "grpc"


def service_address(address: str) -> tuple[str, int]:
    """`(host, port)` of `HOST:PORT` or `grpc://HOST:PORT`, or an `InputError`."""
    text = address.split("://", 1)[-1]
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--data-service {address!r}: write the dispatcher's address as HOST:PORT, e.g. gpu-box:5050.")
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


def served_batches(make_steps, start_step: int, stop_step: int, service: str, job_name: str, timeout: float = 60.0):
    """A `tf.data.Dataset` of the batches of steps `start_step` to `stop_step - 1`, in step
    order, computed by the tf.data service's workers.

    `make_steps(start, stop)` is the tagged pipeline (`(step, batch)` elements, e.g.
    `view_pairs(..., start_step=start, stop_step=stop, tag_steps=True)`): the service runs
    it over all the steps, and a step that has not arrived `timeout` seconds after it
    became the next one, while later steps have, is computed here by the same function.
    `job_name` must be new for every run and trainer: iterators that share a job name share
    its elements (`job_name`).
    """
    served = make_steps(start_step, stop_step).apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            service=service,
            job_name=job_name,
            max_outstanding_requests=2,  # each request a whole batch: bounded memory on the trainer
        )
    )
    signature = served.element_spec[1]
    arrived: queue.Queue = queue.Queue(maxsize=64)
    done = threading.Event()  # the trainer has stopped reading (finished, or training failed)

    def hand_over(item) -> bool:
        while not done.is_set():
            try:
                arrived.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read():  # the service's iterator blocks: a thread, so the trainer can time out
        try:
            for step, batch in served:
                if not hand_over((int(step), batch)):
                    return  # the iterator goes with the thread: the job's client ends
        except Exception as error:  # noqa: BLE001 - handed to the trainer, which rebuilds what is missing
            hand_over(("error", error))
        hand_over(("end", None))

    def in_order():
        threading.Thread(target=read, daemon=True).start()
        try:
            yield from ordered()
        finally:  # also when training stops early or fails: the reader lets go
            done.set()

    def ordered():
        waiting, ended, degraded_until = {}, False, 0.0
        for step in range(start_step, stop_step):
            became_next = time.monotonic()
            while step not in waiting and not ended:
                now = time.monotonic()
                # Lost with a worker or late: after `timeout` seconds, or at once while a
                # step was just lost and a later one has come (a dead worker held several).
                if now - became_next > timeout or (now < degraded_until and any(s > step for s in waiting)):
                    break
                try:
                    got, batch = arrived.get(timeout=0.2)
                except queue.Empty:
                    continue
                if got in ("end", "error"):
                    ended = True
                elif got >= step:  # a late copy of a step already rebuilt is dropped
                    waiting[got] = batch
            if step in waiting:
                yield waiting.pop(step)
                continue
            degraded_until = time.monotonic() + timeout
            print(f"kssl: step {step} did not come from the tf.data service within {timeout:g} s; computed here",
                  file=sys.stderr, flush=True)  # fmt: skip
            yield next(iter(make_steps(step, step + 1)))[1]

    return tf.data.Dataset.from_generator(in_order, output_signature=signature)

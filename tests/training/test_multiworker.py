"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 train to the weights of one process,
each reading and decoding only its own half of every global batch, from the files or through
the tf.data service."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import TINY_MODEL, stop_servers, tiny_encoder

TESTS = pathlib.Path(__file__).parents[1]  # helpers.py: the tests folder

SCRIPT = textwrap.dedent(
    """
    import json, pathlib, sys
    import keras, numpy as np, tensorflow as tf
    import kssl.data.readers as readers
    import kssl.data.service as data_service
    from kssl.data.files import list_folder
    from kssl.data.pipeline import view_pairs
    from kssl.data.subsets import label_subset
    from kssl.runtime.distribute import distribute_batches, strategy_from_name
    from kssl.evaluation.features import extract_features
    from kssl.training import finetune, pretrain

    folder, out = sys.argv[1], sys.argv[2]
    sys.path.insert(0, sys.argv[3])  # the tests' folder
    from helpers import tiny_encoder
    strategy = strategy_from_name("multiworker")  # reads TF_CONFIG
    keras.utils.set_random_seed(0)
    files = list_folder(folder, progress=False)
    read = []  # every file this process reads, counted as it is read

    def counting_read(path):
        def count(p):
            read.append(p.numpy())
            return 0

        with tf.control_dependencies([tf.py_function(count, [path], tf.int32)]):
            return tf.io.read_file(path)

    # 1. Two fixed steps, to compare with one process (the test's own). The first worker
    # reads its rows from the tf.data service, the second computes them: the same batches.
    with strategy.scope():  # build in the scope, as users should: no copy is needed then
        encoder = tiny_encoder(8)
    service = sys.argv[4] if strategy.cluster_resolver.task_id == 0 else None
    jobs = []  # the service's jobs this worker reads from
    serve = data_service.served_batches
    data_service.served_batches = lambda *args, **kwargs: jobs.append(args[4]) or serve(*args, **kwargs)
    model, _ = pretrain(files, encoder, epochs=0.5, batch_size=32, strategy=strategy, verbose=0,
                        data_service=service)  # 2 steps
    np.savez(out + ".fixed.npz", *[np.asarray(w.numpy()) for w in model.weights])
    readers._read_file = counting_read  # a py_function, which the service could not run
    # One full pass over the 4 batches of 32, as training reads them: count the reads.
    del read[:]
    passes = distribute_batches(
        strategy, lambda rows: view_pairs(files.at_size(8), 32, repeat=False, rows=rows), 32
    )
    for _ in passes:
        pass
    reads = len(read)
    # 2. Fine-tuning and bfloat16 features, as `kssl run` does on a CPU with AVX512-BF16 (a
    # time budget's stop, which both workers must agree on: the slow test of the command).
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(1)
    with strategy.scope():
        encoder = tiny_encoder(8)
    images = files.load(8, progress=False)
    classifier, _ = finetune(encoder, label_subset(images, 2, seed=0), epochs=1, batch_size=8, strategy=strategy,
                             verbose=0)
    features = extract_features(encoder, images.subset(range(20)))
    np.savez(out + ".budget.npz", *[np.asarray(w.numpy()) for w in classifier.weights], features=features)
    pathlib.Path(out + ".json").write_text(json.dumps({"reads": reads, "jobs": len(jobs)}))
    """
)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# Two TensorFlow processes (~40 s on 2 cores): CI runs it. In this process, tests/runtime/test_distribute.py
# and every contract test check two replicas against one device.
@pytest.mark.slow
def test_one_two_worker_cluster_matches_one_process_and_finetunes_in_bfloat16(tmp_path):
    import keras
    import tensorflow as tf
    from PIL import Image

    from kssl.data.files import list_folder
    from kssl.data.sources import load_digits
    from kssl.training import pretrain

    folder = tmp_path / "digits"
    digits = load_digits(image_size=8).subset(range(128))
    for i, (image, label) in enumerate(zip(digits.images, digits.labels)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / str(label) / f"{i}.png")
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=0))
    address = dispatcher.target.split("://")[1]
    servers = [dispatcher, service.WorkerServer(service.WorkerConfig(dispatcher_address=address))]
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
        )
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", SCRIPT, str(folder), str(tmp_path / f"worker{index}"), str(TESTS), address],
                env=env,
                stderr=subprocess.PIPE,
            )  # fmt: skip
        )
    # The reference: the same two steps in this process, on one device, while they run.
    keras.utils.set_random_seed(0)
    initial = []
    snapshot = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: initial.extend(np.array(w.numpy()) for w in snapshot.model.weights)
    )
    reference, _ = pretrain(list_folder(folder, progress=False), tiny_encoder(8), epochs=0.5,
                            batch_size=32, verbose=0, callbacks=[snapshot])  # fmt: skip
    reference = [np.asarray(w.numpy()) for w in reference.weights]
    try:
        for process in processes:
            try:
                _, err = process.communicate(timeout=400)
            finally:
                process.kill()
            assert process.returncode == 0, err.decode()[-3000:]
    finally:
        stop_servers(servers)
    notes = [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in (0, 1)]
    assert [n["jobs"] for n in notes] == [1, 0]  # the first worker's rows came from the service
    assert [n["reads"] for n in notes] == [64, 64]  # each worker reads and decodes half the images: its rows
    fixed = [np.load(tmp_path / f"worker{i}.fixed.npz") for i in (0, 1)]
    assert len(reference) > 25
    assert len(initial) == len(reference)
    for index in range(len(reference)):
        np.testing.assert_array_equal(fixed[0][f"arr_{index}"], fixed[1][f"arr_{index}"], err_msg=f"arr_{index}")
    # Float rounding only: two half-batch gradients summed vs one whole-batch gradient. Batch
    # norm amplifies it in a few channels (an almost constant channel of the 8-px digits
    # differed by 4e-5 on one thread, by 7e-4 after a harmless change of the views' float
    # order), so the check is on the two steps' updates, relative to the update itself:
    # measured 4e-6 of its norm here, while two steps on other images missed it by 87%.
    error = [fixed[0][f"arr_{i}"] - reference[i] for i in range(len(reference))]
    update = [reference[i] - initial[i] for i in range(len(reference))]
    total = np.sqrt(sum(np.sum(e**2) for e in error) / sum(np.sum(u**2) for u in update))
    assert total < 0.01, f"the two workers' update misses one process's by {total:.2%} of its norm"
    for index, (e, u) in enumerate(zip(error, update)):
        if np.any(u):  # a weight the two steps moved
            assert np.linalg.norm(e) <= 0.2 * np.linalg.norm(u) + 1e-6, f"arr_{index}"
    budget = [np.load(tmp_path / f"worker{i}.budget.npz") for i in (0, 1)]
    assert len(budget[0].files) > 20 and np.isfinite(budget[0]["features"]).all()
    for name in budget[0].files:
        np.testing.assert_array_equal(budget[0][name], budget[1][name], err_msg=name)


def run_command_on_two_workers(make_args, timeout=600):
    """Runs `kssl ARGS` as two MultiWorkerMirroredStrategy workers on 127.0.0.1, as the README shows."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        cluster = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(cluster))
        command = [sys.executable, "-m", "kssl", *make_args(index), "--strategy", "multiworker"]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=timeout)
        finally:
            process.kill()
        assert process.returncode == 0, (out.decode()[-2000:], err.decode()[-3000:])
        outputs.append(out.decode())
    return outputs


def saved_weights(path):
    import keras

    import kssl  # noqa: F401  (registers kssl's layers for loading)

    return keras.saving.load_model(path).get_weights()


def assert_identical(path_0, path_1):
    weights_0, weights_1 = saved_weights(path_0), saved_weights(path_1)
    assert len(weights_0) == len(weights_1) > 15
    for a, b in zip(weights_0, weights_1):
        np.testing.assert_array_equal(a, b)


TINY = ["--image-size", "8", *TINY_MODEL, "--batch-size", "32"]


@pytest.mark.slow  # the whole `kssl run` on two workers (the cluster test above covers its parts but the budget)
def test_the_readme_two_worker_command_pretrains_on_a_budget_and_finetunes_to_identical_weights(tmp_path):
    # One cluster for the command's whole path: pretraining under a time budget (both
    # workers stop after the same step), fine-tuning, and the saved files.
    outputs = run_command_on_two_workers(
        lambda i: ["run", *TINY, "--budget", "0.15", "--labels", "2", "--finetune-epochs", "2",
                   "--out", str(tmp_path / f"worker{i}")]
    )  # fmt: skip
    assert all("2 replicas" in out for out in outputs)
    metrics = [json.loads((tmp_path / f"worker{i}" / "metrics.json").read_text()) for i in (0, 1)]
    assert metrics[0]["pretraining"]["steps"] == metrics[1]["pretraining"]["steps"] > 1
    assert metrics[0]["label_budgets"] == metrics[1]["label_budgets"]
    for name in ("encoder.keras", "classifier.keras"):
        assert_identical(*(tmp_path / f"worker{i}" / name for i in range(2)))


@pytest.mark.slow  # two two-worker clusters of the command; the service's own tests are tests/data/test_service.py
def test_two_trainers_reading_their_rows_from_the_data_service_train_the_weights_they_train_alone(tmp_path):
    import tensorflow as tf
    from helpers import write_image_folder

    service = tf.data.experimental.service
    data = write_image_folder(tmp_path / "photos", classes=2, per_class=32, shapes=((14, 20), (18, 12)))
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=0, work_dir=str(tmp_path / "journal"),
                                                                 fault_tolerant_mode=True))  # fmt: skip
    address = dispatcher.target.split("://")[1]
    workers = [service.WorkerServer(service.WorkerConfig(dispatcher_address=address)) for _ in range(2)]
    try:
        for name, extra in (("alone", []), ("served", ["--data-service", address])):
            run_command_on_two_workers(
                lambda i, name=name, extra=extra: ["pretrain", "--data", str(data), *TINY, "--epochs", "2",
                                                   "--no-knn-monitor", "--no-tensorboard", "--stream", *extra,
                                                   "--out", str(tmp_path / f"{name}{i}")]
            )  # fmt: skip
    finally:
        stop_servers([*workers, dispatcher])
    for name in ("alone1", "served0", "served1"):
        assert_identical(tmp_path / "alone0" / "encoder.keras", tmp_path / name / "encoder.keras")

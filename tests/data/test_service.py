"""The tf.data service gives training the batches of local training, in step order: the
order restored, lost steps computed here and late copies dropped (the ordering alone, fed by
the test), and workers that would compute other batches refused before training (a
dispatcher and workers in this process: their servers are threads). Training through the
service with a worker killed: tests/app/test_cli_service.py (the commands, in processes of their
own, killed and resumed to the local weights) and tests/training/test_multiworker.py (a trainer
reading from the service trains the weights of one that computes its batches). Every run
through the service also checks its first served step against the same step computed here,
the function that computes lost steps."""

import pytest
import tensorflow as tf
from helpers import FakeClock, stop_servers, write_image_folder

import kssl.data.service as service_module
from kssl.data.files import list_folder
from kssl.data.pipeline import view_pairs
from kssl.data.service import _ordered, check_reachable, served_batches
from kssl.errors import InputError

service = tf.data.experimental.service


@pytest.fixture
def cluster(tmp_path):
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=0, work_dir=str(tmp_path / "journal"),
                                                                 fault_tolerant_mode=True))  # fmt: skip
    address = dispatcher.target.split("://")[1]
    workers = [service.WorkerServer(service.WorkerConfig(dispatcher_address=address)) for _ in range(2)]
    yield dispatcher, workers
    stop_servers([*workers, dispatcher])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = write_image_folder(tmp_path_factory.mktemp("service") / "photos", classes=2, per_class=12,
                              shapes=((14, 20), (18, 12)), formats=("png", "jpg"))  # fmt: skip
    return list_folder(root, progress=False).at_size(8)


def steps_of(files, start, stop, **options):
    return view_pairs(files, batch_size=8, seed=3, start_step=start, stop_step=stop, tag_steps=True, **options)


def test_workers_that_compute_other_batches_are_refused_before_training(files, cluster):
    # As workers that read other files at the same paths would: the served graph differs.
    dispatcher, _ = cluster

    def make_steps(start, stop):
        steps = steps_of(files, start, stop)
        if stop - start == 1:
            return steps  # the trainer's own, which rebuilds lost steps
        return steps.map(lambda step, views: (step, tf.nest.map_structure(lambda t: t * 0.5, views)))

    with pytest.raises(InputError, match=r"Step \d's batch from the tf.data service at .* differs from the same step"):
        served_batches(make_steps, 0, 4, dispatcher.target, "other-data", timeout=1.0)


class Arrivals:  # what `served_batches` reads from the service, fed by the test, on a fake clock
    def __init__(self, items, monkeypatch):
        self.items, self.clock = list(items), FakeClock()
        monkeypatch.setattr(service_module, "time", self.clock)

    def get(self, timeout):
        item = self.items.pop(0) if self.items else None
        if item is None:  # nothing within `timeout`
            self.clock.sleep(timeout)
        return item


def local_steps(calls):
    def make_steps(start, stop):
        calls.append((start, stop))
        return [(step, f"here {step}") for step in range(start, stop)]

    return make_steps


def test_the_order_is_restored_lost_steps_are_computed_here_and_late_copies_dropped(capfd, monkeypatch):
    calls = []
    arrivals = Arrivals([(2, "served 2"), (4, "served 4"), (1, "served 1"), (1, "copy of 1"), None, None,
                         (3, "late 3"), (5, "served 5")], monkeypatch)  # fmt: skip
    got = list(_ordered(arrivals, (0, "served 0"), local_steps(calls), 0, 6, timeout=0.3))
    # Step 3 was not there 0.3 s after step 2 was used; its late copy is dropped.
    assert got == ["served 0", "served 1", "served 2", "here 3", "served 4", "served 5"]
    assert calls == [(3, 4)]
    assert "step 3 did not come from the tf.data service within 0.3 s; computed here" in capfd.readouterr().err


def test_when_the_service_fails_the_remaining_steps_are_computed_here_in_one_pipeline(capfd, monkeypatch):
    calls = []
    arrivals = Arrivals([(1, "served 1"), ("error", RuntimeError("Failed to get element from worker\nmore"))],
                        monkeypatch)  # fmt: skip
    got = list(_ordered(arrivals, (0, "served 0"), local_steps(calls), 0, 5, timeout=30))
    assert got == ["served 0", "served 1", "here 2", "here 3", "here 4"]
    assert calls == [(2, 5)]  # at once, not after the timeout
    err = capfd.readouterr().err
    assert "stopped serving at step 2 (Failed to get element from worker)" in err


def test_an_unreachable_dispatcher_is_a_clear_error_in_bounded_time():
    import socket
    import time

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(InputError, match=f"No tf.data service dispatcher answers at 127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}", timeout=1.0)
    assert time.monotonic() - started < 5
    with pytest.raises(InputError, match="HOST:PORT"):
        check_reachable("no-port-here")


def test_the_steps_a_dead_worker_held_cost_one_wait_and_waiting_steps_are_bounded(capfd, monkeypatch):
    # Steps 1 and 3 were held by a worker that died; 2 and 4 came early from another.
    calls = []
    arrivals = Arrivals([(2, "served 2"), (4, "served 4"), None, None, None, None, None, None], monkeypatch)
    got = list(_ordered(arrivals, (0, "served 0"), local_steps(calls), 0, 5, timeout=0.5))
    assert got == ["served 0", "here 1", "served 2", "here 3", "served 4"] and calls == [(1, 2), (3, 4)]
    err = capfd.readouterr().err
    assert "step 1 did not come from the tf.data service within 0.5 s; computed here" in err
    # Step 3 is lost at once: step 4 came more than the timeout before.
    assert "step 3 did not come from the tf.data service within 0.5 s of a later one" in err
    assert len(arrivals.items) >= 3  # not waited for again
    # However long the timeout, the later steps kept on the trainer fill at most its budget.
    # The batches are what the service's iterator hands over: TensorFlow tensors, 64 bytes each.
    monkeypatch.setattr(service_module, "_WAITING_BYTES", 10 * 64)  # room for 10 of them
    calls.clear()
    arrivals = Arrivals([(step, tf.fill([16], step)) for step in range(2, 12)], monkeypatch)
    got = list(_ordered(arrivals, (1, tf.fill([16], 1)), local_steps(calls), 0, 12, timeout=5))
    assert got[0] == "here 0" and calls == [(0, 1)] and [int(b[0]) for b in got[1:]] == list(range(1, 12))
    assert "step 0 did not come from the tf.data service while 10 later ones waited" in capfd.readouterr().err
    monkeypatch.setattr(service_module, "_WAITING_BYTES", 1)  # and never fewer than 8
    arrivals = Arrivals([(step, tf.fill([16], step)) for step in range(2, 10)], monkeypatch)
    list(_ordered(arrivals, (1, tf.fill([16], 1)), local_steps(calls), 0, 10, timeout=5))
    assert "step 0 did not come from the tf.data service while 8 later ones waited" in capfd.readouterr().err

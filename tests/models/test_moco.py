"""MoCo: the queue holds the newest keys first, the key encoder is an EMA, batch sizes are checked."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import digits, tiny_encoder

from kssl.errors import InputError
from kssl.models import MoCo


def unit(x):
    x = np.asarray(x)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("symmetric", [True, False])
def test_a_step_enqueues_the_keys_of_the_batch_in_front_of_the_older_ones(rng, symmetric):
    v1, v2 = rng.random((2, 4, 16, 16, 3)).astype("float32")
    model = MoCo(tiny_encoder(), queue_size=24, momentum=0.5, symmetric=symmetric)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    old_queue = model.queue.numpy().copy()
    keys = model.target_projections((v1, v2), training=True).numpy()  # what the step's keys will be
    model.fit(tf.data.Dataset.from_tensors((v1, v2)), verbose=0, shuffle=False)
    new_keys = np.concatenate([keys[4:], keys[:4]]) if symmetric else keys[4:]
    queue = model.queue.numpy()
    np.testing.assert_allclose(queue[: len(new_keys)], unit(new_keys), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(queue[len(new_keys) :], old_queue[: 24 - len(new_keys)])


def test_key_network_follows_the_online_network_by_momentum(rng):
    views = tuple(rng.random((2, 8, 16, 16, 3)).astype("float32"))
    model = MoCo(tiny_encoder(), queue_size=32, momentum=0.9)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    pairs = list(
        zip(
            model.encoder.trainable_variables + model.projector.trainable_variables,
            model.target_encoder.trainable_variables + model.target_projector.trainable_variables,
        )
    )
    before = [np.array(t.numpy()) for _, t in pairs]
    model.fit(tf.data.Dataset.from_tensors(views), verbose=0, shuffle=False)
    for (online, target), target_before in zip(pairs, before):
        np.testing.assert_allclose(target.numpy(), 0.9 * target_before + 0.1 * online.numpy(), rtol=1e-5, atol=1e-6)
    assert not {id(v) for v in model.optimized_variables} & {id(t) for _, t in pairs}


@pytest.mark.parametrize("queue_size,batch,symmetric", [(48, 32, True), (20, 32, False)])
def test_a_queue_that_cannot_hold_a_step_is_refused_with_a_fix(queue_size, batch, symmetric):
    from kssl.training import pretrain

    keys = batch * (2 if symmetric else 1)
    with pytest.raises(InputError, match=rf"queue_size={queue_size} .*{keys} keys.*at least {keys}"):
        pretrain(
            digits().subset(range(64)),
            tiny_encoder(),
            epochs=1,
            batch_size=batch,
            method="moco",
            method_options={"queue_size": queue_size, "symmetric": symmetric},
            verbose=0,
        )


def test_a_queue_that_is_not_a_multiple_of_a_step_keeps_the_newest_keys(rng):
    views = tuple(rng.random((2, 4, 16, 16, 3)).astype("float32"))
    model = MoCo(tiny_encoder(), queue_size=10)  # 8 keys a step
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(tf.data.Dataset.from_tensors(views), verbose=0, shuffle=False)
    after_one = model.queue.numpy().copy()
    model.fit(tf.data.Dataset.from_tensors(views), verbose=0, shuffle=False)
    after_two = model.queue.numpy()
    np.testing.assert_array_equal(after_two[8:], after_one[:2])  # the newest 2 keys of the step before
    assert not np.allclose(after_two[:8], after_one[:8])


def test_pretrain_with_moco_trains_and_reports_its_metrics():
    from kssl.training import pretrain

    model, history = pretrain(
        digits().subset(range(64)), tiny_encoder(), epochs=1, batch_size=16, method="moco", verbose=0
    )
    assert isinstance(model, MoCo) and model.queue_size == 4096
    assert sorted(history.history) == ["contrastive_accuracy", "loss", "momentum"]
    assert np.isfinite(history.history["loss"][-1])

"""Exact data parallelism: one step on 2 replicas equals one step on 1 device, same global batch.

Every registered method and mode: tests/models/test_method_contract.py and
tests/finetuning/test_mode_contract.py (L2-SP too). Here: the gathered loss, discriminative
rates, gradual unfreezing's schedule, uneven splits refused, and the all-gather itself."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import digits, tiny_encoder, two_replicas

from kssl.data.pipeline import labeled_batches, view_pairs
from kssl.losses import nt_xent, nt_xent_logits
from kssl.models import Classifier


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def weights(model):
    # Keyed by position and path without the model-level prefix, which Keras numbers
    # differently for the second model built in a process.
    return {f"{i}:{v.path.split('/', 1)[-1]}": np.array(v.numpy()) for i, v in enumerate(model.weights)}


def assert_same_weights(a, b, rtol=1e-5, atol=1e-5):
    # Two replicas sum gradients in another order than one device: float32 round-off
    # reaches ~1e-6 on weights of order 0.1-1 after a step (seen with oneDNN on one
    # thread). A wrong gradient scale or a missed replica moves them by ~1e-2.
    assert a.keys() == b.keys()
    for path in a:
        np.testing.assert_allclose(a[path], b[path], rtol=rtol, atol=atol, err_msg=path)


@pytest.fixture(scope="module")
def views():
    return next(iter(view_pairs(digits(), batch_size=64, seed=0)))


def test_gathered_loss_equals_nt_xent_on_the_global_batch(rng):
    z1 = rng.normal(size=(10, 6)).astype("float32")
    z2 = rng.normal(size=(10, 6)).astype("float32")
    strategy = two_replicas()
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: (z1[ctx.replica_id_in_sync_group * 5 :][:5], z2[ctx.replica_id_in_sync_group * 5 :][:5])
    )

    @tf.function
    def local_sum(a, b):
        logits, positives = nt_xent_logits(a, b, 0.2, gather_distributed=True)
        return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=logits))

    sums = strategy.experimental_local_results(strategy.run(local_sum, args=per_replica))
    assert float(sum(sums)) / 20 == pytest.approx(float(nt_xent(z1, z2, 0.2)), rel=1e-5)


# Every mode on two replicas: tests/finetuning/test_mode_contract.py. Here: with
# discriminative learning rates (LayerwiseAdam).
@pytest.mark.parametrize(
    "mode, options, optimizer, adversarial", [("partial", {}, "layerwise", None)]
)  # Adversarial steps are left out: each replica attacks its own images, but sign(gradient)
# flips with round-off where the gradient is ~0, so the two set-ups differ by a few pixels.
def test_fine_tuning_strategies_step_on_two_replicas_equal_one_device(mode, options, optimizer, adversarial):
    from kssl.finetuning.discriminative import LayerwiseAdam, stage_learning_rates

    images = digits().subset(range(32))
    batch = next(iter(labeled_batches(images, 32)))

    def step(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(3)
            encoder = tiny_encoder()
            for weight in encoder.weights:  # open the residual branches, as a pretrained encoder has them
                if weight.path.endswith("gamma"):
                    weight.assign(np.ones(weight.shape, "float32"))
            classifier = Classifier(encoder, 10, mode=mode, mode_options=options, adversarial=adversarial)
            if optimizer == "layerwise":
                rates = stage_learning_rates(classifier.encoder, 0.5)
                classifier.compile(optimizer=LayerwiseAdam(learning_rate=0.01, layer_multipliers=rates))
            else:
                classifier.compile(optimizer=keras.optimizers.Adam(0.01))
        history = classifier.fit(tf.data.Dataset.from_tensors(batch).repeat(2), epochs=1, verbose=0, shuffle=False)
        return history.history["loss"][0], weights(classifier)

    single_loss, single = step(one_device())
    mirrored_loss, mirrored = step(two_replicas())
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)
    # Adam divides by sqrt(v): round-off in a near-zero gradient can move that weight by
    # up to ~1e-4 of the learning rate's 1e-2 (seen: 2 of 36,864 kernel entries).
    assert_same_weights(mirrored, single, rtol=1e-4, atol=1e-4)


def test_gradual_unfreezing_on_two_replicas_equals_one_device():
    images = digits().subset(range(32))
    batch = next(iter(labeled_batches(images, 32)))

    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(3)
            classifier = Classifier(tiny_encoder(), 10, mode="gradual", mode_options={"every_epochs": 1})
            # The one-device reference runs eagerly: an independent path, and no retraces.
            classifier.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=strategy.num_replicas_in_sync == 1)
        callbacks = classifier.fine_tuning_mode.callbacks(classifier, steps_per_epoch=1, total_steps=3)
        data = tf.data.Dataset.from_tensors(batch).repeat(3)
        kernels = [classifier.encoder.get_layer(f"stage{n}_block1_1_conv").kernel for n in (2, 3)]
        before = [k.numpy() for k in kernels]
        history = classifier.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
        moved = [not np.array_equal(b, k.numpy()) for b, k in zip(before, kernels)]
        return history.history["loss"][0], weights(classifier), moved

    single_loss, single, single_moved = run(one_device())
    mirrored_loss, mirrored, mirrored_moved = run(two_replicas())
    # Step 1 trains the head, step 2 stage 4, step 3 stages 3 and 4 (two retraces).
    assert single_moved == mirrored_moved == [False, True]
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)
    assert_same_weights(mirrored, single)


def test_classifier_batches_that_do_not_split_evenly_are_refused_clearly():
    # Keras' standard train step averages per-replica means: exact only for even splits.
    from kssl.training import finetune

    with pytest.raises(ValueError, match="divisible by the 2 replicas"):
        finetune(tiny_encoder(), digits().subset(range(40)), epochs=1, batch_size=15, strategy=two_replicas())


def test_several_steps_per_execution_on_two_replicas_are_refused_clearly():
    # Keras 3 cannot run them (keras-team/keras#19246): a clear error, not a graph error.
    from kssl.training import pretrain

    with pytest.raises(ValueError, match=r"steps_per_execution=2 does not run on 2 replicas.*keras#19246"):
        pretrain(digits().subset(range(64)), tiny_encoder(), epochs=1, batch_size=32, strategy=two_replicas(),
                 steps_per_execution=2, verbose=0)  # fmt: skip


def test_all_gather_is_built_from_all_reduces_and_keeps_uneven_slices():
    """NCCL runs all-reduces natively; the traced gather has no gather collective."""
    import collections

    from kssl.runtime.distribute import all_gather

    strategy = two_replicas()

    def replica():
        replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
        rows = 2 + replica_id  # 2 rows on replica 0, 3 on replica 1
        value = tf.reshape(tf.range(rows * 2, dtype=tf.float32), [rows, 2]) + 100.0 * tf.cast(replica_id, tf.float32)
        return all_gather(value)

    step = tf.function(lambda: strategy.run(replica))
    ops = collections.Counter(op.type for op in step.get_concrete_function().graph.get_operations())
    assert ops["CollectiveReduceV2"] > 0 and not any("Gather" in name and "Collective" in name for name in ops)
    expected = np.concatenate([np.arange(4).reshape(2, 2), np.arange(6).reshape(3, 2) + 100.0])
    for gathered in strategy.experimental_local_results(step()):
        np.testing.assert_array_equal(gathered.numpy(), expected)

"""The one place in kssl that talks to `tf.distribute` replica contexts.

Contrastive losses need every replica's embeddings (all 2B-2 negatives of the global
batch), and losses must be scaled so that the gradients Keras sums over replicas equal
the single-device gradient of the global batch. Everything else in kssl calls these
helpers and stays strategy-agnostic; outside a multi-replica context each is the identity.
"""

from __future__ import annotations

import os

import tensorflow as tf


def _replica_context():
    """The replica context when training on more than one replica, else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def num_replicas() -> int:
    context = _replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def all_gather(value):
    """Concatenates `value` from every replica along axis 0, in replica order.

    Per-replica sizes may differ. The gradient flows back to each replica's own slice
    (summed over the replicas' losses), so the gathered tensor can be used in a loss.

    Built from all-reduces, which NCCL runs natively on GPUs: each replica writes its
    rows at its offset into zeros the size of the global tensor, and one sum over the
    replicas assembles it (adding zeros is exact). `ReplicaContext.all_gather` falls
    back to gathering on one device and broadcasting under MirroredStrategy. The
    gradient of a sum is the sum of the gradients, then each replica keeps its rows:
    the same as the gather's.
    """
    context = _replica_context()
    if context is None:
        return value
    rows = tf.shape(value)[0]
    offset, total = _offset_and_total(context, rows)
    placed = tf.pad(
        value, tf.concat([[[offset, total - offset - rows]], tf.zeros([tf.rank(value) - 1, 2], tf.int32)], 0)
    )
    return context.all_reduce(tf.distribute.ReduceOp.SUM, placed)


def _offset_and_total(context, local_size):
    """This replica's first row in the gathered tensor, and its total rows, by one
    all-reduce of every replica's `local_size` (a one-hot vector)."""
    one_hot = tf.one_hot(context.replica_id_in_sync_group, context.num_replicas_in_sync, dtype=tf.int32)
    sizes = context.all_reduce(tf.distribute.ReduceOp.SUM, one_hot * tf.cast(local_size, tf.int32))
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    return tf.reduce_sum(sizes[:replica]), tf.reduce_sum(sizes)


def global_sum(value):
    """Sum of `value` over replicas (no gradient is needed through it)."""
    context = _replica_context()
    return value if context is None else context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def global_mean(values):
    """This replica's share of the mean of `values` over the global batch.

    The sum of this replica's `values` over the number of values on *all* replicas: the
    replicas' shares add up to the global mean, and so do their gradients (which is what
    Keras sums across replicas), also when replicas hold different numbers of values.
    On one device it is the plain mean.
    """
    values = tf.cast(values, tf.float32)
    count = tf.cast(tf.shape(values)[0], tf.float32)
    return tf.reduce_sum(values) / global_sum(count)


def first_local_value(value):
    """The first local replica's component of a distributed value; other values as they are."""
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


def local_offset(local_size):
    """Index of this replica's first row in the `all_gather` of a tensor with `local_size` rows."""
    context = _replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return _offset_and_total(context, local_size)[0]


def update_variables(variables, values, update):
    """`update(variable, value)` on every device's copy of each variable, from a replica step.

    For state that is not trained by the optimizer but changes every step in the same
    way on every replica: momentum (EMA) networks, queues of keys. Inside a replica
    context a mirrored variable cannot be assigned directly; this merges into the
    cross-replica context and updates each device's copy with that device's component
    of `values`, as Keras' optimizers apply gradients. `values` must be equal on every
    replica (computed from synchronized weights or gathered tensors), so the copies stay
    identical. Outside a strategy it is `update(variable, value)` for each pair.

    Args:
        variables: Keras or TensorFlow variables.
        values: one tensor (or variable) per variable, passed as `value`.
        update: `(tf.Variable, value) -> op`, e.g. `lambda v, x: v.assign(x)`.
    """
    import keras

    variables = [v.value if isinstance(v, keras.Variable) else v for v in variables]
    values = [v.value if isinstance(v, keras.Variable) else v for v in values]

    def merged(strategy, variables, values):
        for variable, value in zip(variables, values):
            strategy.extended.update(variable, update, args=(value,), group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(merged, tf.distribute.get_strategy(), variables, values)


def max_over_workers(strategy, value: float) -> float:
    """The largest `value` passed by any worker of a `MultiWorkerMirroredStrategy`.

    Every worker must call it at the same point of training (it is a collective). Any
    other strategy runs in one process, whose value is returned as it is. kssl's time
    budget uses it so that all workers follow one clock.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return float(value)
    gathered = strategy.gather(strategy.run(_as_row, args=(tf.constant(float(value), tf.float64),)), axis=0)
    return float(tf.reduce_max(gathered))


def _as_row(value):
    return tf.reshape(value, [1])


def communication_options(gpus: bool | None = None):
    """Collectives for MultiWorkerMirroredStrategy: NCCL when this machine has GPUs.

    `AUTO` may pick RING (gRPC between hosts) even on GPUs; NCCL runs the all-reduces
    on the GPUs themselves. Without GPUs, AUTO (RING on CPUs).

    Examples:
        >>> communication_options(gpus=True).implementation.name
        'NCCL'
        >>> communication_options(gpus=False).implementation.name
        'AUTO'
    """
    if gpus is None:
        from kssl.runtime.precision import has_gpu

        gpus = has_gpu()
    implementation = tf.distribute.experimental.CommunicationImplementation
    return tf.distribute.experimental.CommunicationOptions(
        implementation=implementation.NCCL if gpus else implementation.AUTO
    )


def check_tf_config(text: str | None) -> None:
    """An `InputError` naming what is wrong with `TF_CONFIG` (TensorFlow's own errors are
    a JSON traceback, or an index error deep in its cluster resolver); unset is one worker.

    Examples:
        >>> check_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
        >>> check_tf_config('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}')
        Traceback (most recent call last):
        ...
        kssl.errors.InputError: TF_CONFIG's task index 1 is out of range: its cluster lists 1 worker (indices 0-0). ...
    """
    import json

    from kssl.errors import InputError

    example = '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
    if not text:  # no cluster: TensorFlow runs one local worker
        return
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], task["index"]
        members = cluster[kind]
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"TF_CONFIG is not a cluster description ({type(error).__name__}: {error}). Received: {text!r}. "
            f"Expected JSON like {example}"
        ) from None
    if not isinstance(index, int) or not 0 <= index < len(members):
        raise InputError(
            f"TF_CONFIG's task index {index!r} is out of range: its cluster lists {len(members)} {kind} "
            f"(indices 0-{len(members) - 1}). Give each process its own index."
        )


def strategy_from_name(name: str | None):
    """`"default"`, `"mirrored"`, `"multiworker"` (from `TF_CONFIG`) or `"tpu"` -> a strategy.

    Examples:
        >>> strategy_from_name("default").num_replicas_in_sync
        1
    """
    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication_options())
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    from kssl.defaults import STRATEGY_NAMES

    raise ValueError(f"strategy must be one of {', '.join(STRATEGY_NAMES)}. Received: {name!r}")


def step_logs(metrics) -> dict:
    """`{name: result}` for a custom `train_step`/`test_step` to return (see `reducible_logs`)."""
    return reducible_logs({metric.name: metric.result() for metric in metrics})


def reducible_logs(logs: dict) -> dict:
    """A train or test step's logs, in a shape Keras can reduce under every strategy.

    Under MultiWorkerMirroredStrategy, Keras reduces step outputs with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars; metric results are
    already global, so a `(1,)` shape makes that reduction a no-op average.
    """
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def distribute_batches(strategy, make_dataset, batch_size: int):
    """A dataset of global batches of `batch_size`, split exactly as one device would see them.

    `make_dataset(rows)` must yield the same sequence of global batches on every worker
    (kssl's seeded pipelines do), or, given `rows=(lo, hi)`, only rows `lo:hi` of each
    of them, computed exactly as in the whole batch. Under MultiWorkerMirroredStrategy
    each worker asks only for its own replicas' rows, so W workers share the input work
    instead of each reading, decoding and augmenting every image; every replica then
    takes its contiguous slice, in replica order, which is what one device computes
    (tf.data's auto-sharding would interleave elements across workers and mix batches).
    Other strategies split batches that way already, and get the whole dataset back for
    Keras to distribute.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return make_dataset(None)

    def per_worker(context):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        total = context.num_replicas_in_sync
        bounds = [(first + j) * batch_size // total for j in range(local + 1)]

        @tf.autograph.experimental.do_not_convert  # plain TensorFlow ops: no AutoGraph needed
        def replica_slices(*batch):
            @tf.autograph.experimental.do_not_convert
            def take(j):
                def cut(t):
                    starts = tf.constant(bounds, tf.int64) - bounds[0]
                    return t[starts[j] : starts[j + 1]]

                return tf.nest.map_structure(cut, batch if len(batch) > 1 else batch[0])

            return tf.data.Dataset.range(local).map(take)

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return make_dataset((bounds[0], bounds[-1])).flat_map(replica_slices).with_options(options)

    return strategy.distribute_datasets_from_function(per_worker)

"""TensorFlow: a custom training step under MirroredStrategy on 4 logical CPU devices vs one device.

Run by test_distributed.py as `python -m tests.distributed.tf_worker OUT.npz`. Each replica gets
a quarter of the global batch; the loss is the usual data-parallel one (per-example sum over the
global batch size, layer losses over the replica count), and the replicas' gradients are summed.
Then one `model.fit` step under the strategy, against one device: every variable after it
(PowerNorm's backward statistic is written by Keras from per-replica gradients, see the layer).
"""

import contextlib
import sys

import keras
import numpy as np
import tensorflow as tf

from tests.distributed import case

REPLICAS = 4


def train_step(model, inputs, targets, replicas):
    with tf.GradientTape() as tape:
        outputs = model(inputs, training=True)
        loss = tf.reduce_sum(tf.square(outputs - targets)) / case.GLOBAL_BATCH
        loss += tf.add_n(model.losses) / replicas
    gradients = tape.gradient(loss, [v.value for v in model.trainable_variables])
    gradients = [tf.convert_to_tensor(g) for g in gradients]  # the embedding's IndexedSlices
    if replicas > 1:
        gradients = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, gradients)
    return outputs, gradients, model(inputs, training=False)


def record(model, outputs, gradients, inference):
    result = {"outputs": outputs, "inference": inference}
    result.update({f"gradients/{v.path}": np.asarray(g) for v, g in zip(model.trainable_variables, gradients)})
    result.update({f"state/{k}": v for k, v in case.state(model).items()})
    return result


def main(path):
    inputs, targets = case.global_batch()
    keras.utils.set_random_seed(0)
    model = case.build_model()
    initial = model.get_weights()
    outputs, gradients, inference = tf.function(train_step)(model, inputs, targets, 1)
    reference = record(model, outputs.numpy(), gradients, inference.numpy())
    reference.update(fit_step(None, initial, inputs, targets))

    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(REPLICAS)])
    distributed = run_distributed(strategy, initial, inputs, targets, synchronized=True)
    distributed.update(fit_step(strategy, initial, inputs, targets))
    unsynchronized = run_distributed(strategy, initial, inputs, targets, synchronized=False)
    reference["replicas"] = np.array(1)
    np.savez(
        path,
        **{f"reference/{k}": v for k, v in reference.items()},
        **{f"distributed/{k}": v for k, v in distributed.items()},
        **{f"unsynchronized/{k}": v for k, v in unsynchronized.items()},
    )


def fit_step(strategy, initial, inputs, targets):
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = case.build_model()
        model.set_weights(initial)
        model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(inputs, targets, batch_size=case.GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    return {f"fit/{v.path}": np.asarray(v.numpy()) for v in model.variables}


def run_distributed(strategy, initial, inputs, targets, synchronized):
    with strategy.scope():
        model = case.build_model(synchronized)
        model.set_weights(initial)
    shards = [case.shard(inputs, targets, i, REPLICAS) for i in range(REPLICAS)]
    distributed_inputs = strategy.experimental_distribute_values_from_function(
        lambda context: shards[context.replica_id_in_sync_group]
    )

    @tf.function
    def distributed_step(shard):
        return strategy.run(lambda s: train_step(model, s[0], s[1], REPLICAS), args=(shard,))

    outputs, gradients, inference = distributed_step(distributed_inputs)
    local = strategy.experimental_local_results
    distributed = record(
        model,
        np.concatenate([o.numpy() for o in local(outputs)]),
        [local(g)[0] for g in gradients],
        np.concatenate([o.numpy() for o in local(inference)]),
    )
    distributed["replicas"] = np.array(strategy.num_replicas_in_sync)
    return distributed


if __name__ == "__main__":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS)
    main(sys.argv[1])

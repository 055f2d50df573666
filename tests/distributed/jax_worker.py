"""JAX: one `model.fit` step under `keras.distribution` on 8 devices vs one device.

DataParallel over the 8 devices (with `synchronized` True and False), and ModelParallel on a 4x2
mesh (batch over 4, two kernels split over 2).

Run by test_distributed.py as `python -m tests.distributed.jax_worker OUT.npz` with
`XLA_FLAGS=--xla_force_host_platform_device_count=8`: 8 simulated CPU devices.
"""

import sys

import jax
import keras  # noqa: I001  (before anything that imports TensorFlow)
import numpy as np

from tests.distributed import case


def run(model, inputs, targets):
    """Training-mode outputs and state updates of one jitted call, then one fit step."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    distribution = keras.distribution.distribution()
    if distribution is not None:  # the global batch, sharded over the batch axis of the mesh
        sharded = {
            k: keras.distribution.distribute_tensor(v, distribution.get_data_layout(v.shape)) for k, v in inputs.items()
        }
    else:
        sharded = inputs
    forward = jax.jit(lambda t, n, x: model.stateless_call(t, n, x, training=True))
    outputs, new_state = forward(trainable, non_trainable, sharded)
    devices = len(outputs.sharding.device_set)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(inputs, targets, batch_size=case.GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    record = {
        "outputs": np.asarray(outputs),
        "devices": np.array(devices),
        "predict": model.predict(inputs, batch_size=case.GLOBAL_BATCH, verbose=0),
    }
    record.update({f"forward_state/{v.path}": np.asarray(s) for v, s in zip(model.non_trainable_variables, new_state)})
    record.update({f"state/{k}": v for k, v in case.state(model).items()})
    record.update({f"weights/{k}": v for k, v in case.weights(model).items()})
    return record


def main(path):
    assert len(jax.devices()) == 8, jax.devices()
    inputs, targets = case.global_batch()
    keras.utils.set_random_seed(0)
    reference_model = case.build_model()
    initial = reference_model.get_weights()
    reference = run(reference_model, inputs, targets)
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    runs = {"reference": reference}
    for name, synchronized in (("distributed", True), ("unsynchronized", False)):
        model = case.build_model(synchronized)
        model.set_weights(initial)
        runs[name] = run(model, inputs, targets)
    # ModelParallel: batch over 4 devices, two kernels split over the other 2.
    mesh = keras.distribution.DeviceMesh((4, 2), ["batch", "model"], devices=jax.devices())
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map["dense/kernel"] = (None, "model")
    layout_map["conv2/kernel"] = (None, None, None, "model")
    keras.distribution.set_distribution(keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch"))
    model = case.build_model()
    model.set_weights(initial)
    runs["model_parallel"] = run(model, inputs, targets)
    np.savez(path, **{f"{name}/{k}": v for name, result in runs.items() for k, v in result.items()})


if __name__ == "__main__":
    main(sys.argv[1])

"""Train one small CNN per normalization layer on scikit-learn's digits and compare them.

    python examples/compare_norms.py                      # every layer, on $KERAS_BACKEND
    KERAS_BACKEND=jax python examples/compare_norms.py --epochs 20
    python examples/compare_norms.py --norms bn_relu evonorm_b0 --smoke
    XLA_FLAGS=--xla_force_host_platform_device_count=8 KERAS_BACKEND=jax \
        python examples/compare_norms.py --distribute            # data-parallel, 8 CPU devices
    KERAS_BACKEND=tensorflow python examples/compare_norms.py --distribute   # TPU, GPUs or CPU

`--distribute` trains data-parallel with the engine of the backend: `keras.distribution.DataParallel`
over every device on JAX; on TensorFlow a `TPUStrategy` when a TPU is attached (Colab), else a
`MirroredStrategy` (`--cpu-devices N` splits the CPU into N logical devices). Batch statistics
(BatchNormalization and EvoNormB0) are then over the global batch (docs/distributed.md).

The data (1,797 8x8 grayscale digits) ships with scikit-learn, so nothing is downloaded. Each
layer trains the same network from the same seed: three 3x3 convolutions, each followed by the
normalization-activation under test, global average pooling and a softmax classifier. It prints
a markdown table of held-out accuracy, final training loss and median time per training step.
"""

import argparse
import contextlib
import os
import time

import keras
import numpy as np

import keras_norms


# Set by --distribute on TensorFlow: Keras' BatchNormalization then needs `synchronized=True` for
# global statistics, as EvoNormB0 has by default (on JAX both are global anyway).
SYNCHRONIZED_BN = False


def bn_relu():
    # momentum 0.9 (torch's 0.1, and EvoNormB0's default): Keras' 0.99 needs thousands of steps
    # to settle, so after this run's ~300 its test accuracy would measure the averaging lag.
    return [keras.layers.BatchNormalization(momentum=0.9, synchronized=SYNCHRONIZED_BN), keras.layers.ReLU()]


def gn_relu():
    return [keras.layers.GroupNormalization(groups=8), keras.layers.ReLU()]


def gn_swish():
    return [keras.layers.GroupNormalization(groups=8), keras.layers.Activation("swish")]


# Name -> factory of the layers that follow each convolution. EvoNorms fuse the activation.
NORMS = {
    "bn_relu": bn_relu,
    "gn_relu": gn_relu,
    "gn_swish": gn_swish,
    "evonorm_b0": lambda: [keras_norms.get("evonorm_b0")],
    "evonorm_s0": lambda: [keras_norms.get("evonorm_s0", groups=8)],
}


def load_digits(seed):
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    return train_test_split(
        images, digits.target, test_size=0.25, random_state=seed, stratify=digits.target
    )


def build_model(norm):
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for filters, strides in ((32, 1), (64, 2), (64, 1)):
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        for layer in NORMS[norm]():
            x = layer(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=norm)


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step after the first epoch (which includes compilation)."""

    def __init__(self):
        super().__init__()
        self.times = []
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch > 0 or self.params["epochs"] == 1:
            self.times.append(time.perf_counter() - self._start)


def data_parallel(cpu_devices=None):
    """`(scope, replicas)`: `scope()` gives a context to build and compile a model in.

    JAX: sets `keras.distribution.DataParallel` over every device (undo with
    `keras.distribution.set_distribution(None)`). TensorFlow: a TPUStrategy if a TPU is attached,
    else a MirroredStrategy over the GPUs, or over `cpu_devices` logical CPU devices.
    """
    global SYNCHRONIZED_BN
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return contextlib.nullcontext, len(devices)
    if backend == "tensorflow":
        import tensorflow as tf

        SYNCHRONIZED_BN = True
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
        except (ValueError, tf.errors.NotFoundError):  # no TPU here
            if cpu_devices:
                cpu = tf.config.list_physical_devices("CPU")[0]
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
                )
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices)
        return strategy.scope, strategy.num_replicas_in_sync
    raise SystemExit(
        "--distribute supports jax (keras.distribution) and tensorflow (tf.distribute). On torch, "
        "Keras' fit() does not run under DistributedDataParallel; the layers do synchronize under "
        "DDP in your own training loop (docs/distributed.md)."
    )


def train(norm, data, epochs, batch_size, seed, scope=contextlib.nullcontext):
    x_train, x_test, y_train, y_test = data
    keras.utils.set_random_seed(seed)
    with scope():
        model = build_model(norm)
        model.compile(
            optimizer=keras.optimizers.Adam(3e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    timer = StepTimer()
    history = model.fit(
        x_train, y_train, batch_size=batch_size, epochs=epochs, callbacks=[timer], verbose=0
    )
    _, accuracy = model.evaluate(x_test, y_test, batch_size=len(x_test), verbose=0)
    return {
        "accuracy": accuracy,
        "loss": history.history["loss"][-1],
        "step_ms": 1000 * float(np.median(timer.times)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--norms", nargs="+", choices=list(NORMS), default=list(NORMS))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="1 epoch on 256 samples: a quick check")
    parser.add_argument("--distribute", action="store_true", help="data-parallel over every device (see above)")
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="with --distribute on TensorFlow without TPU/GPU: logical CPU devices")
    args = parser.parse_args(argv)

    data = load_digits(args.seed)
    epochs = args.epochs
    if args.smoke:
        x_train, x_test, y_train, y_test = data
        data = (x_train[:256], x_test[:128], y_train[:256], y_test[:128])
        epochs = 1
    scope, replicas = contextlib.nullcontext, 1
    if args.distribute:
        scope, replicas = data_parallel(args.cpu_devices)
        if args.batch_size % replicas:
            raise SystemExit(f"--batch-size ({args.batch_size}) must be a multiple of the {replicas} replicas.")
        # Whole batches only: every replica gets its share of every batch.
        x_train, x_test, y_train, y_test = data
        train_size, test_size = len(x_train) // args.batch_size * args.batch_size, len(x_test) // replicas * replicas
        data = (x_train[:train_size], x_test[:test_size], y_train[:train_size], y_test[:test_size])
    print(
        f"digits: {len(data[0])} train / {len(data[1])} test images, {epochs} epochs, "
        f"batch {args.batch_size}, backend {keras.backend.backend()}, {os.cpu_count()} CPUs, "
        f"{replicas} replica{'s' if replicas > 1 else ''}"
    )
    results = {}
    try:
        for norm in args.norms:
            results[norm] = train(norm, data, epochs, args.batch_size, args.seed, scope)
            print(f"  {norm}: done", flush=True)
    finally:
        if args.distribute and keras.backend.backend() == "jax":
            keras.distribution.set_distribution(None)
    print("\n| normalization | test accuracy | final train loss | step time (ms) |")
    print("|---|---|---|---|")
    for norm, r in results.items():
        print(f"| {norm} | {r['accuracy']:.4f} | {r['loss']:.4f} | {r['step_ms']:.1f} |")
    return results


if __name__ == "__main__":
    main()

"""Train one small CNN per normalization layer and compare them, at one batch size or several.

    python examples/compare_norms.py --dataset digits     # the README's main job: about a minute
    python examples/compare_norms.py                      # CIFAR-10 if reachable, else digits
    python examples/compare_norms.py --dataset digits --batch-sizes 2 8 32 128 --out results/
    KERAS_BACKEND=jax python examples/compare_norms.py --epochs 20
    python examples/compare_norms.py --norms bn_relu evonorm_b0 --smoke
    XLA_FLAGS=--xla_force_host_platform_device_count=8 KERAS_BACKEND=jax \
        python examples/compare_norms.py --distribute            # data-parallel, 8 CPU devices
    KERAS_BACKEND=tensorflow python examples/compare_norms.py --distribute   # TPU, GPUs or CPU

`--distribute` trains data-parallel with the engine of the backend: `keras.distribution.DataParallel`
over every device on JAX; on TensorFlow a `TPUStrategy` when a TPU is attached (Colab), else a
`MirroredStrategy` (`--cpu-devices N` splits the CPU into N logical devices). Batch statistics
(BatchNormalization and EvoNormB0) are then over the global batch (docs/distributed.md).

Data (`--dataset`): CIFAR-10 from `keras.datasets` when it is cached or its server answers
(`auto`, the default), else scikit-learn's 1,797 8x8 grayscale digits, which ship with
scikit-learn; the script prints which it used. `--smoke` always uses the digits. Each layer trains
the same network from the same seed: three 3x3 convolutions, each followed by the
normalization-activation under test, global average pooling and a softmax classifier. `--norms`
takes the five below or any normalization layer of the registry (`keras_norms.names()`; one
without a fused activation gets a ReLU after it). It prints a markdown table of held-out accuracy, final training
loss and median time per training step.

Batch-size sweep (`--batch-sizes 2 8 32 128`): the EvoNorm paper's central claim (Liu et al.,
"Evolving Normalization-Activation Layers", arXiv 2004.02967) is that sample-based EvoNorm-S0
degrades much less than BN-ReLU as the batch shrinks. Each norm trains at each batch size for
the same number of epochs, Adam's learning rate scaled by `sqrt(batch / 64)`; the table has one
accuracy column per batch size, and `--out` writes it with a plot of accuracy against batch size.
"""

import argparse
import contextlib
import inspect
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import (
    Progress,  # noqa: E402
    load_images,  # noqa: E402
    markdown_table,  # noqa: E402
    progress,  # noqa: E402
    report,  # noqa: E402
    small_cnn,  # noqa: E402
)

import keras_norms  # noqa: E402

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


def registry_norms():
    """The registry's normalization layers that take feature maps (PowerNorm takes sequences only)."""
    from keras_norms.layers.base import NormalizationBase

    norm_classes = (NormalizationBase, keras.layers.BatchNormalization, keras.layers.LayerNormalization)
    names = []
    for name in keras_norms.names():
        if issubclass(keras_norms.registry.layer_class(name), norm_classes):
            try:
                keras_norms.get(name).build((None, 8, 8, 32))
            except (ValueError, TypeError):  # needs arguments (EvolvedNormAct: a genome) or other shapes
                continue
            names.append(name)
    return names


def norm_layers(norm):
    """The layers that follow each convolution: one of NORMS, or a registry layer (+ ReLU if unfused)."""
    if norm in NORMS:
        return NORMS[norm]()
    layer = keras_norms.get(norm)
    fused = "apply_act" in inspect.signature(type(layer).__init__).parameters
    return [layer] if fused else [layer, keras.layers.ReLU()]


def build_model(norm, input_shape=(8, 8, 1)):
    return small_cnn(input_shape, lambda: norm_layers(norm), output_activation="softmax")


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
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices)
        return strategy.scope, strategy.num_replicas_in_sync
    raise SystemExit(
        "--distribute supports jax (keras.distribution) and tensorflow (tf.distribute). On torch, "
        "Keras' fit() does not run under DistributedDataParallel; the layers do synchronize under "
        "DDP in your own training loop (docs/distributed.md)."
    )


def train(norm, data, epochs, batch_size, seed, scope=contextlib.nullcontext, learning_rate=3e-3, callbacks=()):
    x_train, x_test, y_train, y_test = data
    keras.utils.set_random_seed(seed)
    with scope():
        model = build_model(norm, x_train.shape[1:])
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    timer = StepTimer()
    history = model.fit(
        x_train, y_train, batch_size=batch_size, epochs=epochs, callbacks=[timer, *callbacks], verbose=0
    )
    _, accuracy = model.evaluate(x_test, y_test, batch_size=min(len(x_test), 1024), verbose=0)
    return {
        "accuracy": accuracy,
        "loss": history.history["loss"][-1],
        "step_ms": 1000 * float(np.median(timer.times)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--norms",
        nargs="+",
        choices=list(NORMS) + [n for n in registry_norms() if n not in NORMS],
        default=list(NORMS),
        metavar="NORM",
        help=f"{', '.join(NORMS)} or a registry norm: {', '.join(registry_norms())}",
    )
    parser.add_argument("--dataset", default="auto", choices=["auto", "cifar10", "digits"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="a sweep (e.g. 2 8 32 128); overrides --batch-size")
    parser.add_argument("--out", help="folder for compare_norms.md/.json/.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="1 epoch on 256 samples: a quick check")
    parser.add_argument("--distribute", action="store_true", help="data-parallel over every device (see above)")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="with --distribute on TensorFlow without TPU/GPU: logical CPU devices",
    )
    args = parser.parse_args(argv)

    dataset = "digits" if args.smoke and args.dataset == "auto" else args.dataset
    x_train, y_train, x_test, y_test, description = load_images(dataset, seed=args.seed)
    data = (x_train, x_test, y_train, y_test)
    epochs = args.epochs
    if args.smoke:
        data = (x_train[:256], x_test[:128], y_train[:256], y_test[:128])
        epochs = 1
    batch_sizes = args.batch_sizes or [args.batch_size]
    scope, replicas = contextlib.nullcontext, 1
    if args.distribute:
        if args.batch_sizes:
            raise SystemExit("--distribute runs one batch size: use --batch-size.")
        scope, replicas = data_parallel(args.cpu_devices)
        if args.batch_size % replicas:
            raise SystemExit(f"--batch-size ({args.batch_size}) must be a multiple of the {replicas} replicas.")
        # Whole batches only: every replica gets its share of every batch.
        x_train, x_test, y_train, y_test = data
        train_size, test_size = len(x_train) // args.batch_size * args.batch_size, len(x_test) // replicas * replicas
        data = (x_train[:train_size], x_test[:test_size], y_train[:train_size], y_test[:test_size])
    settings = (
        f"{description}: {len(data[0])} train / {len(data[1])} test images, {epochs} epochs, "
        f"batch {', '.join(map(str, batch_sizes))}, seed {args.seed}, backend {keras.backend.backend()}, "
        f"{os.cpu_count()} CPUs, {replicas} replica{'s' if replicas > 1 else ''}"
    )
    bar = progress(len(args.norms) * len(batch_sizes) * epochs, settings)
    sweep = {}
    try:
        for batch_size in batch_sizes:
            learning_rate = 3e-3 * (batch_size / 64) ** 0.5
            for norm in args.norms:
                sweep.setdefault(norm, {})[batch_size] = train(
                    norm, data, epochs, batch_size, args.seed, scope, learning_rate, [Progress(bar)]
                )
    finally:
        if args.distribute and keras.backend.backend() == "jax":
            keras.distribution.set_distribution(None)
    if len(batch_sizes) == 1:
        results = {norm: runs[batch_sizes[0]] for norm, runs in sweep.items()}
        table = markdown_table(
            ["normalization", "test accuracy", "final train loss", "step time (ms)"],
            [[norm, r["accuracy"], r["loss"], f"{r['step_ms']:.1f}"] for norm, r in results.items()],
        )
        report("compare_norms", table, results, settings, args.out)
        return results
    results = {norm: {str(size): r for size, r in runs.items()} for norm, runs in sweep.items()}
    table = markdown_table(
        ["normalization"] + [f"accuracy, batch {size}" for size in batch_sizes],
        [[norm] + [runs[size]["accuracy"] for size in batch_sizes] for norm, runs in sweep.items()],
    )
    report("compare_norms_batch_sizes", table, results, settings, args.out, plot_sweep)
    return results


def plot_sweep(results):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for norm, runs in results.items():
        sizes = sorted(runs, key=int)
        ax.plot([int(s) for s in sizes], [runs[s]["accuracy"] for s in sizes], marker="o", label=norm)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="batch size", ylabel="test accuracy", title="accuracy against batch size")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()

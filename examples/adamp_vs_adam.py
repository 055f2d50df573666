"""AdamP against Adam on a network whose convolution kernels are scale-invariant (each feeds a BN).

    python examples/adamp_vs_adam.py                         # digits, 20 epochs, seeds 0 1 2
    python examples/adamp_vs_adam.py --dataset cifar10 --epochs 30 --out results/
    python examples/adamp_vs_adam.py --smoke

The paper's claim (Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights", ICLR 2021, arXiv 2006.08217): with momentum, Adam inflates the norm of
scale-invariant weights quickly, which shrinks their effective step size (`lr / |w|^2`) and
hurts; AdamP removes the radial part of each update and keeps the norms small, for equal or better
accuracy. The network: three 3x3 convolutions without bias, each followed by BatchNormalization
and ReLU, global average pooling, a Dense classifier. Both optimizers use the same learning rate,
betas and no weight decay. The table reports, averaged over seeds, the final test accuracy and
training loss and the growth of the mean convolution-kernel norm (final / initial).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import (
    Progress,  # noqa: E402
    bn_relu,  # noqa: E402
    load_images,  # noqa: E402
    markdown_table,  # noqa: E402
    progress,  # noqa: E402
    report,  # noqa: E402
    small_cnn,  # noqa: E402
)

import keras_norms  # noqa: E402

OPTIMIZERS = {
    "adam": lambda lr: keras.optimizers.Adam(lr),
    "adamp": lambda lr: keras_norms.optimizers.AdamP(lr),
}


def build_model(input_shape, classes=10):
    return small_cnn(input_shape, bn_relu, classes)


class KernelNorms(keras.callbacks.Callback):
    """Mean Frobenius norm of the (scale-invariant) convolution kernels, and test accuracy, per epoch."""

    def __init__(self, x_test, y_test):
        super().__init__()
        self.x_test, self.y_test = x_test, y_test
        self.norms, self.accuracy = [], []

    def _record(self):
        kernels = [layer.kernel for layer in self.model.layers if isinstance(layer, keras.layers.Conv2D)]
        self.norms.append(float(np.mean([np.linalg.norm(keras.ops.convert_to_numpy(k)) for k in kernels])))

    def on_train_begin(self, logs=None):
        self._record()

    def on_epoch_end(self, epoch, logs=None):
        self._record()
        logits = self.model.predict(self.x_test, batch_size=512, verbose=0)
        self.accuracy.append(float(np.mean(np.argmax(logits, -1) == self.y_test)))


def train(optimizer, data, epochs, batch_size, learning_rate, seed, callbacks=()):
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    model = build_model(x_train.shape[1:])
    model.compile(OPTIMIZERS[optimizer](learning_rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    tracker = KernelNorms(x_test, y_test)
    history = model.fit(
        x_train, y_train, batch_size=batch_size, epochs=epochs, callbacks=[tracker, *callbacks], verbose=0
    )
    return {"loss": history.history["loss"], "accuracy": tracker.accuracy, "kernel_norm": tracker.norms}


def summarize(results):
    """Per optimizer, the means over seeds of the final accuracy, loss and norm growth."""
    rows = []
    for optimizer, runs in results.items():
        accuracy = [run["accuracy"][-1] for run in runs]
        loss = [run["loss"][-1] for run in runs]
        growth = [run["kernel_norm"][-1] / run["kernel_norm"][0] for run in runs]
        rows.append(
            [optimizer, float(np.mean(accuracy)), float(np.std(accuracy)), float(np.mean(loss)), float(np.mean(growth))]
        )
    return markdown_table(
        [
            "optimizer",
            "test accuracy (mean)",
            "(std over seeds)",
            "final train loss",
            "conv-kernel norm, final / initial",
        ],
        rows,
    )


def plot(results):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for optimizer, runs in results.items():
        accuracy = np.mean([run["accuracy"] for run in runs], axis=0)
        norms = np.mean([run["kernel_norm"] for run in runs], axis=0)
        left.plot(range(1, len(accuracy) + 1), accuracy, label=optimizer)
        right.plot(range(len(norms)), norms, label=optimizer)
    left.set(xlabel="epoch", ylabel="test accuracy", title="accuracy (mean over seeds)")
    right.set(xlabel="epoch", ylabel="mean conv-kernel norm", title="norm of scale-invariant weights")
    for ax in (left, right):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", default="digits", choices=["auto", "cifar10", "digits"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", help="folder for adamp_vs_adam.md/.json/.png")
    parser.add_argument("--smoke", action="store_true", help="1 epoch, 256 samples, one seed")
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test, description = load_images(args.dataset, seed=0)
    epochs, seeds = args.epochs, args.seeds
    if args.smoke:
        x_train, y_train, x_test, y_test = x_train[:256], y_train[:256], x_test[:128], y_test[:128]
        epochs, seeds = 1, seeds[:1]
    data = (x_train, y_train, x_test, y_test)
    settings = (
        f"{description}: {len(x_train)} train / {len(x_test)} test images; {epochs} epochs, batch "
        f"{args.batch_size}, learning rate {args.learning_rate}, seeds {seeds}, backend "
        f"{keras.backend.backend()}"
    )
    bar = progress(len(OPTIMIZERS) * len(seeds) * epochs, settings)
    results = {name: [] for name in OPTIMIZERS}
    for seed in seeds:
        for name in OPTIMIZERS:
            results[name].append(train(name, data, epochs, args.batch_size, args.learning_rate, seed, [Progress(bar)]))
    report("adamp_vs_adam", summarize(results), results, settings, args.out, plot)
    return results


if __name__ == "__main__":
    main()

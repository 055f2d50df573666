"""Train only the BatchNorm parameters of a ResNet, against chance and against as many random ones.

    python examples/batchnorm_only.py                           # digits enlarged to 32x32, 15 epochs
    python examples/batchnorm_only.py --dataset cifar10 --epochs 60 --out results/
    python examples/batchnorm_only.py --smoke

The paper's claim (Frankle, Schwab, Morcos, "Training BatchNorm and Only BatchNorm: On the
Expressive Power of Random Features in CNNs", ICLR 2021, arXiv 2003.00152): with every other weight
frozen at its random initialization, training only the BN affine parameters (gamma, beta) reaches
accuracy far above chance, and far above training the same number of randomly chosen parameters
of the network. Arms, each on the CIFAR ResNet-20 of `resnet20.py` from the same initialization:

- `all`: every weight trains (the reference);
- `batchnorm_only`: `keras_norms.surgery.freeze_all_but_batchnorm` (784 channels: 1,568 parameters);
- `random_subset`: the same number of parameters, drawn uniformly from all of the network's weights
  (BN included), trains; gradients of the others are masked to zero;
- `chance`: 1 / classes, and the untrained network's accuracy.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import (
    Progress,  # noqa: E402
    load_images,  # noqa: E402
    markdown_table,  # noqa: E402
    progress,  # noqa: E402
    report,  # noqa: E402
)
from resnet20 import resnet20  # noqa: E402

import keras_norms  # noqa: E402

ARMS = ("all", "batchnorm_only", "random_subset")


class MaskedSGD(keras.optimizers.SGD):
    """SGD whose gradients are multiplied by fixed 0/1 masks (keyed by variable path).

    Masked entries get a zero gradient, hence a zero momentum and no update (no weight decay here).
    """

    def __init__(self, masks, **kwargs):
        super().__init__(**kwargs)
        self._masks = masks

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        grads = [
            g * keras.ops.convert_to_tensor(self._masks[v.path], g.dtype) if v.path in self._masks else g
            for g, v in zip(grads, variables)
        ]
        return super().apply(grads, trainable_variables)


def random_masks(model, count, seed):
    """0/1 masks over every trainable weight of `model`, `count` ones drawn uniformly."""
    sizes = [int(np.prod(v.shape)) for v in model.trainable_weights]
    chosen = np.zeros(sum(sizes), "float32")
    chosen[np.random.default_rng(seed).choice(len(chosen), count, replace=False)] = 1.0
    masks, start = {}, 0
    for variable, size in zip(model.trainable_weights, sizes):
        masks[variable.path] = chosen[start : start + size].reshape(variable.shape)
        start += size
    return masks


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), -1) == y))


def train(arm, data, epochs, batch_size, learning_rate, seed, trainable_count=None, callbacks=()):
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    model = resnet20(x_train.shape[1:], classes=10)
    untrained = accuracy(model, x_test, y_test)
    total = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    if arm == "batchnorm_only":
        trainable_count = keras_norms.surgery.freeze_all_but_batchnorm(model)
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9)
    elif arm == "random_subset":
        optimizer = MaskedSGD(random_masks(model, trainable_count, seed), learning_rate=learning_rate, momentum=0.9)
    else:
        trainable_count = total
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return {
        "test_accuracy": accuracy(model, x_test, y_test),
        "train_loss": history.history["loss"][-1],
        "trainable": int(trainable_count),
        "total": int(total),
        "untrained_accuracy": untrained,
        "loss_curve": history.history["loss"],
    }


def summarize(results):
    rows = [
        [arm, r["trainable"], f"{100 * r['trainable'] / r['total']:.2f}%", r["test_accuracy"], r["train_loss"]]
        for arm, r in results.items()
        if arm != "chance"
    ]
    chance = results["chance"]
    rows.append(
        [
            "chance (untrained network)",
            0,
            "0%",
            f"{chance['test_accuracy']:.4f} ({chance['untrained_accuracy']:.4f})",
            "-",
        ]
    )
    return markdown_table(["arm", "trainable parameters", "of all", "test accuracy", "final train loss"], rows)


def plot(results):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    arms = [arm for arm in results if arm != "chance"]
    left.bar(
        arms + ["chance"],
        [results[a]["test_accuracy"] for a in arms] + [results["chance"]["test_accuracy"]],
        color=[f"C{i}" for i in range(len(arms))] + ["#999999"],
    )
    left.set(ylabel="test accuracy", ylim=(0, 1), title="ResNet-20, what trains")
    left.tick_params(axis="x", labelrotation=15)
    for arm in arms:
        right.plot(range(1, len(results[arm]["loss_curve"]) + 1), results[arm]["loss_curve"], label=arm)
    right.set(xlabel="epoch", ylabel="training loss", title="training loss")
    right.legend()
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", default="digits", choices=["auto", "cifar10", "digits"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for batchnorm_only.md/.json/.png")
    parser.add_argument("--smoke", action="store_true", help="1 epoch on 128 samples")
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test, description = load_images(args.dataset, size=32, seed=args.seed)
    epochs = args.epochs
    if args.smoke:
        x_train, y_train, x_test, y_test = x_train[:128], y_train[:128], x_test[:64], y_test[:64]
        epochs = 1
    data = (x_train, y_train, x_test, y_test)
    settings = (
        f"{description}: {len(x_train)} train / {len(x_test)} test images; ResNet-20, {epochs} epochs, "
        f"batch {args.batch_size}, SGD momentum 0.9, learning rate {args.learning_rate}, seed {args.seed}, "
        f"backend {keras.backend.backend()}"
    )
    bar = progress(len(ARMS) * epochs, settings)
    results = {}
    for arm in ARMS:
        count = results["batchnorm_only"]["trainable"] if arm == "random_subset" else None
        results[arm] = train(arm, data, epochs, args.batch_size, args.learning_rate, args.seed, count, [Progress(bar)])
    results["chance"] = {"test_accuracy": 1.0 / 10, "untrained_accuracy": results["all"]["untrained_accuracy"]}
    report("batchnorm_only", summarize(results), results, settings, args.out, plot)
    return results


if __name__ == "__main__":
    main()

"""What the examples share: image data with an offline fallback, result tables, the output folder.

Every example prints a markdown table and, with `--out DIR`, writes `DIR/<name>.md` (the table and
the run's settings), `DIR/<name>.json` (the numbers, which the docs plot from) and `DIR/<name>.png`
(the plot).
"""

import json
import os
import socket

import keras
import numpy as np

CIFAR10_HOST = ("www.cs.toronto.edu", 443)


def _cifar10_cached():
    return os.path.exists(os.path.join(os.path.expanduser("~"), ".keras", "datasets", "cifar-10-batches-py"))


def _reachable(address, timeout=3.0):
    try:
        socket.create_connection(address, timeout=timeout).close()
        return True
    except OSError:
        return False


def load_images(dataset="auto", size=8, seed=0):
    """`(x_train, y_train, x_test, y_test, description)`, images in [0, 1], channels last.

    `dataset`: `"cifar10"` (keras.datasets; downloads 170 MB on first use), `"digits"`
    (scikit-learn's 1,797 8x8 digits, installed with scikit-learn: nothing is downloaded), or
    `"auto"`: CIFAR-10 when it is cached or its server answers, else digits. `size` (digits only):
    8, or 32 to enlarge them 4x (nearest neighbour) into 3-channel 32x32 images for CIFAR models.
    """
    fallback = False
    if dataset == "auto":
        fallback = not (_cifar10_cached() or _reachable(CIFAR10_HOST))
        dataset = "digits" if fallback else "cifar10"
    if dataset == "cifar10":
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
        x_train, x_test = x_train.astype("float32") / 255.0, x_test.astype("float32") / 255.0
        return x_train, y_train.ravel(), x_test, y_test.ravel(), "CIFAR-10 (keras.datasets)"
    if dataset != "digits":
        raise ValueError(f"`dataset` must be 'auto', 'cifar10' or 'digits'. Received: dataset={dataset!r}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    if size == 32:
        images = np.repeat(np.kron(images, np.ones((1, 4, 4, 1), "float32")), 3, axis=-1)
    elif size != 8:
        raise ValueError(f"`size` must be 8 or 32. Received: size={size!r}")
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, random_state=seed, stratify=digits.target
    )
    note = "CIFAR-10 unreachable, offline fallback: " if fallback else ""
    note += "bundled with scikit-learn" + ("" if size == 8 else ", enlarged to 32x32x3")
    return x_train, y_train, x_test, y_test, f"scikit-learn digits ({note})"


def small_cnn(input_shape, norm_layers, classes=10, output_activation=None):
    """Three 3x3 convolutions (32, 64 with stride 2, 64; no bias), each followed by `norm_layers()`,
    global average pooling and a Dense classifier (logits unless `output_activation`)."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters, strides in ((32, 1), (64, 2), (64, 1)):
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        for layer in norm_layers():
            x = layer(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation=output_activation)(x))


def bn_relu():
    # momentum 0.9 (torch's 0.1, and EvoNormB0's default): Keras' 0.99 needs thousands of steps
    # to settle, so after a few hundred its test accuracy would measure the averaging lag.
    return [keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU()]


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def report(name, table, results, settings, out=None, plot=None):
    """Prints `table`; with `out`, writes `name.md`, `name.json` and, given `plot`, `name.png`.

    `plot(results)` returns a matplotlib figure; the docs call the same function on the stored
    JSON, so the page and the run draw the same picture.
    """
    print("\n" + table, flush=True)
    if out is None:
        return
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{name}.md"), "w") as handle:
        handle.write(f"{settings}\n\n{table}\n")
    with open(os.path.join(out, f"{name}.json"), "w") as handle:
        json.dump({"settings": settings, "results": results}, handle, indent=1)
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        figure = plot(results)
        figure.savefig(os.path.join(out, f"{name}.png"), dpi=110, bbox_inches="tight")
    print(f"wrote {out}/{name}.md, .json{', .png' if plot else ''}", flush=True)


def progress(total, label, unit="epoch"):
    """A Keras progress bar over the whole run: `total` epochs (or steps) of every model trained."""
    print(label, flush=True)
    return keras.utils.Progbar(total, unit_name=unit)


class Progress(keras.callbacks.Callback):
    """Advances `bar` by one at the end of every epoch (or, with `per_step`, every training step)."""

    def __init__(self, bar, per_step=False):
        super().__init__()
        self.bar, self.per_step = bar, per_step

    def on_epoch_end(self, epoch, logs=None):
        if not self.per_step:
            self.bar.add(1)

    def on_train_batch_end(self, batch, logs=None):
        if self.per_step:
            self.bar.add(1)

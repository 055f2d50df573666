"""Train one small CNN per normalization layer on scikit-learn's digits and compare them.

    python examples/compare_norms.py                      # every layer, on $KERAS_BACKEND
    KERAS_BACKEND=jax python examples/compare_norms.py --epochs 20
    python examples/compare_norms.py --norms bn_relu evonorm_b0 --smoke

The data (1,797 8x8 grayscale digits) ships with scikit-learn, so nothing is downloaded. Each
layer trains the same network from the same seed: three 3x3 convolutions, each followed by the
normalization-activation under test, global average pooling and a softmax classifier. It prints
a markdown table of held-out accuracy, final training loss and median time per training step.
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_norms


def bn_relu():
    # momentum 0.9 (torch's 0.1, and EvoNormB0's default): Keras' 0.99 needs thousands of steps
    # to settle, so after this run's ~300 its test accuracy would measure the averaging lag.
    return [keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU()]


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


def train(norm, data, epochs, batch_size, seed):
    x_train, x_test, y_train, y_test = data
    keras.utils.set_random_seed(seed)
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
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
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
    args = parser.parse_args(argv)

    data = load_digits(args.seed)
    epochs = args.epochs
    if args.smoke:
        x_train, x_test, y_train, y_test = data
        data = (x_train[:256], x_test[:128], y_train[:256], y_test[:128])
        epochs = 1
    print(
        f"digits: {len(data[0])} train / {len(data[1])} test images, {epochs} epochs, "
        f"batch {args.batch_size}, backend {keras.backend.backend()}, {os.cpu_count()} CPUs"
    )
    results = {}
    for norm in args.norms:
        results[norm] = train(norm, data, epochs, args.batch_size, args.seed)
        print(f"  {norm}: done", flush=True)
    print("\n| normalization | test accuracy | final train loss | step time (ms) |")
    print("|---|---|---|---|")
    for norm, r in results.items():
        print(f"| {norm} | {r['accuracy']:.4f} | {r['loss']:.4f} | {r['step_ms']:.1f} |")
    return results


if __name__ == "__main__":
    main()

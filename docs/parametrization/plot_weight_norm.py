"""Training loss of a small MLP on sklearn's digits, plain and weight-normalized (same initial weights).

python docs/parametrization/plot_weight_norm.py    # writes docs/parametrization/weight_norm.png

Four ReLU layers of 64 units, plain SGD (learning rate 0.05, batch 64) for 30 epochs over the 1,437
training images, three seeds; about a minute on a laptop CPU. The weight-normalized models come
from `weight_normalize(model)`: the same weights, so they start from the plain model's outputs;
with `data_init=True` the first batch then re-initializes every layer.
"""

import os

import keras
import matplotlib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from keras_norms.surgery.reparametrize import weight_normalize

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

EPOCHS = 30
SEEDS = (0, 1, 2)


def data():
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    return train_test_split(x, digits.target, test_size=0.2, random_state=0)


def mlp(seed):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,))]
    layers += [keras.layers.Dense(64, activation="relu") for _ in range(4)]
    return keras.Sequential([*layers, keras.layers.Dense(10)])


def losses(model, x, y, x_test, y_test, seed):
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    keras.utils.set_random_seed(seed)  # the same batches for every variant
    history = model.fit(x, y, batch_size=64, epochs=EPOCHS, validation_data=(x_test, y_test), verbose=0)
    return np.array(history.history["loss"]), history.history["val_accuracy"][-1]


def figure():
    x, x_test, y, y_test = data()
    variants = {
        "plain": lambda model: model,
        "weight norm": lambda model: weight_normalize(model, data_init=False),
        "weight norm + data init": weight_normalize,
    }
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, make in variants.items():
        runs = [losses(make(mlp(seed)), x, y, x_test, y_test, seed) for seed in SEEDS]
        curves = np.stack([curve for curve, _ in runs])
        accuracy = np.mean([accuracy for _, accuracy in runs])
        epochs = np.arange(1, EPOCHS + 1)
        (line,) = ax.plot(epochs, curves.mean(axis=0), label=f"{name} (test accuracy {accuracy:.3f})")
        ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.2)
    ax.set(
        xlabel="epoch",
        ylabel="training loss",
        yscale="log",
        title=f"4 x 64 ReLU MLP on digits, SGD 0.05 ({len(SEEDS)} seeds: mean, min-max)",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weight_norm.png")
    figure().savefig(path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}")

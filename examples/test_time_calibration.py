"""Test-time BatchNorm calibration on corrupted test images: source BN, test BN and alpha-BN.

    python examples/test_time_calibration.py                    # digits, 15 epochs
    python examples/test_time_calibration.py --dataset cifar10 --epochs 30 --out results/
    python examples/test_time_calibration.py --smoke

The claim (You, Li, Zhao, "Test-time Batch Statistics Calibration for Covariate Shift",
arXiv 2110.04065; after Schneider et al., arXiv 2006.16971): on shifted test data, normalizing
with the test batch's statistics instead of the training set's moving averages recovers accuracy,
and mixing the two (`alpha`-BN, `mu = (1 - a) mu_source + a mu_test`, same for the variance)
does better still, most of all with small test batches. A CNN with BatchNormalization is trained
on clean images and evaluated on corrupted copies of its test set (Gaussian noise, Gaussian blur,
contrast reduction, three severities each) with:

- `source`: the model as trained (moving statistics);
- `test_bn`: `keras_norms.surgery.calibrate_batch_statistics(model, test_weight=1.0)`;
- `alpha_bn`: the same with `test_weight=--alpha` (0.1 by default, the reference's).

Test batches of `--eval-batch-sizes` images (the first size for the full table; the mean over
corruptions for each), shuffled so that every batch mixes classes. Smaller batches give noisier
test statistics: the regime where alpha-BN is meant to help.
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

SEVERITIES = (1, 2, 3)


def gaussian_noise(x, severity, rng):
    return np.clip(x + rng.normal(0.0, (0.08, 0.16, 0.24)[severity - 1], x.shape), 0.0, 1.0).astype("float32")


def gaussian_blur(x, severity, rng):
    sigma = (0.6, 0.9, 1.2)[severity - 1]
    radius = 2
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
    rows = sum(w * padded[:, i : i + x.shape[1], :, :] for i, w in enumerate(taps))
    return sum(w * rows[:, :, i : i + x.shape[2], :] for i, w in enumerate(taps)).astype("float32")


def contrast(x, severity, rng):
    factor = (0.5, 0.3, 0.15)[severity - 1]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return ((x - mean) * factor + mean).astype("float32")


CORRUPTIONS = {"gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur, "contrast": contrast}


def build_model(input_shape, classes=10):
    return small_cnn(input_shape, bn_relu, classes)


def accuracy(model, x, y, batch_size):
    # Whole batches only: a short last batch would get noisier statistics than the others.
    n = len(x) // batch_size * batch_size
    logits = model.predict(x[:n], batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y[:n]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", default="digits", choices=["auto", "cifar10", "digits"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-sizes", type=int, nargs="+", default=[64, 16, 4])
    parser.add_argument("--alpha", type=float, default=0.1, help="alpha-BN's weight of the test statistics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for test_time_calibration.md/.json/.png")
    parser.add_argument("--smoke", action="store_true", help="1 epoch on 256 samples, severity 3 only")
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test, description = load_images(args.dataset, seed=args.seed)
    epochs, severities = args.epochs, SEVERITIES
    if args.smoke:
        x_train, y_train, x_test, y_test = x_train[:256], y_train[:256], x_test[:128], y_test[:128]
        epochs, severities = 1, (3,)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(x_test))
    x_test, y_test = x_test[order], y_test[order]
    sizes = args.eval_batch_sizes
    settings = (
        f"{description}: {len(x_train)} train / {len(x_test)} test images; {epochs} epochs, batch "
        f"{args.batch_size} (Adam 3e-3); evaluation batches of {sizes}, alpha "
        f"{args.alpha}, seed {args.seed}, backend {keras.backend.backend()}"
    )
    bar = progress(epochs + 1 + len(CORRUPTIONS) * len(severities), settings, unit="step")

    keras.utils.set_random_seed(args.seed)
    model = build_model(x_train.shape[1:])
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, verbose=0, callbacks=[Progress(bar)])
    models = {
        "source": model,
        "test_bn": keras_norms.surgery.calibrate_batch_statistics(model, test_weight=1.0)[0],
        "alpha_bn": keras_norms.surgery.calibrate_batch_statistics(model, test_weight=args.alpha)[0],
    }

    def evaluate(x):
        bar.add(1)
        return {size: {name: accuracy(m, x, y_test, size) for name, m in models.items()} for size in sizes}

    by_size = {"clean": evaluate(x_test)}
    for corruption, corrupt in CORRUPTIONS.items():
        for severity in severities:
            by_size[f"{corruption} {severity}"] = evaluate(corrupt(x_test, severity, rng))
    shifted = [name for name in by_size if name != "clean"]
    results = {condition: accs[sizes[0]] for condition, accs in by_size.items()}
    results["mean over corruptions"] = {m: float(np.mean([by_size[c][sizes[0]][m] for c in shifted])) for m in models}
    for size in sizes[1:]:
        results[f"mean over corruptions, batches of {size}"] = {
            m: float(np.mean([by_size[c][size][m] for c in shifted])) for m in models
        }
    rows = [[condition] + [accs[m] for m in models] for condition, accs in results.items()]
    headers = [
        f"test set (batches of {sizes[0]} unless said)",
        "source BN",
        "test BN",
        f"alpha-BN (alpha={args.alpha})",
    ]
    table = markdown_table(headers, rows)
    report("test_time_calibration", table, results, settings, args.out, plot)
    return results


def plot(results):
    import matplotlib.pyplot as plt

    conditions = list(results)
    methods = list(results[conditions[0]])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        ax.bar(
            [c + i * width for c in range(len(conditions))],
            [results[c][method] for c in conditions],
            width=width,
            label=method,
        )
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(conditions))])
    ax.set_xticklabels(conditions, rotation=35, ha="right", fontsize=8)
    ax.set(ylabel="test accuracy", ylim=(0, 1), title="BatchNorm statistics at test time, corrupted test sets")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()

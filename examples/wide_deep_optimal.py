"""Infinitely wide and deep networks as classifiers: the paper's "optimal" activations against ReLU.

    python examples/wide_deep_optimal.py            # about a minute on a CPU; writes docs/example_results/
    python examples/wide_deep_optimal.py --out DIR
    python examples/wide_deep_optimal.py --smoke    # seconds; writes nothing unless --out is given

The paper's claim (Radhakrishnan, Belkin, Uhler, "Wide and Deep Neural Networks Achieve Optimality
for Classification", arXiv 2204.14126, PNAS 2023): an infinitely wide network trained to
convergence is kernel regression with its NTK; as the depth grows it becomes 1-nearest-neighbour,
majority vote, or a singular-kernel classifier, depending only on the activation's dual kernel
(`keras_norms.activations.dual_activation_stats`). The activations `HermiteActivation.preset(...)`
make it the Hilbert estimate, `sign(sum_i y_i ||x - x_i||**-(d-1))` on the sphere `S^(d-1)`, which
is consistent: its error tends to the Bayes error as the training set grows. ReLU's deep NTK tends
to majority vote instead (the authors' code runs it at depth 50000 to see that).

The data is the authors' 3-D task (their `main.py`): class +1 (prior 0.4) ~ Dirichlet(0.5, 0.5,
2.5), class -1 ~ Dirichlet(2.5, 0.1, 0.5), each sample scaled to unit norm (the positive octant
of the sphere S^2, so d = 3 and the matching presets are `optimal_3d` and `sine_3d`). The Bayes
classifier is known. Everything is numpy: for unit-norm inputs the NNGP and NTK of an infinitely
wide network of depth L follow from the dual `g` of the activation,

    Sigma^0 = Theta^0 = <x, z>,   Sigma^(l+1) = g(Sigma^l),   Theta^(l+1) = Theta^l g'(Sigma^l) + Sigma^(l+1),

and the network trained to zero loss on labels +-1 predicts `sign(k(x)^T K^-1 y)` (solved with a
1e-10 relative ridge). Depth infinity is the limit classifier `sign(sum_i y_i c(<x_i, x>))` with
`c = lim_L g^L / g'(0)**L`, which both the NNGP and the NTK approach. The plot shows the decision
regions on the simplex (each point stands for its direction on the sphere).
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from common import markdown_table, report  # noqa: E402

from keras_norms.activations import HermiteActivation  # noqa: E402

ALPHA_POSITIVE, ALPHA_NEGATIVE, PRIOR_POSITIVE = (0.5, 0.5, 2.5), (2.5, 0.1, 0.5), 0.4
DIMENSION = 3
# The presets whose depth-infinity classifiers are compared: alpha = 1, 2, 2 and 4 for d - 1 = 2.
LIMIT_PRESETS = ("optimal_2d", "optimal_3d", "sine_3d", "optimal_5d")
RIDGE = 1e-10  # relative to the mean of the kernel matrix's diagonal
DEFAULT_OUT = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "example_results")
)


def relu_dual(rho):
    """The dual of `sqrt(2) * relu`, the arc-cosine kernel: `(sqrt(1 - rho**2) + (pi - arccos rho) rho) / pi`."""
    return (np.sqrt(1 - rho * rho) + (np.pi - np.arccos(rho)) * rho) / np.pi


def relu_dual_derivative(rho):
    return (np.pi - np.arccos(rho)) / np.pi


def duals():
    """`{name: (g, g')}` for the activations whose deep kernels the example computes at every depth."""
    presets = HermiteActivation.PRESETS
    return {
        "optimal_3d": (presets["optimal_3d"].dual, presets["optimal_3d"].dual_derivative),
        "sine_3d": (presets["sine_3d"].dual, presets["sine_3d"].dual_derivative),
        "relu": (relu_dual, relu_dual_derivative),
    }


def sample(rng, n):
    """`n` points: simplex coordinates `s`, their unit-norm directions `x`, labels `y` in {-1, +1}."""
    y = np.where(rng.random(n) < PRIOR_POSITIVE, 1, -1)
    s = np.where((y > 0)[:, None], rng.dirichlet(ALPHA_POSITIVE, n), rng.dirichlet(ALPHA_NEGATIVE, n))
    return s, s / np.linalg.norm(s, axis=1, keepdims=True), y


def _dirichlet_log_density(s, alpha):
    alpha = np.asarray(alpha)
    return math.lgamma(alpha.sum()) - sum(math.lgamma(a) for a in alpha) + np.log(s) @ (alpha - 1)


def bayes(s):
    """The Bayes classifier: the class of larger prior times Dirichlet density."""
    positive = _dirichlet_log_density(s, ALPHA_POSITIVE) + math.log(PRIOR_POSITIVE)
    negative = _dirichlet_log_density(s, ALPHA_NEGATIVE) + math.log(1 - PRIOR_POSITIVE)
    return np.where(positive > negative, 1, -1)


def deep_kernels(rho, dual, derivative, depths):
    """Yields the NNGP and NTK `(Sigma^L, Theta^L)` of the inner products `rho` at each depth `L` of `depths`.

    The arrays are updated in place by the next layer: use them before asking for the next depth.
    """
    sigma = np.clip(rho, -1.0, 1.0)
    theta = sigma.copy()
    for depth in range(1, max(depths) + 1):
        theta *= derivative(sigma)
        sigma = np.clip(dual(sigma), -1.0, 1.0, out=sigma)
        theta += sigma
        if depth in depths:
            yield sigma, theta


def limit_kernel(rho, dual, slope_at_zero, tolerance=1e-6):
    """`c(rho) = lim_L g^L(rho) / g'(0)**L`, iterated until every `|g^L(rho)|` is below `tolerance`.

    `rho` is kept within `1 - 1e-15` of +-1, where `c` is infinite: a test point on a training point
    gets a large, finite weight.
    """
    iterate, depth = np.clip(rho, -1 + 1e-15, 1 - 1e-15), 0
    while np.abs(iterate).max() > tolerance:
        iterate, depth = dual(iterate), depth + 1
    return iterate / slope_at_zero**depth


def interpolate(kernel_train, kernel_query, y):
    """`sign(k(x)^T K^-1 y)`: the infinitely wide network trained to zero loss (a tiny ridge for stability)."""
    ridge = RIDGE * np.mean(np.diag(kernel_train))
    coefficients = np.linalg.solve(kernel_train + ridge * np.eye(len(y)), y)
    return np.where(coefficients @ kernel_query >= 0, 1, -1)


def vote(weights, y):
    """`sign(sum_i y_i w(x_i, x))`: a kernel classifier without the matrix inverse (the depth limits)."""
    return np.where(y @ weights >= 0, 1, -1)


def simplex_grid(subdivisions):
    """Simplex points `(i + 1/3, j + 1/3, k + 1/3) / (subdivisions + 1)`, `i + j + k = subdivisions`."""
    points = [(i, j, subdivisions - i - j) for i in range(subdivisions + 1) for j in range(subdivisions + 1 - i)]
    return (np.array(points, dtype=np.float64) + 1 / 3) / (subdivisions + 1)


def depth_experiment(train, queries, depths):
    """Per activation and kernel (NNGP, NTK), the predictions on `queries` at each depth."""
    _, x_train, y_train = train
    rho_train, rho_query = x_train @ x_train.T, x_train @ queries.T
    predictions = {}
    for name, (dual, derivative) in duals().items():
        by_kernel = {"ntk": [], "nngp": []}
        trains = deep_kernels(rho_train, dual, derivative, depths)
        for (sigma_train, theta_train), (sigma_query, theta_query) in zip(
            trains, deep_kernels(rho_query, dual, derivative, depths)
        ):
            by_kernel["nngp"].append(interpolate(sigma_train, sigma_query, y_train))
            by_kernel["ntk"].append(interpolate(theta_train, theta_query, y_train))
        predictions[name] = by_kernel
    return predictions


def limit_classifiers(train, queries):
    """The depth-infinity classifiers (every preset's, the reference ones) on `queries`."""
    _, x_train, y_train = train
    rho = x_train @ queries.T
    presets = HermiteActivation.PRESETS
    predictions = {
        name: vote(limit_kernel(rho, presets[name].dual, presets[name].dual_derivative(0.0)), y_train)
        for name in LIMIT_PRESETS
    }
    distance = np.sqrt(np.maximum(2 - 2 * rho, 1e-30))
    predictions["hilbert"] = vote(distance ** -(DIMENSION - 1.0), y_train)
    predictions["nearest_neighbor"] = y_train[np.argmax(rho, axis=0)]
    predictions["majority_vote"] = np.full(queries.shape[0], 1 if y_train.sum() >= 0 else -1)
    return predictions


def accuracy(prediction, y):
    return float(np.mean(prediction == y))


def run(args):
    """Draws the data, runs every classifier and returns the numbers `report` and `plot` use."""
    rng = np.random.default_rng(args.seed)
    train = sample(rng, args.train_size)
    s_test, x_test, y_test = sample(rng, args.test_size)
    grid = simplex_grid(args.grid)
    queries = np.concatenate([x_test, grid / np.linalg.norm(grid, axis=1, keepdims=True)])
    tested = slice(0, args.test_size)
    mapped = slice(args.test_size, None)

    deep = depth_experiment(train, queries, args.depths)
    limits = limit_classifiers(train, queries)
    results = {
        "train_size": args.train_size,
        "test_size": args.test_size,
        "sweep_seeds": args.sweep_seeds,
        "depths": args.depths,
        "bayes": accuracy(bayes(s_test), y_test),
        "deep": {
            name: {kernel: [accuracy(p[tested], y_test) for p in runs] for kernel, runs in by_kernel.items()}
            for name, by_kernel in deep.items()
        },
        "limits": {name: accuracy(p[tested], y_test) for name, p in limits.items()},
        "agreement": {kernel: accuracy(runs[-1], limits["optimal_3d"]) for kernel, runs in deep["optimal_3d"].items()},
        "maps": {
            "grid": args.grid,
            "train": np.round(np.column_stack([train[0], train[2]]), 4).tolist(),
            "bayes": bayes(grid).tolist(),
            f"optimal_3d, NTK depth {args.depths[-1]}": deep["optimal_3d"]["ntk"][-1][mapped].tolist(),
            "optimal_3d, depth infinity": limits["optimal_3d"][mapped].tolist(),
            f"relu, NTK depth {args.depths[-1]}": deep["relu"]["ntk"][-1][mapped].tolist(),
            "1-nearest neighbour": limits["nearest_neighbor"][mapped].tolist(),
            "Hilbert estimate": limits["hilbert"][mapped].tolist(),
        },
        "sweep": sweep(args, x_test, y_test),
    }
    return results


def sweep(args, x_test, y_test):
    """The depth-infinity classifiers' accuracy against the training-set size (mean over seeds)."""
    table = {}
    for size in args.sweep_sizes:
        runs = []
        for seed in range(args.sweep_seeds):
            train = sample(np.random.default_rng([args.seed, size, seed]), size)
            runs.append({name: accuracy(p, y_test) for name, p in limit_classifiers(train, x_test).items()})
        table[size] = {name: float(np.mean([run[name] for run in runs])) for name in runs[0]}
    return table


LIMIT_COLUMNS = (
    ("nearest_neighbor", "1-NN"),
    ("hilbert", "Hilbert estimate (alpha = 2)"),
    ("optimal_2d", "optimal_2d (alpha = 1)"),
    ("optimal_3d", "optimal_3d (alpha = 2)"),
    ("sine_3d", "sine_3d (alpha = 2)"),
    ("optimal_5d", "optimal_5d (alpha = 4)"),
    ("majority_vote", "majority vote"),
)


def summarize(results):
    """The tables, and what they show in numbers."""
    depths, deep, limits, bayes_accuracy = results["depths"], results["deep"], results["limits"], results["bayes"]
    names = list(deep)
    headers = ["depth"] + [f"{name} {kernel.upper()}" for name in names for kernel in ("ntk", "nngp")]
    rows = [
        [depth] + [deep[name][kernel][i] for name in names for kernel in ("ntk", "nngp")]
        for i, depth in enumerate(depths)
    ]
    limit_row = ["infinity"]
    for name in names:
        limit_row += 2 * [limits["majority_vote"] if name == "relu" else limits[name]]
    by_depth = markdown_table(headers, rows + [limit_row])
    references = markdown_table(
        ["Bayes", "1-NN", "Hilbert estimate", "majority vote"],
        [[bayes_accuracy, limits["nearest_neighbor"], limits["hilbert"], limits["majority_vote"]]],
    )
    sweep = results["sweep"]
    sizes = list(sweep)
    by_size = markdown_table(
        ["training points", "Bayes"] + [label for _, label in LIMIT_COLUMNS],
        [[size, bayes_accuracy] + [sweep[size][name] for name, _ in LIMIT_COLUMNS] for size in sizes],
    )

    deepest, optimal, relu = depths[-1], deep["optimal_3d"]["ntk"], deep["relu"]["ntk"]
    preset_deep = max(optimal[-1], limits["optimal_3d"])  # the deepest NTK or the limit, whichever is better
    error = math.sqrt(relu[-1] * (1 - relu[-1]) / results["test_size"])  # one standard error of an accuracy
    if preset_deep > relu[-1] + error:
        verdict = f"The preset beats ReLU here (by more than {error:.4f}, one standard error of a test accuracy)"
    elif preset_deep < relu[-1] - error:
        verdict = "**The preset does not beat ReLU at this size**"
    else:
        verdict = (
            f"**The preset does not beat ReLU at this size** (they are within {error:.4f}, one standard error of a "
            "test accuracy)"
        )
    worst, best = int(np.argmin(optimal)), int(np.argmax(optimal))
    first, last = sweep[sizes[0]], sweep[sizes[-1]]
    agreement = results["agreement"]
    return f"""Test accuracy by depth of the infinitely wide network (kernel regression to zero training
loss with its NTK or NNGP). Depth infinity is the limit classifier: for the presets the singular
kernel `c = lim g^L / g'(0)**L`, which grows like `||x - z||**-2` near the diagonal; for ReLU,
majority vote, which the theory predicts (`g(0) = 1 / pi > 0`) and which the authors' code says
needs a depth past 50000.

{by_depth}

The reference classifiers on the same test set:

{references}

{verdict}: at depth {deepest} ReLU's NTK scores {relu[-1]:.4f}, the optimal_3d NTK {optimal[-1]:.4f}
and the preset's depth-infinity classifier {limits["optimal_3d"]:.4f}; Bayes is {bayes_accuracy:.4f}.
Over depths {depths[0]} to {deepest} ReLU's NTK stays within {min(relu):.4f} to {max(relu):.4f}; the
optimal_3d NTK ranges from {optimal[worst]:.4f} (depth {depths[worst]}) to {optimal[best]:.4f}
(depth {depths[best]}). At finite size a smooth kernel such as ReLU's NTK at moderate depth is a
good classifier; the paper's results are limits (depth, then data size), and ReLU's limit is
majority vote ({limits["majority_vote"]:.4f}). At depth {deepest} the optimal_3d NNGP agrees with the
depth-infinity classifier on {agreement["nngp"]:.1%} of the test and map points, its NTK on
{agreement["ntk"]:.1%}: the NNGP converges geometrically (the authors' experiments use it, at
depths 50 to 200), the NTK only like 1/L (its off-diagonal is `L g'(0)**L c` plus a correction,
smaller by 1/L, that weighs near neighbours more).

The claim itself is about the training-set size: the depth-infinity classifier with exponent
`alpha = d - 1 = 2` (optimal_3d, sine_3d, like the Hilbert estimate) is consistent, 1-NN is not
(its error tends to between one and two times the Bayes error), and the presets for other
dimensions have `alpha != 2`. Depth-infinity classifiers by training-set size (mean over
{results["sweep_seeds"]} fresh draws of the training set; the same test set):

{by_size}

From {sizes[0]} to {sizes[-1]} training points the gap to Bayes goes from
{bayes_accuracy - first["optimal_3d"]:.4f} to {bayes_accuracy - last["optimal_3d"]:.4f} for
optimal_3d and from {bayes_accuracy - first["nearest_neighbor"]:.4f} to
{bayes_accuracy - last["nearest_neighbor"]:.4f} for 1-NN: a trend at these sizes, not a proof of
consistency.

The plot: decision regions on the simplex (each point stands for its direction on the sphere; the
corners are the coordinate axes), red for class +1 and blue for class -1: the Bayes classifier
with the training points, the optimal_3d NTK at depth {deepest} and at depth infinity, ReLU's NTK
at depth {deepest}, 1-NN and the Hilbert estimate; then test accuracy against depth and, for the
depth-infinity classifiers, against the training-set size."""


def plot(results):
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.tri import Triangulation

    def planar(s):
        s = np.asarray(s)
        return s[:, 1] + s[:, 2] / 2, s[:, 2] * math.sqrt(3) / 2

    maps = results["maps"]
    triangulation = Triangulation(*planar(simplex_grid(maps["grid"])))
    colors = ListedColormap(["#9ecae1", "#fcae91"])
    fig, axes = plt.subplots(2, 4, figsize=(15, 7.2))
    panels = [key for key in maps if key not in ("grid", "train")]
    for ax, key in zip(axes.flat, panels):
        ax.tricontourf(triangulation, np.asarray(maps[key], dtype=float), levels=[-2, 0, 2], cmap=colors)
        ax.plot([0, 1, 0.5, 0], [0, 0, math.sqrt(3) / 2, 0], "k-", linewidth=0.8)
        for corner, (u, v, align) in enumerate(((0, 0, "right"), (1, 0, "left"), (0.5, math.sqrt(3) / 2, "center"))):
            ax.text(u, v - (0.06 if corner < 2 else -0.02), f"e{corner + 1}", ha=align, fontsize=8)
        if key == "bayes":
            train = np.asarray(maps["train"])
            u, v = planar(train[:, :3])
            for label, color in ((1, "#cb181d"), (-1, "#2171b5")):
                chosen = train[:, 3] == label
                ax.scatter(u[chosen], v[chosen], s=3, color=color, alpha=0.6, linewidths=0)
        ax.set_title("Bayes classifier, training points" if key == "bayes" else key, fontsize=9)
        ax.set_aspect("equal")
        ax.axis("off")
    curves, sizes = axes.flat[len(panels)], axes.flat[len(panels) + 1]
    for name, by_kernel in results["deep"].items():
        curves.plot(results["depths"], by_kernel["ntk"], marker="o", markersize=3, label=f"{name} NTK")
    for key, style in (("bayes", "k-"), ("nearest_neighbor", "k:"), ("hilbert", "k--")):
        value = results["bayes"] if key == "bayes" else results["limits"][key]
        curves.axhline(value, color=style[0], linestyle=style[1:], linewidth=1, label=key.replace("_", " "))
    curves.set(xscale="log", xlabel="depth", ylabel="test accuracy", title="accuracy against depth")
    sweep = results["sweep"]
    training_sizes = [int(size) for size in sweep]
    for name, label in LIMIT_COLUMNS:
        if name != "majority_vote":
            sizes.plot(training_sizes, [sweep[size][name] for size in sweep], marker="o", markersize=3, label=label)
    sizes.axhline(results["bayes"], color="k", linewidth=1, label="Bayes")
    sizes.set(xscale="log", xlabel="training points", ylabel="test accuracy", title="depth infinity, by data size")
    for ax in (curves, sizes):
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 5, 10, 20, 50, 100, 200])
    parser.add_argument("--grid", type=int, default=40, help="simplex subdivisions of the decision-region maps")
    parser.add_argument("--sweep-sizes", type=int, nargs="+", default=[100, 300, 1000, 3000])
    parser.add_argument("--sweep-seeds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", help="folder for wide_deep_optimal.md/.json/.png (default: docs/example_results; none with --smoke)"
    )
    parser.add_argument("--smoke", action="store_true", help="150 training points, depths up to 10, a coarse map")
    args = parser.parse_args(argv)
    if args.smoke:
        args.train_size, args.test_size, args.depths, args.grid = 150, 300, [1, 2, 10], 12
        args.sweep_sizes, args.sweep_seeds = [50, 150], 1
    args.depths = sorted(set(args.depths))
    out = args.out if args.out is not None or args.smoke else DEFAULT_OUT
    results = run(args)
    settings = (
        f"The authors' 3-D Dirichlet task on the sphere S^2: {args.train_size} training / {args.test_size} "
        f"test points, seed {args.seed}; depths {args.depths}; ridge {RIDGE} (relative); numpy float64."
    )
    report("wide_deep_optimal", summarize(results), results, settings, out, plot)
    return results


if __name__ == "__main__":
    main()

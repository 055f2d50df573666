"""The coordinate check: muP's test that activations keep their size as the width grows.

Train the same architecture at several widths for a few steps and record, after each step, the
mean absolute value of every layer's output ("coordinate size") on a fixed batch. Under muP each
layer's curve is flat across widths; under the standard parametrization with Adam the output
layer's grows with width (and with SGD some vanish). This is `mup.coord_check`'s recipe (Yang et
al., arXiv 2203.03466, Figure 5 and Appendix D.1).
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_norms.arguments import check_int


@dataclasses.dataclass(frozen=True)
class CoordinateSize:
    """One point of a coordinate check: `mean(|output|)` of `layer` at `width` after `step` steps."""

    width: int
    step: int
    layer: str
    size: float


def _probe(model):
    if not isinstance(model, keras.Model) or not hasattr(model, "inputs") or model.inputs is None:
        raise TypeError(
            "coord_check needs a built Functional or Sequential keras.Model (its layers' outputs are read). "
            f"Received: {model!r}"
        )
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    outputs = [layer.output for layer in layers]
    return [layer.name for layer in layers], keras.Model(model.inputs, outputs)


def coord_check(
    model_fn: Callable[[int], tuple[keras.Model, keras.optimizers.Optimizer]],
    widths: Sequence[int],
    x: Any,
    y: Any,
    loss: Any,
    steps: int = 4,
    seeds: Sequence[int] = (0, 1),
) -> list[CoordinateSize]:
    """Coordinate sizes of `model_fn(width)` over `steps` training steps on `(x, y)`, at each width.

    Args:
        model_fn: `width -> (model, optimizer)`: a built Functional or Sequential model and its
            optimizer (for muP: `set_base_shapes` and `mu_optimizer` inside; for the standard
            parametrization: a plain model and optimizer).
        widths: The widths to compare.
        x, y: One batch, used for every step (as `mup` does).
        loss: The loss to compile with.
        steps: Training steps; sizes are recorded before the first step and after each one.
        seeds: Each width is trained once per seed (`keras.utils.set_random_seed(seed)` before
            `model_fn`), and the sizes averaged.

    Returns:
        A list of `CoordinateSize`, one per width, step (0 to `steps`) and top-level layer.
    """
    steps = check_int("steps", steps, minimum=1)
    if not widths or not seeds:
        raise ValueError(f"`widths` and `seeds` must not be empty. Received: widths={widths!r}, seeds={seeds!r}")
    sizes: dict[tuple[int, int, str], list[float]] = {}
    for width in widths:
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model, optimizer = model_fn(width)
            names, probe = _probe(model)
            model.compile(optimizer=optimizer, loss=loss)
            for step in range(steps + 1):
                if step:
                    model.train_on_batch(x, y)
                outputs = probe.predict_on_batch(x)
                for name, output in zip(names, outputs if len(names) > 1 else [outputs]):
                    size = float(np.mean(np.abs(np.asarray(output, dtype=np.float64))))
                    sizes.setdefault((width, step, name), []).append(size)
    return [CoordinateSize(width, step, name, float(np.mean(values))) for (width, step, name), values in sizes.items()]


def plot_coord_check(results: dict[str, list[CoordinateSize]], path: str, layers: Sequence[str] | None = None) -> None:
    """Plots coordinate size against width, one panel per parametrization and one line per layer and step.

    Args:
        results: `{title: coord_check(...)}`, e.g. `{"standard": ..., "muP": ...}`.
        path: Where to save the figure (PNG).
        layers: The layers to draw (default: all).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.6), sharey=True, squeeze=False)
    for axis, (title, sizes) in zip(axes[0], results.items()):
        names = layers or list(dict.fromkeys(point.layer for point in sizes))
        last = max(point.step for point in sizes)
        for index, name in enumerate(names):
            for step in (1, last):
                points = sorted((p.width, p.size) for p in sizes if p.layer == name and p.step == step)
                style = "-" if step == last else ":"
                label = f"{name} (step {step})" if step == last else None
                axis.plot(*zip(*points), style, marker="o", color=f"C{index % 10}", label=label)
        axis.set(xscale="log", yscale="log", xlabel="width", title=title)
    axes[0][0].set_ylabel("mean |activation|")
    axes[0][-1].legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

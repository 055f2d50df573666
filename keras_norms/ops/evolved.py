"""The primitives of the EvoNorm search space and the interpreter of their graphs.

Liu, Brock, Simonyan, Le, "Evolving Normalization-Activation Layers", NeurIPS 2020, arXiv 2004.02967,
Table 1. A layer is a DAG whose nodes apply one primitive each to earlier nodes; its first nodes
are the input `x`, a constant `zero` and two per-channel vectors `v0`, `v1`. Every primitive is
shape-preserving in the paper's sense: aggregates are broadcast back to the input's shape (here
they stay in their reduced shape, which broadcasting makes the same thing, and are expanded only
where an aggregate reduces over them).

`epsilon` guards every division and root as the EvoNorm layers do, so that the hand-written
EvoNorms are points of this space exactly:

- `sqrt(z) = sign(z) * sqrt(|z| + eps)` (sign-preserving; `sign(0) = +1`), which is EvoNorm's
  `sqrt(s2 + eps)` on a variance;
- `div(a, b) = a / (sign(b) * max(|b|, eps))`, the plain division wherever `|b| >= eps` (EvoNorm's
  denominators are at least `sqrt(eps)`);
- `log(z) = sign(z) * log(|z| + eps)` (sign-preserving).

Aggregates: `mean`, `mean_square` and `variance` (biased) over the index sets `batch` (batch and
positions, per channel), `instance` (positions, per sample and channel) and `group` (positions
and the `C // groups` contiguous channels of a group, per sample). Batch aggregates use the
moving value instead at inference, and report the batch value for the moving-average update.
"""

from collections.abc import Callable, Mapping, Sequence

from keras import ops

from keras_norms.ops.dtypes import maximum
from keras_norms.ops.statistics import group_moments, masked_mean, masked_mean_square, masked_moments
from keras_norms.ops.types import Tensor

# The names of the initial nodes, in the order node indices count them.
INPUTS = ("x", "zero", "v0", "v1")
STATISTICS = ("mean", "mean_square", "variance")
INDEX_SETS = ("batch", "instance", "group")


def _sign(z):
    # +1 at 0, so that sqrt(0) = sqrt(eps) (EvoNorm's sqrt(s2 + eps)) and div by 0 divides by eps.
    return ops.where(z >= 0, ops.ones_like(z), -ops.ones_like(z))


def _tanh(z):
    # Keras' tanh computes float64 in float32 on JAX and PyTorch; the sigmoid form keeps float64.
    if ops.convert_to_tensor(z).dtype == "float64":
        return 2.0 * ops.sigmoid(2.0 * z) - 1.0
    return ops.tanh(z)


def _make_elementwise(epsilon: float) -> dict[str, Callable[..., Tensor]]:
    return {
        "add": lambda a, b: a + b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / (_sign(b) * maximum(ops.abs(b), epsilon)),
        "max": lambda a, b: maximum(a, b),
        "neg": lambda a: -a,
        "sigmoid": ops.sigmoid,
        "tanh": _tanh,
        "exp": ops.exp,
        "log": lambda a: ops.sign(a) * ops.log(ops.abs(a) + epsilon),
        "abs": ops.abs,
        "square": ops.square,
        "sqrt": lambda a: _sign(a) * ops.sqrt(ops.abs(a) + epsilon),
    }


# name -> arity of every element-wise primitive (their functions depend on epsilon).
ELEMENTWISE: dict[str, int] = {
    **dict.fromkeys(("add", "mul", "div", "max"), 2),
    **dict.fromkeys(("neg", "sigmoid", "tanh", "exp", "log", "abs", "square", "sqrt"), 1),
}
AGGREGATES: tuple[str, ...] = tuple(f"{statistic}_{index_set}" for statistic in STATISTICS for index_set in INDEX_SETS)


def split_aggregate(name: str) -> tuple[str, str]:
    """`"mean_square_batch"` -> `("mean_square", "batch")`."""
    statistic, _, index_set = name.rpartition("_")
    return statistic, index_set


def evolved_graph(
    x: Tensor,
    nodes: Sequence[tuple[str, Sequence[int]]],
    *,
    v0: Tensor,
    v1: Tensor,
    channel_axis: int,
    groups: int,
    epsilon: float,
    moving: Mapping[int, Tensor] | None = None,
    weights: Tensor | None = None,
    synchronized: bool = False,
) -> tuple[Tensor, dict[int, Tensor]]:
    """Evaluates a genome's nodes on `x` (float32 or float64); returns `(y, batch_statistics)`.

    `nodes[i] = (primitive, inputs)` is node `4 + i`; `inputs` index earlier nodes, where 0 to 3
    are `x`, `zero`, `v0`, `v1` (`v0`, `v1` broadcast against `x`). The last node is the output,
    broadcast to `x`'s shape. `moving`: node index -> moving value for each batch aggregate at
    inference, or None in training; then `batch_statistics` maps each batch aggregate's node
    index to its batch value (dims kept) for the moving-average update. `weights`: position
    weights (masks) or None; `synchronized`: batch aggregates over every replica.
    """
    rank = len(x.shape)
    spatial_axes = tuple(a for a in range(1, rank) if a != channel_axis)
    elementwise = _make_elementwise(epsilon)
    values: list[Tensor] = [x, ops.zeros((1,) * rank, x.dtype), v0, v1]
    batch_statistics: dict[int, Tensor] = {}
    full_shape = ops.shape(x)

    def expanded(t):
        return t if tuple(t.shape) == tuple(x.shape) else ops.broadcast_to(t, full_shape)

    for primitive, inputs in nodes:
        arguments = [values[i] for i in inputs]
        if primitive in elementwise:
            value = elementwise[primitive](*arguments)
        else:
            statistic, index_set = split_aggregate(primitive)
            t = expanded(arguments[0])
            if index_set == "batch":
                index = len(values)
                if moving is not None:
                    value = moving[index]
                else:
                    value = _statistic(t, statistic, (0, *spatial_axes), weights, synchronized)
                    batch_statistics[index] = value
            elif index_set == "instance":
                value = _statistic(t, statistic, spatial_axes, weights, False)
            else:
                # The mean square is the uncentered statistic; the mean comes with the centered one.
                mean, second, _ = group_moments(t, channel_axis, groups, weights, centered=statistic != "mean_square")
                value = mean if statistic == "mean" else second
        values.append(value)
    return expanded(values[-1]), batch_statistics


def _statistic(t, statistic, axes, weights, synchronized):
    if statistic == "mean":
        return masked_mean(t, axes, weights, synchronized)
    if statistic == "mean_square":
        return masked_mean_square(t, axes, weights, synchronized)
    return masked_moments(t, axes, weights, synchronized)[1]

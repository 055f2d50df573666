"""AF-KAN: Kolmogorov-Arnold layers with activation-function basis features (Ta & Tran, arXiv 2503.06112)."""

from collections.abc import Callable

from keras import ops

from keras_norms.ops.dtypes import matmul, maximum
from keras_norms.ops.types import Tensor

_FEATURE_FUNCTIONS = {
    "quad1": lambda u, v: ops.square(u * v),
    "quad2": lambda u, v: u * v + ops.square(u) + ops.square(v),
    "sum": lambda u, v: u + v,
    "prod": lambda u, v: u * v,
    "sum_prod": lambda u, v: u + v + u * v,
    "cubic1": lambda u, v: (u + v) * (ops.square(u) + ops.square(v)),
    "cubic2": lambda u, v: (u * v) ** 3,
}
FEATURE_FUNCTIONS = tuple(_FEATURE_FUNCTIONS)


def _min_max(features, axes):
    low = ops.min(features, axis=axes, keepdims=True)
    high = ops.max(features, axis=axes, keepdims=True)
    return (features - low) / (high - low)


def afkan_features(
    x: Tensor,
    phase_low: Tensor,
    phase_high: Tensor,
    activation: Callable[[Tensor], Tensor],
    function: str,
    func_norm: str,
) -> Tensor:
    """Basis features `f_ij = func(act(x_i - low_j), act(high_j - x_i))`, shape `(..., D, K)`.

    `func_norm`: `"none"`; `"global"`, the reference's batch-dependent min-max over the whole
    batch tensor (after an L2 normalization that min-max then cancels); or `"per_sample"`, the
    same over each sample's `(D, K)` features.
    """
    x = ops.expand_dims(x, -1)
    features = _FEATURE_FUNCTIONS[function](activation(x - phase_low), activation(phase_high - x))
    if func_norm == "global":
        norm = ops.sqrt(ops.sum(ops.square(features)))
        return _min_max(features / maximum(norm, 1e-12), None)
    if func_norm == "per_sample":
        return _min_max(features, (-2, -1))
    return features


def afkan_global_attention(features: Tensor, score_kernel: Tensor, score_bias: Tensor, temperature: Tensor) -> Tensor:
    """`alpha_i * sum_j f_ij` with `alpha = softmax_i(s_i / max(T, 1))`, `s_i = f_i . a + c`.

    The softmax runs over the D input features, not over the basis. A temperature below 1
    acts as 1 (and gets no gradient), as the reference's `clamp(min=1)` does.
    """
    scores = matmul(features, score_kernel) + score_bias  # (..., D, 1)
    attention = ops.softmax(scores / maximum(temperature, 1.0), axis=-2)
    return attention[..., 0] * ops.sum(features, axis=-1)

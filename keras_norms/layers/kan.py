"""AFKANDense: a Kolmogorov-Arnold layer with activation-function basis features and global attention.

Paper: Ta & Tran, "AF-KAN: Activation Function-Based Kolmogorov-Arnold Networks for Efficient
Representation Learning", arXiv 2503.06112. Reference: hoangthangta/All-KAN models/af_kan.py
(`AF_KANLayer`, the `global_attn` method its driver uses).
"""

import math
from typing import Any

import keras
from keras import activations, initializers, ops

from keras_norms.arguments import check_bool, check_choice, check_int
from keras_norms.layers.base import build_feature_axis
from keras_norms.ops import kan as kan_ops
from keras_norms.ops.dtypes import matmul, statistics_dtype, upcast
from keras_norms.ops.layer_norm import layer_normalization
from keras_norms.ops.types import Shape, Tensor

_ACTIVATIONS = ("softplus", "sigmoid", "silu", "relu", "leaky_relu", "elu", "gelu", "selu", "tanh")
_FUNC_NORMS = ("none", "global", "per_sample")
_NORMS = ("layer", "batch", None)
_LAYER_NORM_EPSILON = 1e-5  # torch.nn.LayerNorm's default, as in the reference


def _torch_leaky_relu(x):
    return activations.leaky_relu(x, negative_slope=0.01)  # torch's slope, not Keras' 0.2


def _torch_linear_initializer(fan_in):
    # torch.nn.Linear / kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    limit = 1.0 / math.sqrt(fan_in)
    return initializers.RandomUniform(-limit, limit)


@keras.saving.register_keras_serializable(package="keras_norms")
class AFKANDense(keras.layers.Layer):
    """AF-KAN layer `(..., D) -> (..., units)` (the reference's `global_attn` path).

    With `K = grid_size + spline_order` phases `low_j = (j - k)/g`, `high_j = low_j + (k + 1)/g`
    (trainable by default):

        f_ij = func(act(x_i - low_j), act(high_j - x_i))          # (D, K) basis features
        s_i  = sum_j a_j f_ij + c;  alpha = softmax_i(s_i / max(T, 1))   # over the D inputs
        r_i  = alpha_i * sum_j f_ij
        y    = act(norm(r)) @ W                                    # W: (D, units), no bias

    `T` is trainable, initialized to `sqrt(D)`; below 1 it acts as 1 with zero gradient, as the
    reference's `clamp(min=1)`. `func` is one of `quad1` `(uv)^2` (default), `quad2`, `sum`,
    `prod`, `sum_prod`, `cubic1`, `cubic2`.

    `func_norm` defaults to `"none"`: the reference class defaults to its batch-dependent
    normalization (the features are min-max scaled over the *whole batch tensor*, so a sample's
    output depends on the rest of its batch), while its command line, and so every documented
    run, turns it off. `"global"` reproduces that reference mode; `"per_sample"` does the same
    scaling per sample, independent of the batch. `norm="layer"` is LayerNorm over D
    (epsilon 1e-5, own gamma/beta), `"batch"` a Keras BatchNormalization (momentum 0.9, epsilon
    1e-5: torch's defaults), None nothing. `"global"` and `"batch"` are not synchronized across
    replicas in data-parallel training (docs/distributed.md). Initializers follow torch
    (`U(+-1/sqrt(fan_in))`).
    The reference's unused submodules (q/k/v, conv, multi-head attention) are not built, so
    parameter counts count only what is used. Computed in float32 (float64 for a float64 layer).

    Args:
        units: Output size.
        grid_size, spline_order: `g` and `k` (3 and 3, as the reference README recommends).
        base_activation: One of the reference's activations (default `"silu"`).
        func: The feature function (default `"quad1"`).
        func_norm: `"none"`, `"global"` or `"per_sample"`.
        norm: `"layer"`, `"batch"` or None.
        train_phases: Learn the phases (default True).
        **kwargs: Base layer keyword arguments.

    Example:

    >>> y = keras_norms.layers.AFKANDense(10)(keras.random.normal((32, 64)))  # (32, 10)
    """

    def __init__(
        self,
        units: int,
        grid_size: int = 3,
        spline_order: int = 3,
        base_activation: str = "silu",
        func: str = "quad1",
        func_norm: str = "none",
        norm: str | None = "layer",
        train_phases: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_int("units", units, minimum=1)
        self.grid_size = check_int("grid_size", grid_size, minimum=1)
        self.spline_order = check_int("spline_order", spline_order, minimum=0)
        self.base_activation = check_choice("base_activation", base_activation, _ACTIVATIONS)
        self.func = check_choice("func", func, kan_ops.FEATURE_FUNCTIONS)
        self.func_norm = check_choice("func_norm", func_norm, _FUNC_NORMS)
        self.norm = check_choice("norm", norm, _NORMS)
        self.train_phases = check_bool("train_phases", train_phases)
        self._activation = _torch_leaky_relu if base_activation == "leaky_relu" else activations.get(base_activation)
        self.batch_norm: keras.layers.BatchNormalization | None = None  # exactly when norm == "batch"
        if norm == "batch":
            self.batch_norm = keras.layers.BatchNormalization(
                momentum=0.9, epsilon=1e-5, dtype=statistics_dtype(self.compute_dtype), name="batch_norm"
            )
        self.supports_masking = norm != "batch"
        self.autocast = False

    def build(self, input_shape: Shape) -> None:
        dim = build_feature_axis(self, input_shape)
        g, k = self.grid_size, self.spline_order
        num_basis = g + k
        low = [(j - k) / g for j in range(num_basis)]
        self.phase_low = self.add_weight(
            name="phase_low",
            shape=(num_basis,),
            initializer=initializers.Constant(low),
            trainable=self.train_phases,
            autocast=False,
        )
        self.phase_high = self.add_weight(
            name="phase_high",
            shape=(num_basis,),
            initializer=initializers.Constant([value + (k + 1) / g for value in low]),
            trainable=self.train_phases,
            autocast=False,
        )
        self.score_kernel = self.add_weight(
            name="score_kernel",
            shape=(num_basis, 1),
            initializer=_torch_linear_initializer(num_basis),
            autocast=False,
        )
        self.score_bias = self.add_weight(
            name="score_bias",
            shape=(1,),
            initializer=_torch_linear_initializer(num_basis),
            autocast=False,
        )
        self.temperature = self.add_weight(
            name="temperature",
            shape=(),
            initializer=initializers.Constant(math.sqrt(dim)),
            autocast=False,
        )
        if self.norm == "layer":
            self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones", autocast=False)
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros", autocast=False)
        elif self.batch_norm is not None:  # norm == "batch"
            self.batch_norm.build((*input_shape[:-1], dim))
        self.kernel = self.add_weight(
            name="kernel",
            shape=(dim, self.units),
            initializer=_torch_linear_initializer(dim),
            autocast=False,
        )

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = upcast(inputs, self.compute_dtype)
        features = kan_ops.afkan_features(
            x,
            ops.cast(self.phase_low, x.dtype),
            ops.cast(self.phase_high, x.dtype),
            self._activation,
            self.func,
            self.func_norm,
        )
        reduced = kan_ops.afkan_global_attention(
            features,
            ops.cast(self.score_kernel, x.dtype),
            ops.cast(self.score_bias, x.dtype),
            ops.cast(self.temperature, x.dtype),
        )
        if self.norm == "layer":
            reduced = layer_normalization(
                reduced, _LAYER_NORM_EPSILON, ops.cast(self.gamma, x.dtype), ops.cast(self.beta, x.dtype)
            )
        elif self.batch_norm is not None:  # norm == "batch"
            reduced = self.batch_norm(reduced, training=training)
        outputs = matmul(self._activation(reduced), ops.cast(self.kernel, x.dtype))
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "grid_size": self.grid_size,
                "spline_order": self.spline_order,
                "base_activation": self.base_activation,
                "func": self.func,
                "func_norm": self.func_norm,
                "norm": self.norm,
                "train_phases": self.train_phases,
            }
        )
        return config

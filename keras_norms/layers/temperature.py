"""TempNet: a small network that predicts a temperature per input from its logits.

Paper: Qiu, Guo, Xu, Zhao, Zhang, Yang, "To Cool or not to Cool? Temperature Network Meets Large
Foundation Models via DRO", ICML 2024, arXiv 2404.04575. Reference: zhqiu/TempNet (tempnet.py,
megatron/model/tempnet.py). Train it with `keras_norms.losses.TauDROCrossEntropy`.
"""

import math
from typing import Any

import keras
from keras import initializers, ops

from keras_norms.arguments import check_bool, check_fraction, check_int, check_number, check_positive
from keras_norms.layers.base import build_feature_axis
from keras_norms.ops import linear as linear_ops
from keras_norms.ops import temperature as temperature_ops
from keras_norms.ops.dtypes import matmul, statistics_dtype, upcast
from keras_norms.ops.types import Shape, Tensor

_NORMALIZE_EPSILON = 1e-24  # squared: torch's F.normalize clamps the norm at 1e-12


def _torch_uniform(fan_in):
    limit = 1.0 / math.sqrt(fan_in)
    return initializers.RandomUniform(-limit, limit)


@keras.saving.register_keras_serializable(package="keras_norms")
class TempNet(keras.layers.Layer):
    """Temperature `tau` of shape `(..., 1)` from logits `z` of shape `(..., V)`::

        x   = z / |z|                                  (normalize_input)
        h   = Lin2(Dropout(sigmoid(Lin1(x))))          Lin1: V -> M, Lin2: M -> M
        w   = softmax(h / exp(s))                      s: a scalar, initialized to log 1 = 0
        tau = tau_min + (tau_max - tau_min) * sigmoid(Lin3((w - 1/M) * h))   Lin3: M -> 1, init 1, 0

    Defaults are the GPT-2 runs' (`M = 256`, `tau` in [0.5, 5], dropout 0.5); the LLaMA runs use
    `tau_min=0.01, tau_max=1.2`. `Lin1` has `V * M` weights: with a 50k vocabulary, 13M. The
    scale `s` is float32 (the reference stores it in float16); the whole net runs in float32 (float64
    for a float64 layer).
    Lin1 and Lin2 use torch's default init, `U(+-1/sqrt(fan_in))`. At generation, the reference
    feeds `z - max(z)` and divides the logits by `tau`. The CLIP variant (prototype-based) is not
    included.

    Args:
        hidden_units: `M`.
        tau_min, tau_max: The temperature range, `0 < tau_min < tau_max`.
        dropout: Dropout rate after the sigmoid (training only).
        normalize_input: L2-normalize the logits first (default True).
        **kwargs: Base layer keyword arguments.

    Example:

    >>> tau = keras_norms.layers.TempNet()(logits)
    >>> outputs = keras.layers.Concatenate()([logits, tau])  # for TauDROCrossEntropy
    """

    def __init__(
        self,
        hidden_units: int = 256,
        tau_min: float = 0.5,
        tau_max: float = 5.0,
        dropout: float = 0.5,
        normalize_input: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = check_int("hidden_units", hidden_units, minimum=1)
        self.tau_min = check_positive("tau_min", tau_min)
        self.tau_max = check_number("tau_max", tau_max)
        if not self.tau_min < self.tau_max:
            raise ValueError(f"Expected 0 < tau_min < tau_max. Received: tau_min={tau_min!r}, tau_max={tau_max!r}")
        self.dropout = check_fraction("dropout", dropout, exclusive_maximum=True)
        self.normalize_input = check_bool("normalize_input", normalize_input)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=statistics_dtype(self.compute_dtype))
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape: Shape) -> None:
        vocab = build_feature_axis(self, input_shape)
        units = self.hidden_units
        weights = {
            "kernel_1": ((vocab, units), _torch_uniform(vocab)),
            "bias_1": ((units,), _torch_uniform(vocab)),
            "kernel_2": ((units, units), _torch_uniform(units)),
            "bias_2": ((units,), _torch_uniform(units)),
            "log_scale": ((), "zeros"),
            "last_kernel": ((units, 1), "ones"),
            "last_bias": ((1,), "zeros"),
        }
        for name, (shape, initializer) in weights.items():
            weight = self.add_weight(name=name, shape=shape, initializer=initializer, autocast=False)
            setattr(self, name, weight)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = upcast(inputs, self.compute_dtype)
        if self.normalize_input:
            x = linear_ops.l2_normalize(x, -1, _NORMALIZE_EPSILON)
        hidden = matmul(x, ops.cast(self.kernel_1, x.dtype))
        hidden = ops.sigmoid(hidden + ops.cast(self.bias_1, x.dtype))
        hidden = self.dropout_layer(hidden, training=training)
        hidden = matmul(hidden, ops.cast(self.kernel_2, x.dtype))
        hidden = hidden + ops.cast(self.bias_2, x.dtype)
        tau = temperature_ops.tempnet_temperature(
            hidden,
            ops.cast(self.log_scale, x.dtype),
            ops.cast(self.last_kernel, x.dtype),
            ops.cast(self.last_bias, x.dtype),
            self.tau_min,
            self.tau_max,
        )
        return ops.cast(tau, self.compute_dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], 1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "hidden_units": self.hidden_units,
                "tau_min": self.tau_min,
                "tau_max": self.tau_max,
                "dropout": self.dropout,
                "normalize_input": self.normalize_input,
            }
        )
        return config

"""AlphaBatchNormalization: BatchNormalization that mixes its stored statistics with the test batch's.

Paper: You, Li, Zhao, "Test-time Batch Statistics Calibration for Covariate Shift", arXiv 2110.04065.
Reference (the common implementation): mariodoebler/test-time-adaptation `AlphaBatchNorm`.
"""

from typing import Any

import keras
from keras import ops

from keras_norms.arguments import check_bool, check_epsilon, check_fraction, check_int, check_mask, normalize_axis
from keras_norms.ops import batch_norm as batch_norm_ops
from keras_norms.ops.dtypes import upcast
from keras_norms.ops.statistics import mask_weights
from keras_norms.ops.types import Shape, Tensor


@keras.saving.register_keras_serializable(package="keras_norms")
class AlphaBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization with statistics `(1 - a) * source + a * test_batch`, `a = test_weight`.

        mu  = (1 - a) * moving_mean     + a * mean_batch
        var = (1 - a) * moving_variance + a * var_batch_unbiased
        y   = gamma * (x - mu) / sqrt(var + epsilon) + beta

    The batch statistics are computed in *every* call, training or not (the reference refreshes
    them only in train mode and silently reuses stale ones under `eval()`), and the stored
    (source) statistics are never updated: the layer is stateless at test time. `test_weight` is
    the weight of the **test** statistics, as the reference's `alpha` (default 0.1); papers in
    this area use both conventions. The test variance is the unbiased one, as the reference's;
    with a single value per channel (a batch of one dense vector) the biased variance (0) is used.

    It has the weights of `keras.layers.BatchNormalization` (`gamma`, `beta`, `moving_mean`,
    `moving_variance`) and takes all its arguments, so a trained BN converts with its weights
    (`keras_norms.surgery.calibrate_batch_statistics`). Masked positions are left out of the batch
    statistics. Computed in float32 (float64 for a float64 layer or input).

    Args:
        test_weight: Weight `a` of the test-batch statistics, in [0, 1]. 0 is plain inference BN,
            1 is pure test-batch normalization.
        synchronized: If True (default; `keras.layers.BatchNormalization` defaults to False), the
            batch statistics are over the global batch of a data-parallel call: an all-reduce of
            sums and counts under `tf.distribute` or an initialized `torch.distributed` process
            group (every process must then call the layer), on every backend; under
            `keras.distribution` on JAX they are global either way. See docs/distributed.md.
        **kwargs: `keras.layers.BatchNormalization` arguments (`axis`, `epsilon`, ...).

    Example:

    >>> layer = keras_norms.layers.AlphaBatchNormalization(test_weight=0.1)
    """

    def __init__(
        self,
        test_weight: float = 0.1,
        synchronized: bool = True,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        # Keras' BatchNormalization checks none of these (`int(axis)` even truncates 1.5).
        axis = check_int("axis", axis)
        momentum = check_fraction("momentum", momentum)
        epsilon = check_epsilon("epsilon", epsilon)
        if kwargs.get("renorm"):
            raise ValueError(
                "AlphaBatchNormalization does not implement batch renormalization. "
                f"Received: renorm={kwargs['renorm']!r}"
            )
        # Keras' own `synchronized` is TensorFlow-only; this layer does its own reduction.
        super().__init__(axis=axis, momentum=momentum, epsilon=epsilon, synchronized=False, **kwargs)
        self.test_weight = check_fraction("test_weight", test_weight)
        self.synchronized = check_bool("synchronized", synchronized)

    def build(self, input_shape: Shape) -> None:
        axis = normalize_axis("axis", self.axis, len(input_shape))
        if input_shape[axis] is None:
            raise ValueError(
                f"The channels axis (axis={self.axis}) of the input must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def call(self, inputs: Tensor, training: bool | None = None, mask: Tensor | None = None) -> Tensor:
        x = upcast(inputs, self.compute_dtype)
        rank = len(x.shape)
        axis = self.axis % rank
        shape = [1] * rank
        shape[axis] = x.shape[axis]
        weights = None
        if mask is not None:
            check_mask("AlphaBatchNormalization", mask, x.shape, (axis,))
            weights = mask_weights(mask, axis, x.dtype)
        mean, variance = batch_norm_ops.calibrated_moments(
            x,
            self._reduction_axes,
            ops.reshape(ops.cast(self.moving_mean, x.dtype), shape),
            ops.reshape(ops.cast(self.moving_variance, x.dtype), shape),
            self.test_weight,
            weights,
            self.synchronized,
        )
        y = (x - mean) * ops.rsqrt(variance + self.epsilon)
        if self.scale:
            y = y * ops.reshape(ops.cast(self.gamma, x.dtype), shape)
        if self.center:
            y = y + ops.reshape(ops.cast(self.beta, x.dtype), shape)
        return ops.cast(y, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["test_weight"] = self.test_weight
        return config

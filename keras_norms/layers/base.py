"""What every keras-norms normalization layer shares: arguments, affine weights, mixed precision.

Subclasses choose the statistics and the formula; this base owns `gamma`/`beta` (initializers,
regularizers, constraints, config), the float32 weights and compute of the core Keras norms
(`autocast=False`, output cast to `compute_dtype`), the `mask` pass-through and its shape check.
Argument checks, whose errors name the argument, the value and what was expected, are in
`keras_norms.arguments`.
"""

from collections.abc import Sequence
from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from keras_norms.arguments import check_bool, check_epsilon, check_mask, last_axis_size, normalize_axis
from keras_norms.ops.statistics import mask_weights
from keras_norms.ops.types import ConstraintLike, InitializerLike, RegularizerLike, Shape


def build_feature_axis(layer: keras.layers.Layer, input_shape: Shape) -> int:
    """For layers whose weights depend on the input's last axis (Dense-like layers): checks it
    and sets an input spec that holds later calls to the same size, at any rank >= 2."""
    size = last_axis_size(input_shape)
    layer.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: size})
    return size


def broadcast_shape(rank: int, axes: Sequence[int], sizes: Sequence[int]) -> list[int]:
    """The shape `[1, ..., size, ..., 1]` that puts per-channel `sizes` on `axes` of a rank-`rank` tensor."""
    shape = [1] * rank
    for axis, size in zip(axes, sizes):
        shape[axis] = size
    return shape


class NormalizationBase(keras.layers.Layer):
    """Base of the keras-norms normalization layers: affine weights, config and mixed precision.

    Subclasses implement `_normalize(inputs_float32, mask_weights, training)` for the formula
    before the affine, call `self._build_affine(...)` in `build`, and set `self._param_axes`.
    """

    def __init__(
        self,
        epsilon: float,
        center: bool = True,
        scale: bool = True,
        beta_initializer: InitializerLike = "zeros",
        gamma_initializer: InitializerLike = "ones",
        beta_regularizer: RegularizerLike = None,
        gamma_regularizer: RegularizerLike = None,
        beta_constraint: ConstraintLike = None,
        gamma_constraint: ConstraintLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.epsilon = check_epsilon("epsilon", epsilon)
        self.center = check_bool("center", center)
        self.scale = check_bool("scale", scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        # float32 weights and statistics under mixed precision, as the core Keras norms do.
        self.autocast = False
        # Created in build() when `scale` / `center`.
        self.gamma: keras.Variable | None = None
        self.beta: keras.Variable | None = None

    def _add_parameter(self, name, shape, initializer, regularizer=None, constraint=None):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
            trainable=True,
            autocast=False,
        )

    def _build_affine(self, shape):
        if self.scale:
            self.gamma = self._add_parameter(
                "gamma", shape, self.gamma_initializer, self.gamma_regularizer, self.gamma_constraint
            )
        if self.center:
            self.beta = self._add_parameter(
                "beta", shape, self.beta_initializer, self.beta_regularizer, self.beta_constraint
            )

    def _build_channel_axis(self, input_shape):
        """Resolves `self.axis` as the one channels axis of `input_shape`; returns its size."""
        self._channel_axis = normalize_axis("axis", self.axis, len(input_shape))
        self._param_axes: tuple[int, ...] = (self._channel_axis,)
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(
                f"The channels axis (axis={self.axis}) of the input must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        return channels

    def _build_feature_map(self, input_shape):
        """For per-channel layers over 1D/2D/3D feature maps: checks the rank (3 to 5), resolves
        the channels axis, sets `_spatial_axes` (all but batch and channels); returns the channels."""
        rank = len(input_shape)
        if not 3 <= rank <= 5:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank 3 to 5 (1D, 2D or 3D feature maps "
                f"with a batch axis). Received: input_shape={tuple(input_shape)}"
            )
        channels = self._build_channel_axis(input_shape)
        self._spatial_axes = tuple(a for a in range(1, rank) if a != self._channel_axis)
        return channels

    def _position_weights(self, mask, inputs, dtype):
        """A position mask (the input's shape without the channels axis) as 0/1 weights, or None."""
        if mask is None:
            return None
        check_mask(type(self).__name__, mask, inputs.shape, (self._channel_axis,))
        return mask_weights(mask, self._channel_axis, dtype)

    def _parameter(self, weight, rank, dtype):
        """A per-channel weight in the computation's `dtype`, shaped to broadcast against a
        rank-`rank` input (weights are float16 under a pure float16 policy, statistics float32)."""
        shape = broadcast_shape(rank, self._parameter_axes(rank), weight.shape)
        return ops.cast(ops.reshape(ops.convert_to_tensor(weight), shape), dtype)

    def _parameter_axes(self, rank):
        """The axes of a rank-`rank` input that the per-channel weights lie along."""
        return self._param_axes

    def _effective_gamma(self, rank, dtype):
        return self._parameter(self.gamma, rank, dtype)

    def _affine(self, y):
        rank = len(y.shape)
        if self.scale:
            y = y * self._effective_gamma(rank, y.dtype)
        if self.center:
            y = y + self._parameter(self.beta, rank, y.dtype)
        return y

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint),
            }
        )
        return config

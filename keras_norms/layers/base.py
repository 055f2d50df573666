"""What every keras-norms normalization layer shares: arguments, affine weights, mixed precision.

Subclasses choose the statistics and the formula; this base owns `gamma`/`beta` (initializers,
regularizers, constraints, config), the float32 weights and compute of the core Keras norms
(`autocast=False`, output cast to `compute_dtype`), the `mask` pass-through and the argument
checks, whose errors name the argument, the value and what was expected.
"""

import numbers

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_norms.ops.statistics import mask_weights


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_number(name, value, minimum=None, maximum=None):
    """Returns `value` as a float, or raises naming the argument and the closed range allowed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        raise ValueError(f"`{name}` must be in [{low}, {high}]. Received: {name}={value!r}")
    return float(value)


def check_int(name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")
    return int(value)


def normalize_axis(name, axis, rank):
    """Returns a non-batch `axis` as an index in [1, rank), or raises naming the value and the rank."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`{name}` must be an int. Received: {name}={axis!r}")
    if not -rank < axis < rank or axis % rank == 0:
        raise ValueError(
            f"`{name}` must be a non-batch axis of the rank-{rank} input: an int in "
            f"[1, {rank - 1}] or [{1 - rank}, -1]. Received: {name}={axis}"
        )
    return axis % rank


def last_axis_size(input_shape):
    """The size of the input's last axis, which a layer's weights depend on; raises if unknown."""
    size = input_shape[-1]
    if size is None:
        raise ValueError(
            f"The last axis of the input must be known. Received: input_shape={tuple(input_shape)}"
        )
    return size


def broadcast_shape(rank, axes, sizes):
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
        epsilon,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.epsilon = check_number("epsilon", epsilon, minimum=0.0)
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
        self.gamma = None
        self.beta = None

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
        self._param_axes = (self._channel_axis,)
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
        rank = len(inputs.shape)
        if len(mask.shape) != rank - 1:
            raise ValueError(
                f"{type(self).__name__} expects a mask of the input's shape without the "
                f"channels axis (rank {rank - 1}). Received: mask.shape={mask.shape}, "
                f"inputs.shape={inputs.shape}"
            )
        return mask_weights(mask, self._channel_axis, dtype)

    def _parameter(self, weight, rank):
        """A per-channel weight as a tensor that broadcasts against a rank-`rank` input."""
        shape = broadcast_shape(rank, self._param_axes, weight.shape)
        return ops.reshape(ops.convert_to_tensor(weight), shape)

    def _effective_gamma(self, rank):
        return self._parameter(self.gamma, rank)

    def _affine(self, y):
        rank = len(y.shape)
        if self.scale:
            y = y * ops.cast(self._effective_gamma(rank), y.dtype)
        if self.center:
            y = y + ops.cast(self._parameter(self.beta, rank), y.dtype)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
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

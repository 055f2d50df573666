"""Weight normalization: a wrapper that learns each output unit's kernel as a length times a direction.

Salimans, Kingma, "Weight Normalization: A Simple Reparameterization to Accelerate Training of Deep
Neural Networks", NeurIPS 2016, arXiv 1602.07868. tensorflow-addons' `tfa.layers.WeightNormalization`
for Keras 3 on every backend.
"""

from typing import Any

import keras
from keras import ops

from keras_norms.arguments import check_bool
from keras_norms.keras_internals import attributes_holding, replaced_attributes, variables_in_own_dtype
from keras_norms.ops.dtypes import maximum
from keras_norms.ops.statistics import masked_moments
from keras_norms.ops.types import Shape, Tensor

# The floor of `||v||**2`, as `tf.nn.l2_normalize`'s: an all-zero column gives a zero kernel column
# (and finite gradients) instead of 0/0, and any other column is normalized exactly.
NORM_FLOOR = 1e-12
# Added to the first batch's variance in the data-dependent initialization (tensorflow-addons').
DATA_INIT_EPSILON = 1e-10

_CONV_TRANSPOSE = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)


@keras.saving.register_keras_serializable(package="keras_norms")
class WeightNormalization(keras.layers.Wrapper):
    """Wraps a layer with a kernel so that it computes with `w = g * v / ||v||`.

    `v` is the wrapped layer's own kernel variable and `g` a new trainable vector with one entry per
    output unit, initialized to `||v||`, so that the wrapped layer first computes exactly what it did.
    The norm is over every kernel axis but the output one: Dense `(in, out)` and ConvND
    `(*kernel_size, in, out)` kernels are normalized over all axes but the last, ConvNDTranspose
    kernels `(*kernel_size, out, in)` over all but the second to last, any other layer's over all but
    the last. Gradients reach `g` and `v` (the wrapped layer runs its own call with `w` in place of
    its kernel); its bias and activation are used as they are. The norm is computed in the variables'
    dtype (float32 under mixed precision); the output is in the compute dtype.

    Data-dependent initialization (`data_init=True`, the paper's section 3): the first call with
    `training=True` computes the pre-activations `t = x . v/||v||` (no bias, no activation), their
    mean `mu` and standard deviation `sigma` per output unit over the batch and positions (the global
    batch in data-parallel training), and sets the scale to `1 / sigma` and the bias to `-mu / sigma`,
    so that the first batch's pre-activations come out standardized. It happens once: the
    non-trainable flag `initialized` records it (and is saved, so a reloaded model does not
    initialize again). The new values are kept as non-trainable offsets, `g_offset = 1/sigma - g`
    and `bias_offset = -mu/sigma - bias`, and the layer computes with `g + g_offset` and
    `bias + bias_offset`: a jit-compiled JAX train step carries the updates
    of non-trainable variables made in a call but not those of trainable ones, and an offset leaves
    the gradients with respect to `g` and the bias what they would be had `g` and the bias been
    assigned (so training is the same; only a weight decay or regularizer of `g` or the bias sees
    the unshifted variable). `remove()` folds the offsets in.

    Differences from tensorflow-addons: tfa's data-dependent initialization measures the
    pre-activations of `x . v` (not `x . v/||v||`) plus the initial bias, so its first batch comes out
    standardized only when `||v|| = 1`; here it comes out standardized, as in the paper. tfa
    initializes on the first call, training or not; here on the first training call. tfa normalizes
    a ConvNDTranspose kernel over all axes but the last, its input axis; here over all but its output
    axis. RNN layers (tfa normalized their recurrent kernel) are not supported.

    Args:
        layer: A Keras layer with a `kernel` variable: Dense, ConvND, ConvNDTranspose, EinsumDense,
            ... (built or not).
        data_init: Data-dependent initialization on the first training batch (default True, as in
            tensorflow-addons). With `False`, `g = ||v||` stays the initial value.
        **kwargs: Base layer keyword arguments. `dtype` defaults to the wrapped layer's dtype policy.

    Call arguments:
        inputs: The wrapped layer's input.
        training: Passed on to the wrapped layer; the first call with `training=True` does the
            data-dependent initialization.

    Example:

    >>> x = keras.random.normal((8, 16))
    >>> dense = keras_norms.parametrization.WeightNormalization(keras.layers.Dense(4))
    >>> y = dense(x, training=True)  # the first training batch: data-dependent initialization
    >>> [tuple(w.shape) for w in dense.trainable_weights]
    [(4,), (16, 4), (4,)]
    >>> plain_dense = dense.remove()  # a Dense with kernel g * v / ||v||
    """

    def __init__(self, layer: keras.layers.Layer, data_init: bool = True, **kwargs: Any) -> None:
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                f"`layer` must be a Keras layer with a `kernel` (Dense, ConvND, ...). Received: layer={layer!r}"
            )
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(layer, **kwargs)
        self.data_init = check_bool("data_init", data_init)
        if layer.built:
            self._check_kernel()
        self.supports_masking = layer.supports_masking
        # Inputs reach the data-dependent statistics as given; the wrapped layer casts them for its call.
        self.autocast = False
        # Created in build(); the offsets and the flag only with `data_init`, `bias_offset` only with a bias.
        self.g: keras.Variable | None = None
        self.g_offset: keras.Variable | None = None
        self.bias_offset: keras.Variable | None = None
        self.initialized: keras.Variable | None = None

    def _check_kernel(self) -> keras.Variable:
        kernel = getattr(self.layer, "kernel", None)
        if not isinstance(kernel, keras.Variable) or not attributes_holding(self.layer, kernel):
            raise ValueError(
                "WeightNormalization wraps a layer that keeps its weights in a `kernel` variable (Dense, "
                f"ConvND, ConvNDTranspose, EinsumDense, ...). Received: layer={self.layer.name!r} of type "
                f"{type(self.layer).__name__}, whose `kernel` is {type(kernel).__name__}"
            )
        return kernel

    @property
    def v(self) -> keras.Variable:
        """The direction variable: the wrapped layer's kernel."""
        return getattr(self.layer, self._kernel_attributes[0])

    def build(self, input_shape: Shape) -> None:
        super().build(input_shape)
        kernel = self._check_kernel()
        rank = len(kernel.shape)
        output_axis = rank - 2 if isinstance(self.layer, _CONV_TRANSPOSE) else rank - 1
        units = kernel.shape[output_axis]
        self._kernel_attributes = attributes_holding(self.layer, kernel)
        self._norm_axes = tuple(axis for axis in range(rank) if axis != output_axis)
        self._scale_shape = tuple(units if axis == output_axis else 1 for axis in range(rank))
        self.g = self.add_weight(
            name="g",
            shape=(units,),
            initializer=lambda shape, dtype: ops.cast(self._norm(kernel), dtype),
            dtype=kernel.dtype,
        )
        bias = getattr(self.layer, "bias", None)
        self._bias_attributes = attributes_holding(self.layer, bias) if isinstance(bias, keras.Variable) else []
        if not self.data_init:
            return
        output_shape = self.layer.compute_output_shape(input_shape)
        channels_first = getattr(self.layer, "data_format", None) == "channels_first"
        channel_axis = 1 if channels_first else len(output_shape) - 1
        if output_shape[channel_axis] != units:
            raise ValueError(
                f"Data-dependent initialization needs one output channel per kernel unit; layer "
                f"{self.layer.name!r} has {units} units and outputs {tuple(output_shape)}. Use data_init=False."
            )
        self._statistics_axes = tuple(axis for axis in range(len(output_shape)) if axis != channel_axis)
        # Replicas write the same (synchronized) values; the flag is written by the first.
        self.g_offset = self.add_weight(
            name="g_offset",
            shape=(units,),
            initializer="zeros",
            dtype=kernel.dtype,
            trainable=False,
            aggregation="mean",
        )
        if self._bias_attributes:
            bias = self.layer.bias
            if tuple(bias.shape)[-1:] != (units,):
                raise ValueError(
                    f"Data-dependent initialization sets one bias per kernel unit; layer {self.layer.name!r} "
                    f"has {units} units and a bias of shape {tuple(bias.shape)}. Use data_init=False."
                )
            self.bias_offset = self.add_weight(
                name="bias_offset",
                shape=bias.shape,
                initializer="zeros",
                dtype=bias.dtype,
                trainable=False,
                aggregation="mean",
            )
        self.initialized = self.add_weight(
            name="initialized",
            shape=(),
            initializer="zeros",
            dtype="bool",
            trainable=False,
            aggregation="only_first_replica",
        )

    def _norm(self, v: Tensor) -> Tensor:
        """`||v||` per output unit, shape `(units,)`."""
        return ops.sqrt(self._floored_squares(v, keepdims=False))

    def _direction(self, v: Tensor) -> Tensor:
        """`v / ||v||`, in the kernel's shape."""
        return v * ops.rsqrt(self._floored_squares(v, keepdims=True))

    def _floored_squares(self, v: Tensor, keepdims: bool) -> Tensor:
        return maximum(ops.sum(ops.square(v), axis=self._norm_axes, keepdims=keepdims), NORM_FLOOR)

    def _pre_activation(self, inputs: Tensor, direction: Tensor) -> Tensor:
        """`x . v/||v||`: the wrapped layer's call with that kernel, no bias and no activation."""
        dtype = direction.dtype
        replaced: dict[str, object] = dict.fromkeys(self._kernel_attributes, direction)
        if self._bias_attributes:
            replaced.update(dict.fromkeys(self._bias_attributes, ops.zeros(self.layer.bias.shape, dtype)))
        if "activation" in vars(self.layer):
            replaced["activation"] = keras.activations.linear
        with replaced_attributes(self.layer, replaced):
            # `call`, not `__call__`: the statistics only, without activity regularization or casts.
            return self.layer.call(ops.cast(inputs, dtype))

    def _offsets(self, inputs: Tensor, direction: Tensor, training: bool | None) -> list[Tensor]:
        """`[g_offset(, bias_offset)]`, set from `inputs` on the first training call."""
        assert self.g_offset is not None and self.initialized is not None  # built with data_init
        variables = [self.g_offset] + ([] if self.bias_offset is None else [self.bias_offset])
        # Read as tensors (a tf.cond branch cannot return a Keras variable).
        current = [ops.cast(variable, variable.dtype) for variable in variables]
        if not training:
            return current

        def initial_offsets() -> list[Tensor]:
            pre_activation = self._pre_activation(inputs, direction)
            # Over the global batch of a data-parallel step, so that every replica sets the same values.
            mean, variance, _ = masked_moments(pre_activation, self._statistics_axes, synchronized=True)
            mean, variance = ops.reshape(mean, (-1,)), ops.reshape(variance, (-1,))
            inverse_std = ops.rsqrt(variance + DATA_INIT_EPSILON)
            offsets = [inverse_std - self.g]
            if self.bias_offset is not None:
                bias = self.layer.bias
                offsets.append(ops.broadcast_to(-mean * inverse_std, bias.shape) - bias)
            return offsets

        # A backend conditional, not a Python one: the flag is a tensor under jit.
        offsets = ops.cond(ops.cast(self.initialized, "bool"), lambda: current, initial_offsets)
        for variable, value in zip(variables, offsets):
            variable.assign(value)
        self.initialized.assign(True)
        return list(offsets)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        with variables_in_own_dtype():
            kernel, bias = self._effective_weights(inputs, training)
        compute_dtype = self.layer.compute_dtype
        replaced: dict[str, object] = dict.fromkeys(self._kernel_attributes, ops.cast(kernel, compute_dtype))
        if bias is not None:
            replaced.update(dict.fromkeys(self._bias_attributes, ops.cast(bias, compute_dtype)))
        with replaced_attributes(self.layer, replaced):
            outputs = self.layer(inputs, training=training)
        return ops.cast(outputs, self.compute_dtype)

    def _effective_weights(self, inputs: Tensor, training: bool | None) -> tuple[Tensor, Tensor | None]:
        """The kernel `(g + g_offset) * v/||v||` and, after a data-dependent initialization, the bias."""
        direction = self._direction(self.v)
        scale = self.g
        bias = None
        if self.data_init:
            offsets = self._offsets(inputs, direction, training)
            scale = scale + offsets[0]
            if self._bias_attributes:
                bias = self.layer.bias + offsets[1]
        return ops.reshape(scale, self._scale_shape) * direction, bias

    def remove(self) -> keras.layers.Layer:
        """Returns the wrapped layer with kernel `g * v / ||v||` (and bias `bias + bias_offset`).

        The kernel and bias variables are assigned in place: they are the wrapper's `v` and bias, so
        the wrapper is not to be called afterwards (as in tensorflow-addons).
        """
        if not self.built:
            return self.layer
        scale = self.g if self.g_offset is None else self.g + self.g_offset
        direction = self._direction(self.v)
        self.v.assign(ops.reshape(scale, self._scale_shape) * direction)
        if self.bias_offset is not None:
            self.layer.bias.assign(self.layer.bias + self.bias_offset)
        return self.layer

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return self.layer.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["data_init"] = self.data_init
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> "WeightNormalization":
        """Rebuilds the wrapper and its wrapped layer from `get_config()`."""
        # keras.layers.Wrapper.from_config pops "layer" from the dict it is given.
        return super().from_config(dict(config), custom_objects=custom_objects)

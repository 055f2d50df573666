"""Filter Response Normalization (FRN) with its Thresholded Linear Unit (TLU), and TLU alone.

Singh, Krishnan, "Filter Response Normalization Layer: Eliminating Batch Dependence in the
Training of Deep Neural Networks", CVPR 2020, arXiv 1911.09737. The two layers tensorflow-addons
had (`tfa.layers.FilterResponseNormalization`, `tfa.layers.TLU`), for Keras 3 on every backend.
"""

from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from keras_norms import ops as norm_ops
from keras_norms.arguments import check_bool, check_int, normalize_axis
from keras_norms.layers.base import NormalizationBase, broadcast_shape
from keras_norms.ops.types import ConstraintLike, InitializerLike, RegularizerLike, Shape, Tensor

# tensorflow-addons' initial value of the learned epsilon.
LEARNED_EPSILON_INITIAL = 1e-4


@keras.saving.register_keras_serializable(package="keras_norms")
class FilterResponseNormalization(NormalizationBase):
    """FRN followed by a TLU: `max(gamma * x / sqrt(nu2 + eps) + beta, tau)`.

    `nu2` is the per-sample, per-channel mean of `x**2` over the positions (no batch statistics, no
    mean subtraction); `tau` is a learned per-channel threshold. With `learned_epsilon`, `eps` is
    `|epsilon| + |eps_l|` with a learned scalar `eps_l` starting at 1e-4, which the paper
    recommends for 1x1 feature maps, where `nu2` is the square of the single value.

    Differences from other implementations: `apply_act=True` (default) includes the TLU, as the
    paper pairs them and timm's `FilterResponseNormTlu2d` does; `apply_act=False` is
    tensorflow-addons' `FilterResponseNormalization`, which leaves the TLU to a separate layer
    (`keras_norms.layers.TLU`). Unlike tensorflow-addons, ranks 3 to 5, channels-first and masks are
    supported, and `gamma`, `beta`, `tau` have shape `(channels,)`, not `(1, 1, 1, channels)`.
    `epsilon` defaults to 1e-6, as in the paper and both references.

    Args:
        axis: The channels axis: -1 (channels-last, default) or 1 (channels-first).
        epsilon: Float inside the square root, > 0 (1e-6).
        learned_epsilon: Add a learned `|eps_l|` to `epsilon`.
        apply_act: Apply the TLU `max(., tau)` after the affine (default True).
        center, scale: Use `beta`, `gamma`.
        beta_initializer, gamma_initializer, tau_initializer: zeros, ones, zeros.
        beta_regularizer, gamma_regularizer, tau_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint, tau_constraint: Optional constraints.
        learned_epsilon_constraint: Optional constraint of `eps_l`.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: A tensor of rank 3 to 5.
        training: Unused: FRN is the same in training and inference.
        mask: Optional boolean tensor of the input's shape without the channels axis; masked
            positions are left out of `nu2`. The mask is passed on.

    Example:

    >>> x = keras.random.normal((8, 16, 16, 32))
    >>> y = keras_norms.layers.FilterResponseNormalization()(x)
    >>> y.shape
    (8, 16, 16, 32)
    """

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-6,
        learned_epsilon: bool = False,
        apply_act: bool = True,
        center: bool = True,
        scale: bool = True,
        beta_initializer: InitializerLike = "zeros",
        gamma_initializer: InitializerLike = "ones",
        tau_initializer: InitializerLike = "zeros",
        beta_regularizer: RegularizerLike = None,
        gamma_regularizer: RegularizerLike = None,
        tau_regularizer: RegularizerLike = None,
        beta_constraint: ConstraintLike = None,
        gamma_constraint: ConstraintLike = None,
        tau_constraint: ConstraintLike = None,
        learned_epsilon_constraint: ConstraintLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            **kwargs,
        )
        self.axis = check_int("axis", axis)
        self.learned_epsilon = check_bool("learned_epsilon", learned_epsilon)
        self.apply_act = check_bool("apply_act", apply_act)
        self.tau_initializer = initializers.get(tau_initializer)
        self.tau_regularizer = regularizers.get(tau_regularizer)
        self.tau_constraint = constraints.get(tau_constraint)
        self.learned_epsilon_constraint = constraints.get(learned_epsilon_constraint)
        # Created in build() when `apply_act` / `learned_epsilon`.
        self.tau: keras.Variable | None = None
        self.epsilon_learned: keras.Variable | None = None

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        channels = self._build_feature_map(input_shape)
        self._build_affine((channels,))
        if self.apply_act:
            self.tau = self._add_parameter(
                "tau", (channels,), self.tau_initializer, self.tau_regularizer, self.tau_constraint
            )
        if self.learned_epsilon:
            self.epsilon_learned = self._add_parameter(
                "learned_epsilon",
                (),
                initializers.Constant(LEARNED_EPSILON_INITIAL),
                constraint=self.learned_epsilon_constraint,
            )
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self._channel_axis: channels})

    def call(self, inputs: Tensor, training: bool | None = None, mask: Tensor | None = None) -> Tensor:
        x = norm_ops.upcast(inputs, self.compute_dtype)
        rank = len(x.shape)
        mask = self._position_weights(mask, inputs, x.dtype)
        epsilon = self.epsilon
        if self.learned_epsilon:
            epsilon = epsilon + ops.abs(ops.cast(self.epsilon_learned, x.dtype))
        y = self._affine(norm_ops.frn(x, epsilon, spatial_axes=self._spatial_axes, weights=mask))
        if self.apply_act:
            y = norm_ops.tlu(y, self._parameter(self.tau, rank, x.dtype))
        return ops.cast(y, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "learned_epsilon": self.learned_epsilon,
                "apply_act": self.apply_act,
                "tau_initializer": initializers.serialize(self.tau_initializer),
                "tau_regularizer": regularizers.serialize(self.tau_regularizer),
                "tau_constraint": constraints.serialize(self.tau_constraint),
                "learned_epsilon_constraint": constraints.serialize(self.learned_epsilon_constraint),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_norms")
class TLU(keras.layers.Layer):
    """Thresholded linear unit: `max(x, tau)`, or with `affine=True` `max(x, alpha * x + tau)`.

    A ReLU with a learned per-channel threshold `tau` (ReLU is `tau = 0`), the activation FRN is
    paired with (arXiv 1911.09737). `affine=True` adds a learned per-channel slope `alpha`, as
    tensorflow-addons' `TLU(affine=True)`. Parameters are float32 under mixed precision.

    Args:
        axis: The channels axis (-1, default).
        affine: Also learn `alpha` (default False).
        tau_initializer, alpha_initializer: zeros, zeros.
        tau_regularizer, alpha_regularizer, tau_constraint, alpha_constraint: Optional.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> y = keras_norms.layers.TLU()(keras.random.normal((4, 8, 8, 16)))
    """

    def __init__(
        self,
        axis: int = -1,
        affine: bool = False,
        tau_initializer: InitializerLike = "zeros",
        alpha_initializer: InitializerLike = "zeros",
        tau_regularizer: RegularizerLike = None,
        alpha_regularizer: RegularizerLike = None,
        tau_constraint: ConstraintLike = None,
        alpha_constraint: ConstraintLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.axis = check_int("axis", axis)
        self.affine = check_bool("affine", affine)
        self.tau_initializer = initializers.get(tau_initializer)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.tau_regularizer = regularizers.get(tau_regularizer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.tau_constraint = constraints.get(tau_constraint)
        self.alpha_constraint = constraints.get(alpha_constraint)
        self.supports_masking = True
        self.autocast = False
        self.alpha: keras.Variable | None = None  # created in build() when `affine`

    def build(self, input_shape: Shape) -> None:
        self._channel_axis = normalize_axis("axis", self.axis, len(input_shape))
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(
                f"The channels axis (axis={self.axis}) of the input must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.tau = self.add_weight(
            name="tau",
            shape=(channels,),
            initializer=self.tau_initializer,
            regularizer=self.tau_regularizer,
            constraint=self.tau_constraint,
            autocast=False,
        )
        if self.affine:
            self.alpha = self.add_weight(
                name="alpha",
                shape=(channels,),
                initializer=self.alpha_initializer,
                regularizer=self.alpha_regularizer,
                constraint=self.alpha_constraint,
                autocast=False,
            )
        self.input_spec = keras.layers.InputSpec(ndim=len(input_shape), axes={self._channel_axis: channels})

    def call(self, inputs: Tensor) -> Tensor:
        x = norm_ops.upcast(inputs, self.compute_dtype)
        shape = broadcast_shape(len(x.shape), (self._channel_axis,), (x.shape[self._channel_axis],))
        tau = ops.reshape(ops.cast(self.tau, x.dtype), shape)
        alpha = None if self.alpha is None else ops.reshape(ops.cast(self.alpha, x.dtype), shape)
        return ops.cast(norm_ops.tlu(x, tau, alpha), self.compute_dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "affine": self.affine,
                "tau_initializer": initializers.serialize(self.tau_initializer),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "tau_regularizer": regularizers.serialize(self.tau_regularizer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "tau_constraint": constraints.serialize(self.tau_constraint),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
            }
        )
        return config

"""EvoNorm normalization-activation layers: B0, B1, B2 (batch) and S0, S1, S2 (sample), plus timm's S*a.

Paper: Liu, Brock, Simonyan, Le, "Evolving Normalization-Activation Layers", NeurIPS 2020,
arXiv 2004.02967. Authors' code: `tensorflow/tpu` `models/official/resnet/resnet_model.py`
(B0, S0). timm's `layers/evo_norm.py` adds B1, B2, S1, S2 and the S*a variants.

Everything (weights, state, masks, config) is shared by two bases, `_EvoNormBatch` and
`_EvoNormSample`; a variant is its class attributes, which those bases read: `formula` (the op of
`keras_norms.ops.evonorm` a B variant calls), `centered` (an S variant's group statistic: the
variance, or the mean square), `uses_v` (the learnable `v`), and `normalizes_without_act` (timm's
S*a variants, which also give `epsilon` another default).
"""

from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from keras_norms import ops as norm_ops
from keras_norms.arguments import check_bool, check_fraction, check_int
from keras_norms.layers.base import NormalizationBase
from keras_norms.ops.statistics import unbiased_variance
from keras_norms.ops.types import ConstraintLike, InitializerLike, RegularizerLike, Shape, Tensor


class _EvoNorm(NormalizationBase):
    """Shared weights, masks and config of every EvoNorm variant."""

    # Whether the variant has the learnable per-channel `v` (B0, S0, S0a).
    uses_v = False
    # Whether `apply_act=False` still divides by the group statistic (timm's S0a, S1a, S2a).
    normalizes_without_act = False

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-5,
        apply_act: bool = True,
        center: bool = True,
        scale: bool = True,
        beta_initializer: InitializerLike = "zeros",
        gamma_initializer: InitializerLike = "ones",
        v_initializer: InitializerLike = None,
        beta_regularizer: RegularizerLike = None,
        gamma_regularizer: RegularizerLike = None,
        v_regularizer: RegularizerLike = None,
        beta_constraint: ConstraintLike = None,
        gamma_constraint: ConstraintLike = None,
        v_constraint: ConstraintLike = None,
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
        self.apply_act = check_bool("apply_act", apply_act)
        v_arguments = {"v_initializer": v_initializer, "v_regularizer": v_regularizer, "v_constraint": v_constraint}
        if not self.uses_v:
            given = {name: value for name, value in v_arguments.items() if value is not None}
            if given:
                raise TypeError(f"{type(self).__name__} has no `v` weight. Received: {given}")
        self.v_initializer = initializers.get(v_initializer or "ones")
        self.v_regularizer = regularizers.get(v_regularizer)
        self.v_constraint = constraints.get(v_constraint)
        self.v: keras.Variable | None = None  # created in build() by the variants with `v`

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        channels = self._build_feature_map(input_shape)
        self._build_affine((channels,))
        if self.apply_act and self.uses_v:
            self.v = self._add_parameter("v", (channels,), self.v_initializer, self.v_regularizer, self.v_constraint)
        self._build_statistics(input_shape, channels)
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self._channel_axis: channels})

    def _build_statistics(self, input_shape, channels):
        pass

    def call(self, inputs: Tensor, training: bool | None = None, mask: Tensor | None = None) -> Tensor:
        x = norm_ops.upcast(inputs, self.compute_dtype)
        mask = self._position_weights(mask, inputs, x.dtype)
        if self.apply_act or self.normalizes_without_act:
            x = self._normalize(x, mask, training)
        return ops.cast(self._affine(x), self.compute_dtype)

    def _v(self, rank, dtype):
        return self._parameter(self.v, rank, dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"axis": self.axis, "apply_act": self.apply_act})
        if self.uses_v:
            config.update(
                {
                    "v_initializer": initializers.serialize(self.v_initializer),
                    "v_regularizer": regularizers.serialize(self.v_regularizer),
                    "v_constraint": constraints.serialize(self.v_constraint),
                }
            )
        return config


class _EvoNormBatch(_EvoNorm):
    """EvoNorm B variants: `x / max(sqrt(s2_b + eps), right(x))`, with a moving batch variance."""

    # The op that normalizes and activates: `keras_norms.ops.evonorm_b0`, `_b1` or `_b2`.
    formula = staticmethod(norm_ops.evonorm_b0)

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-5,
        momentum: float = 0.9,
        apply_act: bool = True,
        bessel_correction: bool = False,
        moving_variance_initializer: InitializerLike = "ones",
        synchronized: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(axis=axis, epsilon=epsilon, apply_act=apply_act, **kwargs)
        self.momentum = check_fraction("momentum", momentum)
        self.bessel_correction = check_bool("bessel_correction", bessel_correction)
        self.synchronized = check_bool("synchronized", synchronized)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.moving_variance: keras.Variable | None = None  # created in build() when `apply_act`

    def _build_statistics(self, input_shape, channels):
        if self.apply_act:
            self.moving_variance = self.add_weight(
                name="moving_variance",
                shape=(channels,),
                initializer=self.moving_variance_initializer,
                trainable=False,
                autocast=False,
                aggregation="mean",  # replicas write the same (synchronized) update
            )

    def _normalize(self, x, mask, training):
        rank = len(x.shape)
        training = bool(training and self.trainable)
        moving = None if training else self._parameter(self.moving_variance, rank, x.dtype)
        v = (self._v(rank, x.dtype),) if self.uses_v else ()
        y, batch_variance, count = self.formula(
            x,
            *v,
            spatial_axes=self._spatial_axes,
            epsilon=self.epsilon,
            moving_variance=moving,
            weights=mask,
            synchronized=self.synchronized,
        )
        if training:
            self._update_moving_variance(batch_variance, count)
        return y

    def _update_moving_variance(self, batch_variance, count):
        variance = ops.reshape(ops.stop_gradient(batch_variance), (-1,))
        if self.bessel_correction:
            variance = unbiased_variance(variance, ops.reshape(ops.stop_gradient(count), (-1,)))
        # Only the normalizing path (`apply_act=True`) updates it, and build() created it then.
        assert self.moving_variance is not None
        moving = ops.convert_to_tensor(self.moving_variance)
        variance = ops.cast(variance, moving.dtype)
        self.moving_variance.assign(self.momentum * moving + (1.0 - self.momentum) * variance)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "bessel_correction": self.bessel_correction,
                "synchronized": self.synchronized,
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_norms")
class EvoNormB0(_EvoNormBatch):
    """EvoNorm-B0: batch-dependent normalization-activation.

    `y = x / max(sqrt(s2_b + eps), v * x + sqrt(s2_i + eps)) * gamma + beta`

    `s2_b` is the per-channel variance over batch and positions in training (the moving variance
    at inference), `s2_i` the per-sample, per-channel variance over positions (current input, in
    training and inference). Paper: "Evolving Normalization-Activation Layers", arXiv 2004.02967.

    Differences from other implementations: `epsilon` defaults to 1e-5 as in the authors' code
    (timm's B0 uses 1e-3); the moving variance is biased by default (`bessel_correction=True`
    reproduces timm/torch); `momentum` follows Keras (0.9 == timm's 0.1).

    Args:
        axis: Integer, the channels axis: -1 for channels-last (default), 1 for channels-first.
            Inputs have rank 3 to 5 (1D, 2D and 3D feature maps).
        epsilon: Small float added inside every square root.
        apply_act: If False, skip the normalization-activation and return `x * gamma + beta`,
            as in the paper and timm (the S*a variants still normalize, see their docstring).
        center: If True, add the offset `beta`.
        scale: If True, multiply by `gamma`.
        beta_initializer, gamma_initializer, v_initializer: Initializers of `beta` (zeros),
            `gamma` (ones) and `v` (ones).
        beta_regularizer, gamma_regularizer, v_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint, v_constraint: Optional constraints.
            The `v_*` arguments exist only for B0, S0 and S0a, the variants with `v`; the
            others raise TypeError if given one.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of rank 3 to 5.
        training: Python boolean. Batch variants use the batch variance and update the moving
            variance when True (and the layer is trainable), the moving variance otherwise.
        mask: Optional boolean tensor of the input's shape without the channels axis, True for
            valid positions. Masked positions are left out of every statistic; the mask is passed
            on to the next layer.

    Batch variant arguments:
        momentum: Keras convention: `moving = momentum * moving + (1 - momentum) * batch`
            (torch's and timm's 0.1 is 0.9 here). Default 0.9, as in the authors' code.
        bessel_correction: If True, the moving variance is updated with the unbiased batch
            variance `s2_b * n / (n - 1)`, as timm and torch do (`n` counts the valid positions;
            the factor is 1 when `n == 1`). The authors' code (default False) uses the biased one.
        moving_variance_initializer: Initializer of the moving variance (ones).
        synchronized: If True (default), the batch variance is over the global batch of a
            data-parallel step: an all-reduce of sums and counts under `tf.distribute` or an
            initialized `torch.distributed` process group; under `keras.distribution` on JAX it
            is global either way. False: each TensorFlow / PyTorch replica uses its own shard.
            See docs/distributed.md.

    Example:

    >>> x = keras.random.normal((8, 16, 16, 32))
    >>> y = keras_norms.layers.EvoNormB0()(x, training=True)
    >>> y.shape
    (8, 16, 16, 32)
    """

    formula = staticmethod(norm_ops.evonorm_b0)
    uses_v = True


@keras.saving.register_keras_serializable(package="keras_norms")
class EvoNormB1(_EvoNormBatch):
    """EvoNorm-B1: `y = x / max(sqrt(s2_b + eps), (x + 1) * sqrt(m2_i + eps)) * gamma + beta`.

    `m2_i` is the per-sample, per-channel mean square over positions; `s2_b` as in `EvoNormB0`.
    There is no `v`. The formula follows timm (`EvoNorm2dB1`); paper arXiv 2004.02967.

    Args:
        axis: Integer, the channels axis: -1 for channels-last (default), 1 for channels-first.
            Inputs have rank 3 to 5 (1D, 2D and 3D feature maps).
        epsilon: Small float added inside every square root.
        apply_act: If False, skip the normalization-activation and return `x * gamma + beta`,
            as in the paper and timm (the S*a variants still normalize, see their docstring).
        center: If True, add the offset `beta`.
        scale: If True, multiply by `gamma`.
        beta_initializer, gamma_initializer, v_initializer: Initializers of `beta` (zeros),
            `gamma` (ones) and `v` (ones).
        beta_regularizer, gamma_regularizer, v_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint, v_constraint: Optional constraints.
            The `v_*` arguments exist only for B0, S0 and S0a, the variants with `v`; the
            others raise TypeError if given one.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of rank 3 to 5.
        training: Python boolean. Batch variants use the batch variance and update the moving
            variance when True (and the layer is trainable), the moving variance otherwise.
        mask: Optional boolean tensor of the input's shape without the channels axis, True for
            valid positions. Masked positions are left out of every statistic; the mask is passed
            on to the next layer.

    Batch variant arguments:
        momentum: Keras convention: `moving = momentum * moving + (1 - momentum) * batch`
            (torch's and timm's 0.1 is 0.9 here). Default 0.9, as in the authors' code.
        bessel_correction: If True, the moving variance is updated with the unbiased batch
            variance `s2_b * n / (n - 1)`, as timm and torch do (`n` counts the valid positions;
            the factor is 1 when `n == 1`). The authors' code (default False) uses the biased one.
        moving_variance_initializer: Initializer of the moving variance (ones).
        synchronized: If True (default), the batch variance is over the global batch of a
            data-parallel step: an all-reduce of sums and counts under `tf.distribute` or an
            initialized `torch.distributed` process group; under `keras.distribution` on JAX it
            is global either way. False: each TensorFlow / PyTorch replica uses its own shard.
            See docs/distributed.md.

    Example:

    >>> y = keras_norms.layers.EvoNormB1()(keras.random.normal((8, 16, 16, 32)), training=True)
    """

    formula = staticmethod(norm_ops.evonorm_b1)


@keras.saving.register_keras_serializable(package="keras_norms")
class EvoNormB2(_EvoNormBatch):
    """EvoNorm-B2: `y = x / max(sqrt(s2_b + eps), sqrt(m2_i + eps) - x) * gamma + beta`.

    `m2_i` is the per-sample, per-channel mean square over positions; `s2_b` as in `EvoNormB0`.
    There is no `v`. The formula follows timm (`EvoNorm2dB2`); paper arXiv 2004.02967.

    Args:
        axis: Integer, the channels axis: -1 for channels-last (default), 1 for channels-first.
            Inputs have rank 3 to 5 (1D, 2D and 3D feature maps).
        epsilon: Small float added inside every square root.
        apply_act: If False, skip the normalization-activation and return `x * gamma + beta`,
            as in the paper and timm (the S*a variants still normalize, see their docstring).
        center: If True, add the offset `beta`.
        scale: If True, multiply by `gamma`.
        beta_initializer, gamma_initializer, v_initializer: Initializers of `beta` (zeros),
            `gamma` (ones) and `v` (ones).
        beta_regularizer, gamma_regularizer, v_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint, v_constraint: Optional constraints.
            The `v_*` arguments exist only for B0, S0 and S0a, the variants with `v`; the
            others raise TypeError if given one.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of rank 3 to 5.
        training: Python boolean. Batch variants use the batch variance and update the moving
            variance when True (and the layer is trainable), the moving variance otherwise.
        mask: Optional boolean tensor of the input's shape without the channels axis, True for
            valid positions. Masked positions are left out of every statistic; the mask is passed
            on to the next layer.

    Batch variant arguments:
        momentum: Keras convention: `moving = momentum * moving + (1 - momentum) * batch`
            (torch's and timm's 0.1 is 0.9 here). Default 0.9, as in the authors' code.
        bessel_correction: If True, the moving variance is updated with the unbiased batch
            variance `s2_b * n / (n - 1)`, as timm and torch do (`n` counts the valid positions;
            the factor is 1 when `n == 1`). The authors' code (default False) uses the biased one.
        moving_variance_initializer: Initializer of the moving variance (ones).
        synchronized: If True (default), the batch variance is over the global batch of a
            data-parallel step: an all-reduce of sums and counts under `tf.distribute` or an
            initialized `torch.distributed` process group; under `keras.distribution` on JAX it
            is global either way. False: each TensorFlow / PyTorch replica uses its own shard.
            See docs/distributed.md.

    Example:

    >>> y = keras_norms.layers.EvoNormB2()(keras.random.normal((8, 16, 16, 32)), training=True)
    """

    formula = staticmethod(norm_ops.evonorm_b2)


class _EvoNormSample(_EvoNorm):
    """EvoNorm S variants: `x * sigmoid(v * x) / sqrt(group_statistic + eps)`, no running state."""

    # The group statistic: the variance (S0, S1) or, when False, the mean square (S2), over the
    # positions and the channels of a group.
    centered = True

    def __init__(
        self, axis: int = -1, epsilon: float = 1e-5, groups: int = 32, group_size: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(axis=axis, epsilon=epsilon, **kwargs)
        self.groups = check_int("groups", groups, minimum=1)
        self.group_size = None if group_size is None else check_int("group_size", group_size, 1)

    def _build_statistics(self, input_shape, channels):
        if self.group_size is not None:
            if channels % self.group_size:
                raise ValueError(
                    f"`group_size` must divide the number of channels ({channels}, axis="
                    f"{self.axis}). Received: group_size={self.group_size}"
                )
            self._groups = channels // self.group_size
        else:
            if channels % self.groups:
                divisors = [g for g in range(1, channels + 1) if channels % g == 0]
                raise ValueError(
                    f"`groups` must divide the number of channels ({channels}, axis={self.axis}). "
                    f"Received: groups={self.groups}. Pass groups in {divisors}, or "
                    f"`group_size` (channels per group) instead."
                )
            self._groups = self.groups

    def _normalize(self, x, mask, training):
        v = None if self.v is None else self._v(len(x.shape), x.dtype)
        return norm_ops.evonorm_s(
            x,
            v,
            channel_axis=self._channel_axis,
            groups=self._groups,
            epsilon=self.epsilon,
            centered=self.centered,
            apply_act=self.apply_act,
            weights=mask,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"groups": self.groups, "group_size": self.group_size})
        return config


@keras.saving.register_keras_serializable(package="keras_norms")
class EvoNormS0(_EvoNormSample):
    """EvoNorm-S0: sample-based normalization-activation, identical in training and inference.

    `y = x * sigmoid(v * x) / sqrt(s2_g + eps) * gamma + beta`

    `s2_g` is the per-sample variance over the positions and channels of each group of
    `channels // groups` contiguous channels. Paper: "Evolving Normalization-Activation Layers",
    arXiv 2004.02967; matches the authors' `evonorm_s0` and timm's `EvoNorm2dS0`.
    Unlike the authors' code, a `groups` that does not divide the channels raises (as timm does)
    instead of silently lowering the group count.

    Args:
        axis: Integer, the channels axis: -1 for channels-last (default), 1 for channels-first.
            Inputs have rank 3 to 5 (1D, 2D and 3D feature maps).
        epsilon: Small float added inside every square root.
        apply_act: If False, skip the normalization-activation and return `x * gamma + beta`,
            as in the paper and timm (the S*a variants still normalize, see their docstring).
        center: If True, add the offset `beta`.
        scale: If True, multiply by `gamma`.
        beta_initializer, gamma_initializer, v_initializer: Initializers of `beta` (zeros),
            `gamma` (ones) and `v` (ones).
        beta_regularizer, gamma_regularizer, v_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint, v_constraint: Optional constraints.
            The `v_*` arguments exist only for B0, S0 and S0a, the variants with `v`; the
            others raise TypeError if given one.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of rank 3 to 5.
        training: Python boolean. Batch variants use the batch variance and update the moving
            variance when True (and the layer is trainable), the moving variance otherwise.
        mask: Optional boolean tensor of the input's shape without the channels axis, True for
            valid positions. Masked positions are left out of every statistic; the mask is passed
            on to the next layer.

    Sample variant arguments:
        groups: Number of contiguous channel groups (default 32). The channel count must be
            divisible by it; channel `c` belongs to group `c // (channels // groups)`.
        group_size: Channels per group. When given, it overrides `groups`
            (`groups = channels // group_size`), as timm's `group_size` does.

    Example:

    >>> x = keras.random.normal((8, 16, 16, 64))
    >>> y = keras_norms.layers.EvoNormS0(groups=8)(x)
    >>> y.shape
    (8, 16, 16, 64)
    """

    uses_v = True


@keras.saving.register_keras_serializable(package="keras_norms")
class EvoNormS1(_EvoNormSample):
    """EvoNorm-S1: `y = x * sigmoid(x) / sqrt(s2_g + eps) * gamma + beta` (S0 with `v = 1`).

    The gate is fixed to SiLU as in the paper (timm lets it be swapped). Group variance `s2_g` as
    in `EvoNormS0`. Paper arXiv 2004.02967; matches timm's `EvoNorm2dS1`.

    Args:
        axis: Integer, the channels axis: -1 for channels-last (default), 1 for channels-first.
            Inputs have rank 3 to 5 (1D, 2D and 3D feature maps).
        epsilon: Small float added inside every square root.
        apply_act: If False, skip the normalization-activation and return `x * gamma + beta`,
            as in the paper and timm (the S*a variants still normalize, see their docstring).
        center: If True, add the offset `beta`.
        scale: If True, multiply by `gamma`.
        beta_initializer, gamma_initializer, v_initializer: Initializers of `beta` (zeros),
            `gamma` (ones) and `v` (ones).
        beta_regularizer, gamma_regularizer, v_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint, v_constraint: Optional constraints.
            The `v_*` arguments exist only for B0, S0 and S0a, the variants with `v`; the
            others raise TypeError if given one.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of rank 3 to 5.
        training: Python boolean. Batch variants use the batch variance and update the moving
            variance when True (and the layer is trainable), the moving variance otherwise.
        mask: Optional boolean tensor of the input's shape without the channels axis, True for
            valid positions. Masked positions are left out of every statistic; the mask is passed
            on to the next layer.

    Sample variant arguments:
        groups: Number of contiguous channel groups (default 32). The channel count must be
            divisible by it; channel `c` belongs to group `c // (channels // groups)`.
        group_size: Channels per group. When given, it overrides `groups`
            (`groups = channels // group_size`), as timm's `group_size` does.

    Example:

    >>> y = keras_norms.layers.EvoNormS1(groups=8)(keras.random.normal((8, 16, 16, 64)))
    """


@keras.saving.register_keras_serializable(package="keras_norms")
class EvoNormS2(_EvoNormSample):
    """EvoNorm-S2: `y = x * sigmoid(x) / sqrt(m2_g + eps) * gamma + beta`.

    `m2_g` is the per-sample mean square (not the variance) over the positions and channels of
    each group. Paper arXiv 2004.02967; matches timm's `EvoNorm2dS2`.

    Args:
        axis: Integer, the channels axis: -1 for channels-last (default), 1 for channels-first.
            Inputs have rank 3 to 5 (1D, 2D and 3D feature maps).
        epsilon: Small float added inside every square root.
        apply_act: If False, skip the normalization-activation and return `x * gamma + beta`,
            as in the paper and timm (the S*a variants still normalize, see their docstring).
        center: If True, add the offset `beta`.
        scale: If True, multiply by `gamma`.
        beta_initializer, gamma_initializer, v_initializer: Initializers of `beta` (zeros),
            `gamma` (ones) and `v` (ones).
        beta_regularizer, gamma_regularizer, v_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint, v_constraint: Optional constraints.
            The `v_*` arguments exist only for B0, S0 and S0a, the variants with `v`; the
            others raise TypeError if given one.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of rank 3 to 5.
        training: Python boolean. Batch variants use the batch variance and update the moving
            variance when True (and the layer is trainable), the moving variance otherwise.
        mask: Optional boolean tensor of the input's shape without the channels axis, True for
            valid positions. Masked positions are left out of every statistic; the mask is passed
            on to the next layer.

    Sample variant arguments:
        groups: Number of contiguous channel groups (default 32). The channel count must be
            divisible by it; channel `c` belongs to group `c // (channels // groups)`.
        group_size: Channels per group. When given, it overrides `groups`
            (`groups = channels // group_size`), as timm's `group_size` does.

    Example:

    >>> y = keras_norms.layers.EvoNormS2(groups=8)(keras.random.normal((8, 16, 16, 64)))
    """

    centered = False


@keras.saving.register_keras_serializable(package="keras_norms")
class EvoNormS0a(EvoNormS0):
    """EvoNorm-S0a (timm's `EvoNorm2dS0a`): `EvoNormS0` that also normalizes without the activation.

    With `apply_act=True` the formula is `EvoNormS0`'s. The differences are timm's: `epsilon`
    defaults to 1e-3, and `apply_act=False` still divides by the group statistic,
    `y = x / sqrt(stat_g + eps) * gamma + beta`, instead of returning the plain affine
    `x * gamma + beta`. Arguments and call arguments are `EvoNormS0`'s.

    Example:

    >>> y = keras_norms.layers.EvoNormS0a(groups=8, apply_act=False)(keras.random.normal((8, 16, 16, 64)))
    """

    normalizes_without_act = True

    def __init__(self, axis: int = -1, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(axis=axis, epsilon=epsilon, **kwargs)


@keras.saving.register_keras_serializable(package="keras_norms")
class EvoNormS1a(EvoNormS1):
    """EvoNorm-S1a (timm's `EvoNorm2dS1a`): `EvoNormS1` that also normalizes without the activation.

    With `apply_act=True` the formula is `EvoNormS1`'s. The differences are timm's: `epsilon`
    defaults to 1e-3, and `apply_act=False` still divides by the group statistic,
    `y = x / sqrt(stat_g + eps) * gamma + beta`, instead of returning the plain affine
    `x * gamma + beta`. Arguments and call arguments are `EvoNormS1`'s.

    Example:

    >>> y = keras_norms.layers.EvoNormS1a(groups=8, apply_act=False)(keras.random.normal((8, 16, 16, 64)))
    """

    normalizes_without_act = True

    def __init__(self, axis: int = -1, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(axis=axis, epsilon=epsilon, **kwargs)


@keras.saving.register_keras_serializable(package="keras_norms")
class EvoNormS2a(EvoNormS2):
    """EvoNorm-S2a (timm's `EvoNorm2dS2a`): `EvoNormS2` that also normalizes without the activation.

    With `apply_act=True` the formula is `EvoNormS2`'s. The differences are timm's: `epsilon`
    defaults to 1e-3, and `apply_act=False` still divides by the group statistic,
    `y = x / sqrt(stat_g + eps) * gamma + beta`, instead of returning the plain affine
    `x * gamma + beta`. Arguments and call arguments are `EvoNormS2`'s.

    Example:

    >>> y = keras_norms.layers.EvoNormS2a(groups=8, apply_act=False)(keras.random.normal((8, 16, 16, 64)))
    """

    normalizes_without_act = True

    def __init__(self, axis: int = -1, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(axis=axis, epsilon=epsilon, **kwargs)

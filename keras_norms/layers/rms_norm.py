"""RMSNorm and CRMSNorm layers.

RMSNorm: Zhang & Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019, arXiv 1910.07467.
CRMSNorm: Jiang, Gu, Zhu, Pan, "Pre-RMSNorm and Pre-CRMSNorm Transformers: Equivalent and Efficient
Pre-LN Transformers", NeurIPS 2023, arXiv 2305.14858.
"""

from typing import Any

import keras
from keras import ops

from keras_norms import ops as norm_ops
from keras_norms.arguments import check_bool, check_mask, normalize_axis
from keras_norms.layers.base import NormalizationBase
from keras_norms.ops.types import InitializerLike, Shape, Tensor


class _RootMeanSquareBase(NormalizationBase):
    """Affine, gain form and config shared by `RMSNormalization` and `CRMSNormalization`."""

    def __init__(
        self,
        axis: int | list[int] | tuple[int, ...] = -1,
        epsilon: float = 1e-6,
        center: bool = False,
        scale: bool = True,
        zero_centered_gamma: bool = False,
        gamma_initializer: InitializerLike = None,
        **kwargs: Any,
    ) -> None:
        zero_centered_gamma = check_bool("zero_centered_gamma", zero_centered_gamma)
        if gamma_initializer is None:
            gamma_initializer = "zeros" if zero_centered_gamma else "ones"
        super().__init__(
            epsilon=epsilon,
            center=center,
            scale=scale,
            gamma_initializer=gamma_initializer,
            **kwargs,
        )
        self.zero_centered_gamma = zero_centered_gamma
        axes = [axis] if isinstance(axis, int) else axis
        if (
            not isinstance(axes, (list, tuple))
            or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes)
            or not axes
        ):
            raise TypeError(f"`axis` must be an int or a non-empty list of ints. Received: axis={axis!r}")
        self.axis: int | list[int] = axis if isinstance(axis, int) else list(axis)

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        axes = [self.axis] if isinstance(self.axis, int) else list(self.axis)
        self._param_axes = tuple(sorted(normalize_axis("axis", a, rank) for a in axes))
        if len(set(self._param_axes)) != len(axes):
            raise ValueError(f"`axis` must not repeat an axis. Received: axis={self.axis}")
        sizes = tuple(input_shape[a] for a in self._param_axes)
        if None in sizes:
            raise ValueError(
                f"The normalized axes (axis={self.axis}) of the input must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self._build_affine(sizes)
        # Trailing axes (the usual `axis=-1`) work on any rank with the same trailing sizes, as
        # keras.layers.RMSNormalization does: one layer can serve (B, T, D) and (B, D) tensors.
        self._trailing = self._param_axes == tuple(range(rank - len(sizes), rank))
        if self._trailing:
            self.input_spec = keras.layers.InputSpec(
                min_ndim=len(sizes) + 1, axes={a - rank: size for a, size in zip(self._param_axes, sizes)}
            )
        else:
            self.input_spec = keras.layers.InputSpec(ndim=rank, axes=dict(zip(self._param_axes, sizes)))

    def _parameter_axes(self, rank):
        if self._trailing:
            return tuple(range(rank - len(self._param_axes), rank))
        return self._param_axes

    def _effective_gamma(self, rank, dtype):
        gamma = self._parameter(self.gamma, rank, dtype)
        return 1.0 + gamma if self.zero_centered_gamma else gamma

    def _prepare(self, inputs, mask):
        """The input in the statistics' dtype and its normalized axes; checks the mask."""
        x = norm_ops.upcast(inputs, self.compute_dtype)
        axes = self._parameter_axes(len(x.shape))
        if mask is not None:  # a Keras mask: the positions, the input without its last axis
            check_mask(type(self).__name__, mask, x.shape, (len(x.shape) - 1,))
        return x, axes

    def call(self, inputs: Tensor, training: bool | None = None, mask: Tensor | None = None) -> Tensor:
        # Per-token statistics: the same in training, and nothing to exclude; Keras propagates
        # the mask. Both arguments exist so the layer can stand in for any Keras norm.
        del training
        x, axes = self._prepare(inputs, mask)
        gamma = self._effective_gamma(len(x.shape), x.dtype) if self.scale else None
        y = self._normalize(x, axes, gamma)  # the gain inside: one fused kernel where there is one
        if self.center:
            y = y + self._parameter(self.beta, len(x.shape), y.dtype)
        return ops.cast(y, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"axis": self.axis, "zero_centered_gamma": self.zero_centered_gamma})
        return config


@keras.saving.register_keras_serializable(package="keras_norms")
class RMSNormalization(_RootMeanSquareBase):
    """Root mean square normalization, with masking, an optional bias and a zero-centered gain.

    `y = x / sqrt(mean(x**2) + epsilon) * gamma (+ beta)`, the mean over `axis`.

    A drop-in for `keras.layers.RMSNormalization` (same `axis`, `epsilon` and numbers) that also
    propagates masks, offers `center` (a bias), `scale=False`, `zero_centered_gamma` (Gemma's
    `1 + gamma`) and the usual initializers, regularizers and constraints, and computes its
    statistics in float32 under mixed precision. Paper: "Root Mean Square Layer Normalization",
    arXiv 1910.07467. The epsilon sits inside the square root, as in `torch.nn.RMSNorm` and the
    paper's TensorFlow code (its torch code adds it outside).

    Args:
        axis: Integer or list of integers, the feature axes to normalize over (default -1).
        epsilon: Small float added to the mean square inside the square root (default 1e-6, as
            `keras.layers.RMSNormalization`).
        center: If True, add a learnable bias `beta` (default False, as in the paper).
        scale: If True (default), multiply by the learnable gain `gamma`.
        zero_centered_gamma: If True, multiply by `1 + gamma` with `gamma` initialized to zeros,
            the form Gemma uses (weight decay then pulls the gain towards 1, not 0).
        beta_initializer, gamma_initializer: Initializers of `beta` (zeros) and `gamma` (ones, or
            zeros with `zero_centered_gamma`).
        beta_regularizer, gamma_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint: Optional constraints.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of any rank.
        mask: Optional Keras mask. Statistics are per token, so the mask changes no output; it is
            passed on to the next layer (`keras.layers.RMSNormalization` drops it).

    Example:

    >>> x = keras.random.normal((2, 10, 64))
    >>> y = keras_norms.layers.RMSNormalization(zero_centered_gamma=True)(x)
    >>> y.shape
    (2, 10, 64)
    """

    def _normalize(self, x, axes, gamma):
        return norm_ops.rms_normalization(x, axes, self.epsilon, gamma)


@keras.saving.register_keras_serializable(package="keras_norms")
class CRMSNormalization(_RootMeanSquareBase):
    """Compressed RMS normalization of the d-1 stored coordinates of a zero-mean d-vector.

    `y = z / sqrt((sum(z**2) + sum(z)**2) / d + epsilon) * gamma (+ beta)`, `d = z.shape[axis] + 1`.

    In a Pre-CRMSNorm Transformer the residual stream is zero-mean, so its last coordinate
    `-sum(z)` is dropped and the stream has width d-1. Without the affine,
    `CRMSNormalization()(z) == RMSNormalization()(concat([z, -sum(z)]))[..., :d-1]`, and equals
    LayerNorm on the full vector. Paper: "Pre-RMSNorm and Pre-CRMSNorm Transformers", arXiv
    2305.14858; matches the authors' `crms_norm`.

    Args:
        axis: Integer, the compressed feature axis to normalize over (default -1).
        epsilon: Small float added to the mean square inside the square root (default 1e-6, as
            `keras.layers.RMSNormalization`).
        center: If True, add a learnable bias `beta` (default False, as in the paper).
        scale: If True (default), multiply by the learnable gain `gamma`.
        zero_centered_gamma: If True, multiply by `1 + gamma` with `gamma` initialized to zeros,
            the form Gemma uses (weight decay then pulls the gain towards 1, not 0).
        beta_initializer, gamma_initializer: Initializers of `beta` (zeros) and `gamma` (ones, or
            zeros with `zero_centered_gamma`).
        beta_regularizer, gamma_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint: Optional constraints.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of any rank.
        mask: Optional Keras mask. Statistics are per token, so the mask changes no output; it is
            passed on to the next layer (`keras.layers.RMSNormalization` drops it).

    Example:

    >>> z = keras.random.normal((2, 10, 63))  # a 64-wide zero-mean stream, compressed
    >>> y = keras_norms.layers.CRMSNormalization(scale=False)(z)
    >>> y.shape
    (2, 10, 63)
    """

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(
                f"CRMSNormalization normalizes one compressed feature axis: `axis` must be an int. "
                f"Received: axis={axis!r}"
            )
        super().__init__(axis=axis, **kwargs)

    def _normalize(self, x, axes, gamma):
        return norm_ops.crms_normalization(x, axes[0], self.epsilon, gamma)

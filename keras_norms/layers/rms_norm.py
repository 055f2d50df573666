"""RMSNorm and CRMSNorm layers.

RMSNorm: Zhang & Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019, arXiv 1910.07467.
CRMSNorm: Jiang, Gu, Zhu, Pan, "Pre-RMSNorm and Pre-CRMSNorm Transformers: Equivalent and Efficient
Pre-LN Transformers", NeurIPS 2023, arXiv 2305.14858.
"""

import keras
from keras import ops

from keras_norms import backend as fast_paths
from keras_norms import ops as norm_ops
from keras_norms.layers.base import NormalizationBase
from keras_norms.layers.base import check_bool
from keras_norms.layers.base import normalize_axis

_ARGS = """
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
"""


class _RootMeanSquareBase(NormalizationBase):
    """Affine, gain form and config shared by `RMSNormalization` and `CRMSNormalization`."""

    def __init__(
        self,
        axis=-1,
        epsilon=1e-6,
        center=False,
        scale=True,
        zero_centered_gamma=False,
        gamma_initializer=None,
        **kwargs,
    ):
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
        if not isinstance(axes, (list, tuple)) or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in axes
        ) or not axes:
            raise TypeError(f"`axis` must be an int or a non-empty list of ints. Received: axis={axis!r}")
        self.axis = axis if isinstance(axis, int) else list(axis)

    def build(self, input_shape):
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
        self.input_spec = keras.layers.InputSpec(
            ndim=rank, axes=dict(zip(self._param_axes, sizes))
        )

    def _effective_gamma(self, rank):
        gamma = self._parameter(self.gamma, rank)
        return 1.0 + gamma if self.zero_centered_gamma else gamma

    def call(self, inputs, training=None, mask=None):
        # Per-token statistics: the same in training, and nothing to exclude; Keras propagates
        # the mask. Both arguments exist so the layer can stand in for any Keras norm.
        del training, mask
        y = self._normalize(inputs)
        return ops.cast(self._affine(y), self.compute_dtype)

    def get_config(self):
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
    {args}
    Example:

    >>> x = keras.random.normal((2, 10, 64))
    >>> y = keras_norms.layers.RMSNormalization(zero_centered_gamma=True)(x)
    >>> y.shape
    (2, 10, 64)
    """

    def call(self, inputs, training=None, mask=None):
        rank = len(inputs.shape)
        fused = None
        if self._param_axes == tuple(range(rank - len(self._param_axes), rank)):  # trailing axes
            fused = fast_paths.get("rms_normalization")
        if fused is None:
            return super().call(inputs, training=training, mask=mask)
        gamma = None
        if self.scale:  # inside the fused kernel
            gamma = ops.convert_to_tensor(self.gamma)
            gamma = 1.0 + gamma if self.zero_centered_gamma else gamma
        y = fused(inputs, self._param_axes, self.epsilon, gamma)
        if self.center:
            y = y + ops.cast(self._parameter(self.beta, rank), y.dtype)
        return ops.cast(y, self.compute_dtype)

    def _normalize(self, inputs):
        return norm_ops.rms_normalization(inputs, self._param_axes, self.epsilon)


@keras.saving.register_keras_serializable(package="keras_norms")
class CRMSNormalization(_RootMeanSquareBase):
    """Compressed RMS normalization of the d-1 stored coordinates of a zero-mean d-vector.

    `y = z / sqrt((sum(z**2) + sum(z)**2) / d + epsilon) * gamma (+ beta)`, `d = z.shape[axis] + 1`.

    In a Pre-CRMSNorm Transformer the residual stream is zero-mean, so its last coordinate
    `-sum(z)` is dropped and the stream has width d-1. Without the affine,
    `CRMSNormalization()(z) == RMSNormalization()(concat([z, -sum(z)]))[..., :d-1]`, and equals
    LayerNorm on the full vector. Paper: "Pre-RMSNorm and Pre-CRMSNorm Transformers", arXiv
    2305.14858; matches the authors' `crms_norm`. `axis` is a single integer here.
    {args}
    Example:

    >>> z = keras.random.normal((2, 10, 63))  # a 64-wide zero-mean stream, compressed
    >>> y = keras_norms.layers.CRMSNormalization(scale=False)(z)
    >>> y.shape
    (2, 10, 63)
    """

    def __init__(self, axis=-1, **kwargs):
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(
                f"CRMSNormalization normalizes one compressed feature axis: `axis` must be an int. "
                f"Received: axis={axis!r}"
            )
        super().__init__(axis=axis, **kwargs)

    def _normalize(self, inputs):
        return norm_ops.crms_normalization(inputs, self._param_axes[0], self.epsilon)


for _cls in (RMSNormalization, CRMSNormalization):
    _cls.__doc__ = _cls.__doc__.format(args=_ARGS)

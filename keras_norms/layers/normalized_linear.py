"""OLinear's layers: NormLinear (a convex-combination Dense) and OrthoTransform (a fixed orthogonal basis).

Paper: Yue, Liu, Li, Wang, Ying, Guo, Xing, Shi, "OLinear: A Linear Model for Time Series
Forecasting in Orthogonally Transformed Domain", NeurIPS 2025, arXiv 2505.08550. Reference:
jackyue1994/OLinear (layers/newLinear.py, model/OLinear.py, dataset/Generate_corrmat.ipynb).
"""

from typing import Any

import keras
import numpy as np
import numpy.typing as npt
from keras import constraints, initializers, ops, regularizers

from keras_norms.arguments import check_bool, check_int, check_number, normalize_axis
from keras_norms.layers.base import build_feature_axis
from keras_norms.ops import linear as linear_ops
from keras_norms.ops.dtypes import matmul, upcast
from keras_norms.ops.types import ConstraintLike, InitializerLike, RegularizerLike, Shape, Tensor


@keras.saving.register_keras_serializable(package="keras_norms")
class NormLinear(keras.layers.Layer):
    """A Dense layer whose kernel is `softplus(K)`, L1-normalized over its input axis.

    `y = x @ A (+ b)` with `A = softplus(K) / max(sum_in softplus(K), 1e-12)`: each output is a
    convex combination of the inputs (the NormLin layer of OLinear). The kernel is in Keras layout
    `(in, out)`, so the normalization runs over axis 0; the reference's torch `(out, in)` weight
    normalizes its last axis. It is an L1 normalization of softplus, not a row softmax. Default
    init `N(0, 1)` and no bias, as the reference's `newLinear`. The effective kernel is computed in
    float32 (float64 for a float64 layer) and cast to the compute dtype.

    Args:
        units: Output size.
        use_bias: Add a bias (default False).
        kernel_initializer: As for `keras.layers.Dense`, default `RandomNormal(0, 1)`.
        bias_initializer, kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint:
            As for `keras.layers.Dense`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> mixer = keras_norms.layers.NormLinear(32)
    >>> y = mixer(keras.random.normal((4, 10, 16)))  # (4, 10, 32)
    """

    def __init__(
        self,
        units: int,
        use_bias: bool = False,
        kernel_initializer: InitializerLike = None,
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        kernel_constraint: ConstraintLike = None,
        bias_constraint: ConstraintLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_int("units", units, minimum=1)
        self.use_bias = check_bool("use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer or initializers.RandomNormal(0.0, 1.0))
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape: Shape) -> None:
        features = build_feature_axis(self, input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            autocast=False,
        )
        self.bias: keras.Variable | None = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                autocast=False,
            )

    @property
    def effective_kernel(self) -> Tensor:
        """The normalized kernel `A` actually applied, `(in, units)`, in float32 (float64 for float64)."""
        return linear_ops.normalized_linear_kernel(upcast(self.kernel, self.compute_dtype))

    def call(self, inputs: Tensor) -> Tensor:
        # In the compute dtype, as keras.layers.Dense; the kernel's normalization in float32 at least.
        kernel = linear_ops.normalized_linear_kernel(upcast(self.kernel, self.compute_dtype))
        outputs = matmul(ops.cast(inputs, self.compute_dtype), ops.cast(kernel, self.compute_dtype))
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        return outputs

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
            }
        )
        return config


def _check_basis(basis: npt.ArrayLike) -> np.ndarray:
    array = np.asarray(basis, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise ValueError(f"`basis` must be a square 2-D array (lag, lag). Received shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("`basis` must be finite.")
    return array


@keras.saving.register_keras_serializable(package="keras_norms")
class OrthoTransform(keras.layers.Layer):
    """A fixed orthogonal change of basis along one axis, plus a learnable offset (OrthoTrans).

    Forward: `y_i = sum_j Q_ij x_j + delta` along `axis`, i.e. `x Q^T` (the series in the
    decorrelated basis). `inverse=True`: `y_j = sum_i Q_ij x_i + delta`, i.e. `x Q`, back to the
    time domain (OLinear uses the output basis `Q_out`, built with the horizon as lag, here).
    `Q` comes from `compute_orthotrans_basis` on the training split; it is a non-trainable
    weight saved with the model (and in the config, so `clone_model` keeps it). `delta` starts at
    zero and varies along `offset_axes` (default: `axis`; OLinear's `(1, N, 1, T)` offset on a
    `(B, N, D, T)` input is `offset_axes=(1, 3)`). The reference's per-channel basis option (a Q
    per variate) is not included.

    Args:
        basis: The orthogonal matrix `Q`, `(lag, lag)`, rows the basis vectors.
        inverse: Apply `Q^T` (back to the time domain) instead of `Q`.
        learn_offset: Add the trainable offset `delta` (default True).
        axis: The axis of length `lag` to transform (default -1).
        offset_axes: Axes along which `delta` varies (default `(axis,)`).
        **kwargs: Base layer keyword arguments.

    Example:

    >>> q = keras_norms.layers.compute_orthotrans_basis(train_series, lag=96)
    >>> z = keras_norms.layers.OrthoTransform(q)(windows)  # windows: (batch, 96)
    """

    def __init__(
        self,
        basis: npt.ArrayLike,
        inverse: bool = False,
        learn_offset: bool = True,
        axis: int = -1,
        offset_axes: list[int] | tuple[int, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.basis = _check_basis(basis)
        self.inverse = check_bool("inverse", inverse)
        self.learn_offset = check_bool("learn_offset", learn_offset)
        self.axis = check_int("axis", axis)
        self.offset_axes: tuple[int, ...] | None = None
        if offset_axes is not None:
            if not isinstance(offset_axes, (list, tuple)):
                raise TypeError(f"`offset_axes` must be None or a list of ints. Received: offset_axes={offset_axes!r}")
            self.offset_axes = tuple(check_int("offset_axes", a) for a in offset_axes)
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        self._axis = normalize_axis("axis", self.axis, rank)
        lag = self.basis.shape[0]
        if input_shape[self._axis] != lag:
            raise ValueError(
                f"The input axis {self.axis} must have the basis size {lag}. Received: input_shape={tuple(input_shape)}"
            )
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self._axis: lag})
        self.basis_weight = self.add_weight(
            name="basis",
            shape=self.basis.shape,
            initializer=initializers.Constant(self.basis),
            trainable=False,
            autocast=False,
        )
        self.offset: keras.Variable | None = None
        if self.learn_offset:
            offset_axes = (self._axis,) if self.offset_axes is None else self.offset_axes
            axes = [normalize_axis("offset_axes", a, rank) for a in offset_axes]
            shape = [1] * (rank - 1)
            for a in axes:
                size = input_shape[a]
                if size is None:
                    raise ValueError(f"`offset_axes` axis {a} has unknown size in {input_shape}")
                shape[a - 1] = size
            self.offset = self.add_weight(name="offset", shape=tuple(shape), initializer="zeros", autocast=False)

    def call(self, inputs: Tensor) -> Tensor:
        x = upcast(inputs, self.compute_dtype)
        y = linear_ops.orthogonal_transform(x, ops.cast(self.basis_weight, x.dtype), self._axis, self.inverse)
        if self.learn_offset:
            y = y + ops.cast(self.offset, x.dtype)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "basis": self.basis.tolist(),
                "inverse": self.inverse,
                "learn_offset": self.learn_offset,
                "axis": self.axis,
                "offset_axes": None if self.offset_axes is None else list(self.offset_axes),
            }
        )
        return config


def compute_orthotrans_basis(train_array: npt.ArrayLike, lag: int, min_variance: float = 1e-4) -> np.ndarray:
    """The OrthoTrans basis `Q` of a multivariate series, from its training split only.

    For each channel: the lag matrix `L` (`lag` rows, row `i` = `series[i : n - lag + i + 1]`),
    its covariance `C = np.cov(L)`, divided column-wise by its diagonal (`C / diag(C)`, the
    reference's "normalization": `C_ij / C_jj`, not a correlation); channels with a diagonal
    entry below `min_variance` are skipped; the rest are averaged. `Q` holds the eigenvectors of
    the average in descending eigenvalue order, one per row. The average is slightly asymmetric;
    like the reference, `np.linalg.eigh` reads its lower triangle. Eigenvector signs are arbitrary.

    Args:
        train_array: `(time, channels)` (or `(time,)`) numpy array: the training split only,
            or the test data leaks into the basis.
        lag: The window length (the lookback for the input basis, the horizon for the output one).
        min_variance: Channels whose lag covariance has a diagonal entry below this are skipped.

    Returns:
        `Q`, a float64 `(lag, lag)` orthogonal matrix.
    """
    series = np.asarray(train_array, dtype=np.float64)
    if series.ndim == 1:
        series = series[:, None]
    if series.ndim != 2:
        raise ValueError(f"`train_array` must be (time, channels). Received shape {series.shape}")
    lag = check_int("lag", lag, minimum=2)
    min_variance = check_number("min_variance", min_variance, minimum=0.0)
    length = series.shape[0]
    if length < lag + 1:
        raise ValueError(f"`train_array` needs more than lag={lag} steps. Received {length}")
    windows = length - lag + 1
    covariances = []
    for channel in series.T:
        lagged = np.stack([channel[i : i + windows] for i in range(lag)])
        covariance = np.cov(lagged)
        diagonal = np.diag(covariance)
        if np.min(diagonal) < min_variance:
            continue
        covariances.append(covariance / diagonal)
    if not covariances:
        raise ValueError(f"Every channel has a lag variance below min_variance={min_variance}.")
    _, eigenvectors = np.linalg.eigh(np.mean(covariances, axis=0))
    return np.flip(eigenvectors.T, axis=0)

"""SNNKDense: a dense layer computed as a dot product of random features (Scalable Neural Network Kernels).

Paper: Sehanobish, Choromanski, Zhao, Dubey, Likhosherstov, "Scalable Neural Network Kernels",
ICLR 2024, arXiv 2310.13225. Reference: arijitthegame/neural-network-kernels src/nnk/nnk.py
(`NNK_Relu`, `phi_relu_mapping_torch`).
"""

from typing import Any, cast

import keras
import numpy as np
import numpy.typing as npt
from keras import initializers, ops

from keras_norms.arguments import check_bool, check_int, check_number
from keras_norms.layers.base import build_feature_axis
from keras_norms.ops import random_features as feature_ops
from keras_norms.ops.dtypes import matmul, upcast
from keras_norms.ops.types import Shape, Tensor


def gaussian_projection(num_features: int, dim: int, orthogonal: bool, seed: int | None) -> np.ndarray:
    """A `(num_features, dim)` Gaussian projection; with `orthogonal=True`, orthogonal random features.

    Orthogonal: blocks of `dim` orthonormal rows (QR of a Gaussian matrix) with each row rescaled
    to the norm of an independent Gaussian vector (the Performer construction, `scaling=0`), so
    rows stay marginally Gaussian. numpy's generator: the same seed gives the same projection on
    every backend.
    """
    rng = np.random.default_rng(seed)
    if not orthogonal:
        return rng.standard_normal((num_features, dim))
    blocks = []
    for _ in range(-(-num_features // dim)):
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        blocks.append(q.T)
    rows = np.concatenate(blocks)[:num_features]
    return rows * np.linalg.norm(rng.standard_normal((num_features, dim)), axis=1, keepdims=True)


@keras.saving.register_keras_serializable(package="keras_norms")
class SNNKDense(keras.layers.Layer):
    """`y = phi(x) @ psi^T`: a dense layer replaced by disentangled ReLU random features.

    `phi(x) = m**-0.5 * max(x G^T, relu_floor)` with a fixed Gaussian projection `G` (`m` rows,
    `num_random_features`). `psi` (`units x m`) is the trainable parameter, initialized as
    `phi(W^T)` of a kernel `W` (`init_from_kernel`, Keras layout `(in, units)`, e.g. a trained
    Dense kernel; default a Glorot-uniform draw). `<phi(x), phi(w_j)>` estimates the arc-cosine
    kernel `E_g[relu(g.x) relu(g.w_j)] = |x||w_j| (sin t + (pi - t) cos t) / (2 pi)`, not
    `relu(w_j . x)`, with O(1/sqrt(m)) noise. `G` is a non-trainable weight (float32 by default) saved with the
    model and drawn from `seed`. No bias, like the reference's `NNK_Relu`, unless `use_bias`.

    The reference's exponential (URF) feature variant takes user-supplied callables `A, a` and
    nodes `xi`, and its asymmetric bias features are complex-valued; neither is included.

    Args:
        units: Output size.
        num_random_features: `m` (the reference has no default).
        relu_floor: `c` in `max(., c)`; below 0 gives leaky-like features (default 0).
        orthogonal: Orthogonal random features (default False).
        seed: Seed of `G` (and of the default `W`); None draws one.
        init_from_kernel: Optional `(in, units)` kernel to initialize `psi` from.
        use_bias: Add a bias (default False).
        **kwargs: Base layer keyword arguments.

    Example:

    >>> dense = keras.layers.Dense(64, use_bias=False)  # a trained layer
    >>> snnk = keras_norms.layers.SNNKDense(64, 256, init_from_kernel=dense.kernel.numpy())
    """

    def __init__(
        self,
        units: int,
        num_random_features: int,
        relu_floor: float = 0.0,
        orthogonal: bool = False,
        seed: int | None = None,
        init_from_kernel: npt.ArrayLike | Tensor | None = None,
        use_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_int("units", units, minimum=1)
        self.num_random_features = check_int("num_random_features", num_random_features, minimum=1)
        self.relu_floor = check_number("relu_floor", relu_floor)
        self.orthogonal = check_bool("orthogonal", orthogonal)
        if seed is None:
            # Without an argument, SeedSequence draws its entropy from the OS: an int (the stubs
            # also allow the sequence or None that it takes as an argument).
            self.seed = int(cast(int, np.random.SeedSequence().entropy) % 2**31)
        else:
            self.seed = check_int("seed", seed, 0)
        self.init_from_kernel: np.ndarray | None = None
        if init_from_kernel is not None:
            kernel = np.asarray(ops.convert_to_numpy(init_from_kernel), dtype=np.float64)
            if kernel.ndim != 2 or kernel.shape[1] != self.units:
                raise ValueError(f"`init_from_kernel` must be (in, units={self.units}). Received shape {kernel.shape}")
            self.init_from_kernel = kernel
        self.use_bias = check_bool("use_bias", use_bias)
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape: Shape) -> None:
        dim = build_feature_axis(self, input_shape)
        kernel = self.init_from_kernel
        if kernel is None:
            limit = np.sqrt(6.0 / (dim + self.units))
            kernel = np.random.default_rng(self.seed + 1).uniform(-limit, limit, (dim, self.units))
        elif kernel.shape[0] != dim:
            raise ValueError(f"`init_from_kernel` has {kernel.shape[0]} input rows; the input has {dim} features.")
        projection = gaussian_projection(self.num_random_features, dim, self.orthogonal, self.seed)
        psi = np.maximum(kernel.T @ projection.T, self.relu_floor) / np.sqrt(self.num_random_features)
        self.projection = self.add_weight(
            name="projection",
            shape=projection.shape,
            initializer=initializers.Constant(projection),
            trainable=False,
            autocast=False,
        )
        self.psi = self.add_weight(
            name="psi",
            shape=psi.shape,
            initializer=initializers.Constant(psi),
            autocast=False,
        )
        self.bias: keras.Variable | None = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros", autocast=False)

    def call(self, inputs: Tensor) -> Tensor:
        x = upcast(inputs, self.compute_dtype)
        features = feature_ops.relu_random_features(x, ops.cast(self.projection, x.dtype), self.relu_floor)
        outputs = matmul(features, ops.transpose(ops.cast(self.psi, x.dtype)))
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, x.dtype)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "num_random_features": self.num_random_features,
                "relu_floor": self.relu_floor,
                "orthogonal": self.orthogonal,
                "seed": self.seed,
                "use_bias": self.use_bias,
            }
        )
        return config

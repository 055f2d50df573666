"""Weight algebra for norm surgery, in float64 numpy.

Derived in docs/references/derivations.md, sections 'Pre-LN to Pre-RMSNorm and Pre-CRMSNorm' and
'FakeLN export'.

Kernels follow Keras: input features on axis 0, outputs on the last axis (Dense `(in, out)`,
attention projections `(in, heads, head_dim)` and `(heads, head_dim, out)`).
"""

import keras
import numpy as np


def value_of(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable.value), dtype=np.float64)


def affine(norm, size):
    """`(gamma, beta)` of a `size`-wide LayerNormalization (ones / zeros where it has none)."""
    gamma = value_of(norm.gamma) if norm.scale else np.ones(size)
    beta = value_of(norm.beta) if norm.center else np.zeros(size)
    return gamma, beta


def fold(kernel, bias, gamma, beta, name="layer"):
    """`W' = diag(gamma) W`, `b' = b + beta W`: the layer now reads the norm's output without affine."""
    folded = kernel * gamma.reshape((-1,) + (1,) * (kernel.ndim - 1))
    shift = np.tensordot(beta, kernel, axes=(0, 0))
    if bias is None:
        if np.any(shift != 0):
            raise ValueError(f"{name} has no bias to take the non-zero beta of the norm it reads.")
        return folded, None
    return folded, bias + shift


def compress_input(kernel):
    """The kernel reading a zero-mean d-vector stored as its first d-1 entries (`x_d = -sum(z)`)."""
    return kernel[:-1] - kernel[-1:]


def recenter(kernel, bias, compress):
    """A stream writer with zero-mean outputs (last axis); for CRMS only the first d-1 are kept."""
    kernel = kernel - kernel.mean(axis=-1, keepdims=True)
    if bias is not None:
        bias = bias - bias.mean()
    if compress:
        kernel = kernel[..., :-1]
        bias = None if bias is None else bias[:-1]
    return kernel, bias


def input_projections(layer):
    """The Dense layers through which `layer` (Dense or MultiHeadAttention) reads its input."""
    if isinstance(layer, keras.layers.Dense):
        return [layer]
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return [layer.query_dense, layer.key_dense, layer.value_dense]
    raise ValueError(
        f"{layer.name} ({type(layer).__name__}) reads a LayerNorm: only Dense and MultiHeadAttention "
        "can take its folded affine."
    )

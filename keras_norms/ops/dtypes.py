"""The dtypes keras-norms computes in: statistics in at least float32, float64 kept as float64.

Keras' own promotion (`keras.backend.result_type(dtype, "float32")`) maps float64 to float32 on
JAX and PyTorch, so it cannot serve here: a float64 layer must compute in float64 on every
backend (on JAX, with `jax_enable_x64` on, as JAX itself requires for any float64 array).
"""

from keras import backend, ops

from keras_norms.ops.types import Tensor


def statistics_dtype(*dtypes: str | None) -> str:
    """`"float64"` if any of `dtypes` is float64, else `"float32"`.

    Integers, float16 and bfloat16 compute in float32: a float16 variance of activations in the
    hundreds overflows, and `ops.moments` on float16 input clips it to the float16 range.
    """
    standardized = [backend.standardize_dtype(dtype) for dtype in dtypes if dtype is not None]
    return "float64" if "float64" in standardized else "float32"


def upcast(x: Tensor, dtype: str | None = None) -> Tensor:
    """`x` in `statistics_dtype(x.dtype, dtype)`; pass a layer's `compute_dtype` as `dtype`.

    A float32 layer given float64 input computes in float64 (its output is still cast to the
    layer's compute dtype, as Keras layers do); a float64 layer computes in float64 whatever it is
    given; everything else computes in float32.
    """
    return ops.cast(x, statistics_dtype(x.dtype, dtype))


def to_floating(x: Tensor, dtype: str) -> Tensor:
    """`x` cast to `dtype` if it is not floating point (integer or bool input), else as it is.

    For element-wise activations, which compute in their input's precision: integer input is
    computed in the layer's (or `keras.config.floatx()`'s) float dtype, as Keras layers would
    cast a float input.
    """
    if backend.is_float_dtype(backend.standardize_dtype(x.dtype)):
        return x
    return ops.cast(x, dtype)


# Keras' own promotion maps float64 to float32 on JAX and PyTorch (`keras.backend.result_type`), so
# some `keras.ops` compute float64 input in float32 there: `maximum`, `minimum` and `matmul` on
# PyTorch, `mean` (float32 accumulation) on both. The forms below give the same results in every
# dtype and keep float64 exact on every backend; they are used wherever keras-norms would
# otherwise call those ops. (`keras_norms.ops.statistics.masked_mean` replaces `ops.mean`.)


def _is_float64(*tensors):
    return any(not isinstance(t, (int, float)) and backend.standardize_dtype(t.dtype) == "float64" for t in tensors)


def maximum(x: Tensor | float, y: Tensor | float) -> Tensor:
    """`ops.maximum(x, y)`, float64 kept on PyTorch; at ties, `x` (and its gradient)."""
    if _is_float64(x, y):
        return ops.where(x >= y, x, y)
    return ops.maximum(x, y)


def matmul(x: Tensor, kernel: Tensor) -> Tensor:
    """`ops.matmul(x, kernel)` for a 2-D `kernel`, float64 kept on PyTorch."""
    if _is_float64(x, kernel):
        return ops.einsum("...i,ij->...j", x, kernel)
    return ops.matmul(x, kernel)

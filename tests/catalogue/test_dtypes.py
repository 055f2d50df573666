"""Every component in every dtype: float64 computes in float64, integers in the float dtype,
and pure float16 / bfloat16 policies run (not only the mixed ones), on every backend.

Tolerances, relative to the largest |oracle| value (at least 1):
- float64 layers (on JAX with `jax_enable_x64`): 1e-12;
- integer input to a float32 layer: 1e-5, the float32 standard of the suite;
- pure float16 / bfloat16 policies: 4 units of the dtype's rounding (2^-10 / 2^-7), the
  output's own rounding and a few low-precision operations (statistics are float32).
"""

import contextlib

import keras
import numpy as np
import pytest
from keras import ops

from keras_norms.testing import vjp_function
from tests.catalogue.components import EXAMPLES, OPTIMIZERS, to_float64

LOW_PRECISION = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


@contextlib.contextmanager
def float64_enabled():
    """JAX computes float64 only with `jax_enable_x64`; the other backends always do."""
    if keras.backend.backend() == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


def assert_close(run, tolerance):
    got = to_float64(run.outputs)
    assert keras.backend.standardize_dtype(run.outputs.dtype) == run.dtype, (
        f"output dtype {run.outputs.dtype}, expected {run.dtype}"
    )
    assert np.all(np.isfinite(got)), "non-finite output"
    scale = max(1.0, float(np.max(np.abs(run.expected))))
    np.testing.assert_allclose(got, run.expected, rtol=0, atol=tolerance * scale)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_float64_matches_the_float64_oracle(name, rng):
    shape, run = EXAMPLES[name]
    with float64_enabled():
        x = ops.convert_to_tensor(rng.standard_normal(shape) * 1.5 + 0.2, "float64")
        assert_close(run(x, "float64", rng), 1e-12)


@pytest.mark.parametrize("name", sorted(set(EXAMPLES) - set(OPTIMIZERS)))
def test_integer_input_computes_in_the_float_dtype(name, rng):
    shape, run = EXAMPLES[name]
    x = ops.convert_to_tensor(rng.integers(-3, 4, shape), "int32")
    assert_close(run(x, None, rng), 1e-5)


@pytest.mark.parametrize("dtype", sorted(LOW_PRECISION))
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_pure_low_precision_policy_runs(name, dtype, rng):
    shape, run = EXAMPLES[name]
    x = ops.cast(ops.convert_to_tensor(rng.standard_normal(shape) + 0.2, "float32"), dtype)
    result = run(x, dtype, rng)
    assert_close(result, 4 * LOW_PRECISION[dtype])
    if result.layer is not None:  # and it trains: a backward pass with finite gradients
        upstream = ops.cast(ops.convert_to_tensor(rng.standard_normal(result.outputs.shape), "float32"), dtype)
        _, dx, dweights = vjp_function(result.layer)(x, upstream)
        for gradient in [dx, *dweights]:
            assert np.all(np.isfinite(to_float64(gradient))), "non-finite gradient"

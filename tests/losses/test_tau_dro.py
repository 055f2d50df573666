"""TauDROCrossEntropy against the reference form (docs/references/losses.md, section 'tau-DRO cross-entropy'), float64.

Tolerances: values 1e-6 absolute + relative (float32 terms of order 1); gradients (logits and tau)
1e-5 relative to the largest entry.
"""

import keras
import numpy as np
import pytest

from keras_norms.losses import TauDROCrossEntropy
from keras_norms.testing import check_serialization, gradient_numpy
from tests.oracles import losses as oracle
from tests.oracles.derivatives import complex_step_vjp


@pytest.mark.parametrize("rho, vocab_size", [(0.0, None), (0.7, 32000)])
def test_values_and_gradients_match_reference(rho, vocab_size, rng):
    logits = (rng.standard_normal((5, 9)) * 2).astype("float32")
    tau = rng.uniform(0.3, 3.0, 5).astype("float32")
    labels = rng.integers(0, 9, 5)
    loss = TauDROCrossEntropy(rho=rho, vocab_size=vocab_size)
    value, (d_logits, d_tau) = gradient_numpy(
        lambda z, t: loss(labels, keras.ops.concatenate([z, t[:, None]], axis=-1)), logits, tau
    )
    v = vocab_size or 9
    z64, t64 = logits.astype(np.float64), tau.astype(np.float64)
    expected = oracle.tau_dro(labels, z64, t64, rho, v)
    np.testing.assert_allclose(value, expected.mean(), rtol=1e-6, atol=1e-6)
    # The closed form (docs/references/losses.md): -z_y + tau * log(mean exp(z / tau)) + rho * tau.
    closed = -oracle.take(z64, labels) + t64 * (oracle.logsumexp(z64 / t64[:, None]) - np.log(9))
    if vocab_size is None:
        np.testing.assert_allclose(expected, closed + rho * t64, rtol=1e-12)
    grads = complex_step_vjp(lambda z, t: oracle.tau_dro(labels, z, t, rho, v), [z64, t64], np.full(5, 1 / 5))
    for got, want in zip((d_logits, d_tau), grads):
        np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())


def test_dict_predictions_match_concatenated(rng):
    logits = rng.standard_normal((2, 3, 6)).astype("float32")
    tau = rng.uniform(0.5, 2.0, (2, 3, 1)).astype("float32")
    labels = rng.integers(0, 6, (2, 3))
    loss = TauDROCrossEntropy(rho=0.2)
    from_dict = loss(labels, {"logits": logits, "tau": tau})
    from_concat = loss(labels, np.concatenate([logits, tau], -1))
    expected = oracle.tau_dro(labels, logits.astype(np.float64), tau[..., 0].astype(np.float64), 0.2, 6)
    for value in (from_dict, from_concat):
        np.testing.assert_allclose(float(keras.ops.convert_to_numpy(value)), expected.mean(), rtol=1e-6, atol=1e-6)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="vocab_size"):
        TauDROCrossEntropy(vocab_size=1)
    with pytest.raises(TypeError, match="rho"):
        TauDROCrossEntropy(rho="0")


def test_serialization():
    check_serialization(TauDROCrossEntropy(rho=0.5, vocab_size=50257))

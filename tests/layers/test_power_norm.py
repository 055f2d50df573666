"""PowerNormalization against the float64 oracle of the authors' code, plus the shared checker.

Tolerance (float32 layer vs float64 oracle): 1e-5 absolute and relative for outputs, gradients,
`moving_quadratic_mean` and `backward_statistic`, over 5 steps that cross the warmup boundary.
"""

import keras
import numpy as np
import pytest

from keras_norms import layers
from keras_norms.testing import check_layer
from tests.oracles.power_norm import PowerNorm

BATCH, TIME, CHANNELS, GROUPS, WARMUP = 3, 5, 8, 4, 2
TOLERANCE = 1e-5
SETTINGS = {"epsilon": 1e-5, "alpha_fwd": 0.9, "alpha_bkw": 0.9}


def to_numpy(tensor):
    if isinstance(tensor, keras.Variable):
        tensor = tensor.value
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


def padding_mask(rng):
    """(batch, time), True for valid tokens: each sequence keeps 2 to TIME tokens, then padding."""
    lengths = rng.integers(2, TIME + 1, BATCH)
    lengths[0] = TIME
    return np.arange(TIME)[None, :] < lengths[:, None]


def random_affine(rng):
    return rng.uniform(0.5, 1.5, CHANNELS), rng.normal(0.0, 0.5, CHANNELS)


def assert_close(got, want, name):
    np.testing.assert_allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE, err_msg=name)


def test_eager_training_steps_then_inference_match_oracle(rng):
    gamma, beta = random_affine(rng)
    layer = layers.PowerNormalization(groups=GROUPS, warmup_steps=WARMUP, **SETTINGS)
    layer.build((BATCH, TIME, CHANNELS))
    layer.gamma.assign(gamma.astype("float32"))
    layer.beta.assign(beta.astype("float32"))
    oracle = PowerNorm(CHANNELS, gamma, beta, eps=1e-5, alpha_fwd=0.9, alpha_bkw=0.9,
                       warmup_iters=WARMUP, groups=GROUPS)
    for step in range(1, 6):
        x = rng.standard_normal((BATCH, TIME, CHANNELS)) * 2 + 0.5
        mask = padding_mask(rng)
        expected, *_ = oracle.train_step(x, mask, np.zeros_like(x))
        got = to_numpy(layer(x.astype("float32"), training=True, mask=mask))
        assert_close(got, expected, f"output, step {step}")
        assert_close(to_numpy(layer.moving_quadratic_mean), oracle.running_phi, f"moving, step {step}")
        assert int(to_numpy(layer.step)) == step
    x = rng.standard_normal((BATCH, TIME, CHANNELS))
    assert_close(to_numpy(layer(x.astype("float32"), training=False)), oracle.inference(x), "inference")


class _InputGradientProbe(keras.layers.Layer):
    """Adds a zero weight of the input's full shape: after an SGD(1) step it holds -dL/dx."""

    def build(self, input_shape):
        self.delta = self.add_weight(shape=input_shape, initializer="zeros", name="delta")

    def call(self, inputs):
        return inputs + self.delta


class _DotLoss(keras.losses.Loss):
    """`sum(y_true * y_pred)`: the upstream gradient of the outputs is `y_true` (times the mask)."""

    def __init__(self):
        super().__init__(reduction="sum")

    def call(self, y_true, y_pred):
        return keras.ops.sum(y_true * y_pred, axis=-1)


def power_norm_model(layer, jit_compile, optimizer=None):
    """The layer behind an input-gradient probe. `jit_compile=False` runs eagerly: tensorflow's
    non-XLA graph sometimes lets this harness's forward read the probe or the weights after the
    SGD(1) update (seen with RMSNormalization and EvoNormS0 as well), so it is not used here."""
    inputs = keras.Input((TIME, CHANNELS), batch_size=BATCH)
    mask = keras.Input((TIME,), batch_size=BATCH, dtype="bool")
    probe = _InputGradientProbe()
    outputs = layer(probe(inputs), mask=mask)
    model = keras.Model([inputs, mask], outputs)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(1.0), loss=_DotLoss(),
                  jit_compile=jit_compile, run_eagerly=not jit_compile)
    return model, probe


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager", "jit"])
def test_train_on_batch_matches_oracle_across_warmup(jit_compile, rng):
    layer = layers.PowerNormalization(groups=GROUPS, warmup_steps=WARMUP, **SETTINGS)
    model, probe = power_norm_model(layer, jit_compile)
    oracle = PowerNorm(CHANNELS, *random_affine(rng), eps=1e-5, alpha_fwd=0.9, alpha_bkw=0.9,
                       warmup_iters=WARMUP, groups=GROUPS)
    for step in range(1, 6):
        # Fresh affine weights each step, so SGD's update reveals this step's gradients alone.
        gamma, beta = random_affine(rng)
        oracle.weight, oracle.bias = gamma, beta
        layer.gamma.assign(gamma.astype("float32"))
        layer.beta.assign(beta.astype("float32"))
        probe.delta.assign(np.zeros((BATCH, TIME, CHANNELS), "float32"))
        x = rng.standard_normal((BATCH, TIME, CHANNELS)) * 2 + 0.5
        mask = padding_mask(rng)
        upstream = rng.standard_normal((BATCH, TIME, CHANNELS))
        # Keras weights a masked output's loss by the mask: padded tokens get zero upstream.
        y, dx, dgamma, dbeta = oracle.train_step(x, mask, upstream * mask[..., None])
        loss = model.train_on_batch([x.astype("float32"), mask], upstream.astype("float32"))
        assert_close(loss, np.sum(upstream * y * mask[..., None]), f"loss, step {step}")
        assert_close(-to_numpy(probe.delta), dx, f"input gradient, step {step}")
        assert_close(gamma - to_numpy(layer.gamma), dgamma, f"gamma gradient, step {step}")
        assert_close(beta - to_numpy(layer.beta), dbeta, f"beta gradient, step {step}")
        assert_close(to_numpy(layer.moving_quadratic_mean), oracle.running_phi, f"moving, step {step}")
        assert_close(to_numpy(layer.backward_statistic), oracle.ema_gz, f"backward statistic, step {step}")
    # The last SGD step moved gamma, beta and the probe: restore the oracle's values.
    layer.gamma.assign(oracle.weight.astype("float32"))
    layer.beta.assign(oracle.bias.astype("float32"))
    probe.delta.assign(np.zeros((BATCH, TIME, CHANNELS), "float32"))
    x = rng.standard_normal((BATCH, TIME, CHANNELS))
    got = model.predict_on_batch([x.astype("float32"), np.ones((BATCH, TIME), bool)])
    assert_close(to_numpy(got), oracle.inference(x), "inference")


def test_exact_gradient_is_plain_autodiff_through_the_batch_statistic(rng):
    from keras_norms.testing import vjp_numpy
    from tests.oracles.derivatives import complex_step_vjp
    from tests.oracles.power_norm import group_scaling

    x = (rng.standard_normal((BATCH, TIME, CHANNELS)) * 2 + 0.5).astype("float32")
    mask = padding_mask(rng)
    upstream = rng.standard_normal(x.shape).astype("float32")
    layer = layers.PowerNormalization(groups=GROUPS, warmup_steps=WARMUP, exact_gradient=True)
    layer.build(x.shape)
    assert layer.backward_statistic is None

    def warmup_forward(x):  # z = xs / sqrt(psi2 + eps), psi2 over valid tokens, in warmup
        xs, _ = group_scaling(x, GROUPS)
        return xs / np.sqrt(np.mean(xs[mask] ** 2, axis=0) + 1e-5)

    (expected,) = complex_step_vjp(warmup_forward, [x.astype(np.float64)], upstream)
    _, dx, _ = vjp_numpy(layer, x, upstream, mask=mask)
    np.testing.assert_allclose(dx, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"alpha_fwd": 1.5}, ValueError, "alpha_fwd"),
        ({"alpha_bkw": -0.1}, ValueError, "alpha_bkw"),
        ({"warmup_steps": -1}, ValueError, "warmup_steps"),
        ({"warmup_steps": 2.5}, TypeError, "warmup_steps"),
        ({"groups": 0}, ValueError, "groups"),
        ({"exact_gradient": "no"}, TypeError, "exact_gradient"),
    ],
)
def test_bad_arguments_raise_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        layers.PowerNormalization(**kwargs)


@pytest.mark.parametrize(
    "kwargs, shape, match",
    [({"groups": 3}, (2, 5, 8), "groups=3"), ({}, (2, 3, 4, 8), "batch, time, features")],
)
def test_bad_input_raises_at_build(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        layers.PowerNormalization(**kwargs).build(shape)


@pytest.mark.parametrize(
    "kwargs, shape, trainable, non_trainable",
    [
        ({"groups": 2, "warmup_steps": 1}, (4, 6, 8), 3, 2),
        ({"exact_gradient": True, "center": False}, (4, 8), 1, 2),
    ],
)
def test_layer_checker(kwargs, shape, trainable, non_trainable, tmp_path, rng):
    check_layer(
        layers.PowerNormalization,
        kwargs,
        shape,
        str(tmp_path),
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        supports_masking=True,
        seed=int(rng.integers(2**31)),
    )

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
    oracle = PowerNorm(
        CHANNELS, gamma, beta, eps=1e-5, alpha_fwd=0.9, alpha_bkw=0.9, warmup_iters=WARMUP, groups=GROUPS
    )
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


def test_two_dimensional_input_is_one_token_per_sample(rng):
    layer = layers.PowerNormalization(groups=GROUPS, warmup_steps=WARMUP, **SETTINGS)
    oracle = new_oracle(rng)
    layer.build((BATCH, CHANNELS))
    layer.gamma.assign(oracle.weight.astype("float32"))
    layer.beta.assign(oracle.bias.astype("float32"))
    for step in range(1, 4):
        x = rng.standard_normal((BATCH, CHANNELS)) * 2 + 0.5
        expected, *_ = oracle.train_step(x[:, None], np.ones((BATCH, 1), bool), np.zeros((BATCH, 1, CHANNELS)))
        assert_close(to_numpy(layer(x.astype("float32"), training=True)), expected[:, 0], f"step {step}")
        assert_close(to_numpy(layer.moving_quadratic_mean), oracle.running_phi, f"moving, step {step}")


class _InputGradientProbe(keras.layers.Layer):
    """Adds a zero weight of the input's full shape: after an SGD(1) step it holds -dL/dx."""

    def build(self, input_shape):
        self.delta = self.add_weight(shape=input_shape, initializer="zeros", name="delta")

    def call(self, inputs):
        return inputs + self.delta


class _DotLoss(keras.losses.Loss):
    """`sum(y_true * y_pred)`: the upstream gradient of the outputs is `y_true` (times the mask)."""

    def __init__(self, name="dot_loss", reduction="sum", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

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
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(1.0),
        loss=_DotLoss(),
        jit_compile=jit_compile,
        run_eagerly=not jit_compile,
    )
    return model, probe


def new_oracle(rng):
    return PowerNorm(
        CHANNELS, *random_affine(rng), eps=1e-5, alpha_fwd=0.9, alpha_bkw=0.9, warmup_iters=WARMUP, groups=GROUPS
    )


def backward_statistic(layer):
    """The code's `ema_gz`: the layer keeps it multiplied by the last step's loss scale."""
    return to_numpy(layer.backward_statistic) / to_numpy(layer.backward_loss_scale)


def train_and_compare(model, layer, probe, oracle, rng, steps=5, check_gradients=True):
    """`steps` train_on_batch steps against the oracle: state always, gradients if asked.

    Gradients are read off an SGD(1) update, so only an optimizer that applies them unchanged
    (up to loss scaling, which it undoes) may be used with `check_gradients`.
    """
    for step in range(1, steps + 1):
        # Fresh affine weights each step, so the update reveals this step's gradients alone.
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
        if check_gradients:
            assert_close(-to_numpy(probe.delta), dx, f"input gradient, step {step}")
            assert_close(gamma - to_numpy(layer.gamma), dgamma, f"gamma gradient, step {step}")
            assert_close(beta - to_numpy(layer.beta), dbeta, f"beta gradient, step {step}")
        assert_close(to_numpy(layer.moving_quadratic_mean), oracle.running_phi, f"moving, step {step}")
        assert_close(backward_statistic(layer), oracle.ema_gz, f"backward statistic, step {step}")


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager", "jit"])
def test_train_on_batch_matches_oracle_across_warmup(jit_compile, rng):
    layer = layers.PowerNormalization(groups=GROUPS, warmup_steps=WARMUP, **SETTINGS)
    model, probe = power_norm_model(layer, jit_compile)
    oracle = new_oracle(rng)
    train_and_compare(model, layer, probe, oracle, rng)
    # The last step moved gamma, beta and the probe: restore the oracle's values.
    layer.gamma.assign(oracle.weight.astype("float32"))
    layer.beta.assign(oracle.bias.astype("float32"))
    probe.delta.assign(np.zeros((BATCH, TIME, CHANNELS), "float32"))
    x = rng.standard_normal((BATCH, TIME, CHANNELS))
    got = model.predict_on_batch([x.astype("float32"), np.ones((BATCH, TIME), bool)])
    assert_close(to_numpy(got), oracle.inference(x), "inference")


def test_changing_loss_scale_leaves_statistic_and_gradients_unscaled(rng):
    # The scale doubles after every step (2**10 .. 2**14): powers of two, so exact in float32.
    optimizer = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(1.0), initial_scale=2.0**10, dynamic_growth_steps=1
    )
    layer = layers.PowerNormalization(groups=GROUPS, warmup_steps=WARMUP, **SETTINGS)
    model, probe = power_norm_model(layer, jit_compile=False, optimizer=optimizer)
    train_and_compare(model, layer, probe, new_oracle(rng), rng)
    assert float(to_numpy(layer.backward_loss_scale)) == 2.0**14


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.SGD(0.1, clipnorm=1e-3),
        lambda: keras.optimizers.SGD(0.1, global_clipnorm=1e-3),
        lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)),
        lambda: keras.optimizers.AdamW(0.01, weight_decay=0.5),
    ],
    ids=["clipnorm", "global_clipnorm", "lr_schedule", "weight_decay"],
)
def test_optimizer_options_do_not_touch_the_statistics(optimizer, rng):
    layer = layers.PowerNormalization(groups=GROUPS, warmup_steps=WARMUP, **SETTINGS)
    model, probe = power_norm_model(layer, jit_compile=False, optimizer=optimizer())
    train_and_compare(model, layer, probe, new_oracle(rng), rng, check_gradients=False)


def test_mixed_float16_training_tracks_float32_statistics(rng):
    # A mixed_float16 model compiles with a LossScaleOptimizer (initial scale 2**15).
    keras.config.set_dtype_policy("mixed_float16")
    layer = layers.PowerNormalization(groups=GROUPS, warmup_steps=WARMUP)
    model, probe = power_norm_model(layer, jit_compile=False)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    oracle = PowerNorm(
        CHANNELS,
        np.ones(CHANNELS),
        np.zeros(CHANNELS),
        eps=1e-5,
        alpha_fwd=0.9,
        alpha_bkw=0.9,
        warmup_iters=WARMUP,
        groups=GROUPS,
    )
    for _ in range(5):
        layer.gamma.assign(np.ones(CHANNELS, "float32"))
        layer.beta.assign(np.zeros(CHANNELS, "float32"))
        probe.delta.assign(np.zeros((BATCH, TIME, CHANNELS), "float32"))
        x = rng.standard_normal((BATCH, TIME, CHANNELS)) * 2 + 0.5
        mask = padding_mask(rng)
        # Small upstream gradients: times the 2**15 loss scale they stay within float16.
        upstream = 0.01 * rng.standard_normal((BATCH, TIME, CHANNELS))
        oracle.train_step(x, mask, upstream * mask[..., None])
        model.train_on_batch([x.astype("float32"), mask], upstream.astype("float32"))
    for weight in layer.weights:
        if weight.name != "step":
            assert weight.dtype == "float32"
            assert np.all(np.isfinite(to_numpy(weight)))
    # No step overflowed, so the layer saw the optimizer's current scale.
    assert float(to_numpy(layer.backward_loss_scale)) == float(to_numpy(model.optimizer.dynamic_scale))
    # float16 forward: agreement to float16 precision, not to 1e-5.
    np.testing.assert_allclose(to_numpy(layer.moving_quadratic_mean), oracle.running_phi, rtol=1e-2)
    np.testing.assert_allclose(
        backward_statistic(layer), oracle.ema_gz, rtol=0.05, atol=0.05 * np.abs(oracle.ema_gz).max()
    )


def test_save_and_load_mid_training_resumes_identical_state(tmp_path, rng):
    layer = layers.PowerNormalization(groups=GROUPS, warmup_steps=3, **SETTINGS)
    model, _ = power_norm_model(layer, jit_compile=False, optimizer=keras.optimizers.Adam(0.01))
    batches = [
        (
            (rng.standard_normal((BATCH, TIME, CHANNELS)) * 2).astype("float32"),
            padding_mask(rng),
            rng.standard_normal((BATCH, TIME, CHANNELS)).astype("float32"),
        )
        for _ in range(5)
    ]
    for x, mask, upstream in batches[:2]:
        model.train_on_batch([x, mask], upstream)
    model.save(tmp_path / "mid_training.keras")
    restored = keras.saving.load_model(
        tmp_path / "mid_training.keras",
        custom_objects={"_InputGradientProbe": _InputGradientProbe, "_DotLoss": _DotLoss},
    )
    for x, mask, upstream in batches[2:]:  # crosses the warmup boundary (step 3 -> 4)
        model.train_on_batch([x, mask], upstream)
        restored.train_on_batch([x, mask], upstream)
    for original, loaded in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(to_numpy(loaded), to_numpy(original), err_msg=original.path)


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


def _accumulating_model(exact_gradient, optimizer, run_eagerly):
    model = keras.Sequential(
        [keras.Input((4, 8)), layers.PowerNormalization(exact_gradient=exact_gradient), keras.layers.Dense(1)]
    )
    model.compile(optimizer, "mse", run_eagerly=run_eagerly)
    return model


@pytest.mark.parametrize("method", ["fit", "train_on_batch"])
@pytest.mark.parametrize("run_eagerly", [True, False], ids=["eager", "compiled"])
@pytest.mark.parametrize("loss_scaled", [False, True], ids=["adam", "loss_scale"])
def test_gradient_accumulation_raises_at_the_first_training_step(method, run_eagerly, loss_scaled, rng):
    """Keras would keep the max of the micro-steps' backward statistics: refuse, do not train wrong."""
    optimizer = keras.optimizers.Adam(gradient_accumulation_steps=2)
    if loss_scaled:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model = _accumulating_model(False, optimizer, run_eagerly)
    x, y = rng.standard_normal((4, 4, 8)), rng.standard_normal((4, 4, 1))
    with pytest.raises(ValueError, match="gradient_accumulation_steps=2"):
        if method == "fit":
            model.fit(x, y, epochs=1, verbose=0)
        else:
            model.train_on_batch(x, y)


def test_exact_gradient_trains_with_gradient_accumulation(rng):
    model = _accumulating_model(True, keras.optimizers.Adam(gradient_accumulation_steps=2), False)
    history = model.fit(rng.standard_normal((8, 4, 8)), rng.standard_normal((8, 4, 1)), batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2  # 4 micro-steps, 2 updates


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"alpha_fwd": 1.5}, ValueError, "alpha_fwd"),
        ({"alpha_bkw": -0.1}, ValueError, "alpha_bkw"),
        ({"warmup_steps": -1}, ValueError, "warmup_steps"),
        ({"warmup_steps": 2.5}, TypeError, "warmup_steps"),
        ({"groups": 0}, ValueError, "groups"),
        ({"exact_gradient": "no"}, TypeError, "exact_gradient"),
        ({"synchronized": 1}, TypeError, "synchronized"),
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
        ({"groups": 2, "warmup_steps": 1}, (4, 6, 8), 4, 2),
        ({"exact_gradient": True, "center": False}, (4, 8), 1, 2),
    ],
)
def test_layer_checker(kwargs, shape, trainable, non_trainable, tmp_path, rng):
    # backward_loss_scale holds the loss scale of the last step: 1 without loss scaling.
    check_layer(
        layers.PowerNormalization,
        kwargs,
        shape,
        str(tmp_path),
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        supports_masking=True,
        unchanged_by_fit=("backward_loss_scale",),
        seed=int(rng.integers(2**31)),
    )

"""LayerNormRemovalSchedule and export_without_layernorm (docs/references/normalization.md, 'LayerNorm removal')."""

import keras
import numpy as np
import pytest

from keras_norms.layers import FakeLayerNormalization
from keras_norms.surgery import LayerNormRemovalSchedule, export_without_layernorm


def fake_ln_transformer(rng, width=8):
    tokens = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(13, width)(tokens)
    h = FakeLayerNormalization(name="ln1")(x)
    h = keras.layers.MultiHeadAttention(2, width // 2)(h, h, use_causal_mask=True)
    x = keras.layers.Add()([x, h])
    h = FakeLayerNormalization(name="ln2")(x)
    x = keras.layers.Add()([x, keras.layers.Dense(width)(keras.layers.Dense(16, activation="gelu")(h))])
    logits = keras.layers.Dense(13)(FakeLayerNormalization(name="ln_f")(x))
    model = keras.Model(tokens, logits)
    for layer in model.layers:
        if isinstance(layer, FakeLayerNormalization):
            layer.gamma.assign((1 + 0.3 * rng.standard_normal(width)).astype("float32"))
            layer.beta.assign((0.3 * rng.standard_normal(width)).astype("float32"))
    return model


def test_schedule_switches_at_the_exact_steps(rng):
    model = fake_ln_transformer(rng)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    schedule = LayerNormRemovalSchedule.from_groups([(["ln2", "ln1"], 2, 3), (["ln_f"], 7, 0)])
    assert schedule.steps == {"ln2": 2, "ln1": 5, "ln_f": 7}
    seen, sigmas = [], []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if hasattr(self.model, "jax_state_sync"):  # read what the trainer used, on jax
                self.model.jax_state_sync()
            seen.append(
                tuple(
                    int(keras.ops.convert_to_numpy(self.model.get_layer(n).is_fake.value))
                    for n in ("ln1", "ln2", "ln_f")
                )
            )
            sigmas.append(float(keras.ops.convert_to_numpy(self.model.get_layer("ln_f").sigma.value)))

    x, y = rng.integers(0, 13, (9, 6)), rng.integers(0, 13, (9, 6))
    model.fit(x, y, batch_size=1, epochs=1, verbose=0, shuffle=False, callbacks=[schedule, Probe()])
    expected = [(0, 0, 0)] * 2 + [(0, 1, 0)] * 3 + [(1, 1, 0)] * 2 + [(1, 1, 1)] * 2
    assert seen == expected
    # ln_f's sigma tracked the std until step 7, then froze.
    assert sigmas[5] != sigmas[6] and sigmas[6] == sigmas[7] == sigmas[8]


def test_the_trainer_sees_the_switch(rng):
    # No probe this time: on jax, fit keeps its own copy of the state, and a switch it never
    # loaded would be overwritten when fit writes that state back.
    model = fake_ln_transformer(rng)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    schedule = LayerNormRemovalSchedule({"ln1": 1, "ln2": 2, "ln_f": 3})
    x, y = rng.integers(0, 13, (5, 6)), rng.integers(0, 13, (5, 6))
    model.fit(x, y, batch_size=1, epochs=1, verbose=0, shuffle=False, callbacks=[schedule])
    for name in ("ln1", "ln2", "ln_f"):
        assert int(keras.ops.convert_to_numpy(model.get_layer(name).is_fake.value)) == 1, name


def test_export_equals_the_fake_model(rng):
    model = fake_ln_transformer(rng)
    for name, sigma in (("ln1", 0.8), ("ln2", 1.9), ("ln_f", 3.1)):
        model.get_layer(name).sigma.assign(sigma)
        model.get_layer(name).set_fake()
    x = rng.integers(0, 13, (4, 6))
    expected = keras.ops.convert_to_numpy(model(x))
    exported, report = export_without_layernorm(model)
    assert sorted(report["removed"]) == ["ln1", "ln2", "ln_f"]
    assert not [layer for layer in exported.layers if isinstance(layer, FakeLayerNormalization)]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(exported(x)), expected, atol=1e-5 * np.abs(expected).max())


def test_export_refuses_real_layer_norms(rng):
    model = fake_ln_transformer(rng)
    model.get_layer("ln1").set_fake()
    with pytest.raises(ValueError, match="ln2"):
        export_without_layernorm(model)
    with pytest.raises(ValueError, match="steps"):
        LayerNormRemovalSchedule({})
